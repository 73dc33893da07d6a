//! Files around the replicas: serving, fetching, holding, reclaiming, and
//! a send answered only once its content is on a majority.

use super::*;
use crate::files::FileId;
use crate::im::protocol::{FileInfo, FileInfoError, ImError, Receipt, RoomId, Target, Visibility};
use crate::replica::{BlobRemoval, FileSource};
use crate::wire::chunk_protocol::{ChunkAnswer, ChunkRequest};

/// A keyed pair whose first replica (A) leads, with alice registered
/// and, given a visibility, her room "r" created.
struct Keyed {
    pair: Pair,
    a: NodeId,
    b: NodeId,
    /// B's key.
    kb: Identity,
    alice: Identity,
}

fn keyed_with_alice(room: Option<Visibility>) -> Keyed {
    let (ka, kb) = (Identity::from_secret([11; 32]), Identity::from_secret([12; 32]));
    let (a, b) = (ka.user().node_id(), kb.user().node_id());
    let mut pair = Pair::keyed([ka, kb.clone()]);
    let alice = Identity::from_secret([1; 32]);
    assert!(applied_ok(&pair.ask(a, &alice, ClientRequest::Submit(register(&alice, "alice")))));
    if let Some(visibility) = room {
        let create = Operation::CreateRoom { name: "r".into(), visibility };
        let created = pair.ask(a, &alice, ClientRequest::Submit(signed(&alice, 10, create)));
        assert!(applied_ok(&created));
    }
    Keyed { pair, a, b, kb, alice }
}

/// `alice` sends `file` to room "r" as command `n`.
fn send_file(alice: &Identity, n: u128, file: FileInfo) -> SignedCommand {
    let to = Target::Room(RoomId::Group("r".into()));
    signed(alice, n, Operation::SendFile { to, file, caption: String::new() })
}

impl Pair {
    /// A chunk request at `at` from a connection of `user`: the answer the
    /// service gave, or `None` when it handed the request to the driver to
    /// serve (`ServeChunks`).
    fn chunks(&mut self, at: NodeId, user: UserId, file: FileId) -> Option<ChunkAnswer> {
        let asker = self.asker();
        let request = ChunkRequest { file, first_group: 0, group_count: 1 };
        let frame = Bytes::from(request.encode());
        let served = self.file_outputs.len();
        self.input(at, ServiceInput::ChunkRequested { asker, user: Some(user), frame });
        if let Some((_, _, frame)) = self.answers.iter().find(|(_, a, _)| *a == asker) {
            return Some(ChunkAnswer::decode(frame).expect("an answer frame"));
        }
        let serve = self.file_outputs[served..].iter().any(|(from, out)| {
            *from == at && matches!(out, ServiceOutput::ServeChunks { asker: a, .. } if *a == asker)
        });
        assert!(serve, "neither answered nor served");
        None
    }

    fn took(&self, from: NodeId, want: impl Fn(&ServiceOutput) -> bool) -> usize {
        self.file_outputs.iter().filter(|(f, out)| *f == from && want(out)).count()
    }

    /// `user` submits `command` at `at`; its answer, once given, is among
    /// `answers` under the returned asker.
    fn submit(&mut self, at: NodeId, user: UserId, command: SignedCommand) -> AskerId {
        let asker = self.asker();
        let frame = RequestFrame { request_id: 1, request: ClientRequest::Submit(command) };
        let input =
            ServiceInput::ClientRequested { asker, user: Some(user), frame: frame.encode().into() };
        self.input(at, input);
        asker
    }

    fn answered(&self, asker: AskerId) -> bool {
        self.answers.iter().any(|(_, a, _)| *a == asker)
    }
}

#[test]
fn replicas_serve_fetch_hold_and_reclaim_files_as_the_log_says() {
    let Keyed { mut pair, a, b, kb, alice } = keyed_with_alice(Some(Visibility::Private));
    let bob = Identity::from_secret([2; 32]);
    assert!(applied_ok(&pair.ask(a, &bob, ClientRequest::Submit(register(&bob, "bob")))));
    let room = RoomId::Group("r".into());
    let file = FileId::of(b"report");
    let info = FileInfo { id: file, name: "report.txt".into(), media_type: "text/plain".into() };
    let send_as = |n| send_file(&alice, n, info.clone());

    // Nobody may fetch what no entry refers to; nothing can be sent that
    // no replica holds.
    assert_eq!(pair.chunks(a, alice.user(), file), Some(ChunkAnswer::Forbidden));
    let refused = pair.ask(a, &alice, ClientRequest::Submit(send_as(11)));
    assert!(
        matches!(&refused, ClientResponse::Applied(o) if o.result == Err(ImError::FileNotStored))
    );

    // A (the leader) stored the upload: it says so in the log, as itself.
    pair.input(a, ServiceInput::BlobStored { file });
    let holders = |p: &Pair, at: NodeId| p.services[&at].node().state_machine().file_holders(file);
    assert_eq!(holders(&pair, b), vec![pair.services[&a].identity.as_ref().expect("key").user()]);
    // B stores it too (it was uploaded there as well), through the leader.
    pair.input(b, ServiceInput::BlobStored { file });
    assert_eq!(holders(&pair, a).len(), 2);
    assert_eq!(pair.took(b, |o| matches!(o, ServiceOutput::FetchFile { .. })), 0, "B holds it");

    // Sent (through B; a new command: the refused one keeps its outcome):
    // alice may fetch from both; bob, not a member, from neither.
    let sent = pair.ask(b, &alice, ClientRequest::Submit(send_as(13)));
    assert!(applied_ok(&sent), "{sent:?}");
    assert_eq!(pair.chunks(a, alice.user(), file), None);
    assert_eq!(pair.chunks(b, alice.user(), file), None);
    assert_eq!(pair.chunks(b, bob.user(), file), Some(ChunkAnswer::Forbidden));
    // A replica fetches as a replica.
    assert_eq!(pair.chunks(a, kb.user(), file), None);

    // A damaged copy at B: removed, fetched again from A, not served meanwhile.
    pair.input(b, ServiceInput::BlobDamaged { file });
    assert_eq!(pair.took(b, |o| matches!(o, ServiceOutput::RemoveBlob { .. })), 1);
    let from_a = |o: &ServiceOutput| matches!(o, ServiceOutput::FetchFile { sources, .. } if *sources == vec![FileSource::Replica(a)]);
    assert_eq!(pair.took(b, from_a), 1);
    assert_eq!(pair.chunks(b, alice.user(), file), Some(ChunkAnswer::NotHere), "being repaired");
    assert_eq!(pair.took(b, |o| matches!(o, ServiceOutput::RemoveBlob { .. })), 1);

    // Deleting the only message releases the content: both reclaim it, at
    // their sweeps' second look (a release alone removes nothing: the
    // replica may be behind the cluster).
    let seq = match &sent {
        ClientResponse::Applied(o) => match o.result {
            Ok(Receipt::Appended { seq, .. }) => seq,
            ref other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    let delete = signed(&alice, 12, Operation::Delete { room, seq });
    assert!(applied_ok(&pair.ask(a, &alice, ClientRequest::Submit(delete))));
    let removed = |p: &Pair, at| p.took(at, |o| matches!(o, ServiceOutput::RemoveBlob { .. }));
    assert_eq!((removed(&pair, a), removed(&pair, b)), (0, 1), "only B's damaged copy so far");
    for at in [a, b] {
        pair.input(at, ServiceInput::BlobsListed { files: vec![file] });
        pair.input(at, ServiceInput::BlobsListed { files: vec![file] });
    }
    assert_eq!((removed(&pair, a), removed(&pair, b)), (1, 2));
    assert_eq!(pair.chunks(a, alice.user(), file), Some(ChunkAnswer::Forbidden));
    assert!(holders(&pair, a).is_empty());
}

#[test]
fn a_file_send_is_answered_once_its_content_is_on_a_majority() {
    let Keyed { mut pair, a, b, alice, .. } = keyed_with_alice(Some(Visibility::Public));
    let send = |n, content: &[u8]| {
        let info = FileInfo {
            id: FileId::of(content),
            name: "f.txt".into(),
            media_type: "text/plain".into(),
        };
        send_file(&alice, n, info)
    };
    let user = alice.user();

    // Held by A alone (one of two voters): the message is applied (B
    // starts fetching it), but the answer waits, here at the follower the
    // client asked, until B stores it too.
    let file = FileId::of(b"one");
    pair.input(a, ServiceInput::BlobStored { file });
    let asker = pair.submit(b, user, send(11, b"one"));
    assert!(!pair.answered(asker), "answered before the content is on a majority");
    let fetch =
        |o: &ServiceOutput| matches!(o, ServiceOutput::FetchFile { file: f, .. } if *f == file);
    assert_eq!(pair.took(b, fetch), 1);
    pair.input(b, ServiceInput::BlobStored { file });
    assert!(applied_ok(&pair.client_answer(asker)));

    // Never stored on a majority: after the wait, the client is told to
    // retry (maybe applied); the retry is a duplicate and waits again.
    let lonely = FileId::of(b"two");
    pair.input(a, ServiceInput::BlobStored { file: lonely });
    let asker = pair.submit(a, user, send(12, b"two"));
    assert!(!pair.answered(asker));
    // Time passes in ticks, so the pair keeps its leader.
    for _ in 0..=limits::FILE_STORED_WAIT_MS / 100 {
        pair.now = pair.now + Duration::from_millis(100);
        let now = pair.now;
        for id in [a, b] {
            pair.services.get_mut(&id).expect("replica").handle_timeout(now);
        }
        pair.settle();
    }
    assert_eq!(pair.client_answer(asker), ClientResponse::Retry { maybe_applied: true });
    let again = pair.submit(a, user, send(12, b"two"));
    assert!(!pair.answered(again), "the duplicate waits too: {:?}", pair.client_answer(again));
    pair.input(b, ServiceInput::BlobStored { file: lonely });
    assert!(matches!(pair.client_answer(again), ClientResponse::Applied(o) if o.duplicate));
}

/// Asks `at` to store `file` for `who`; the asker (its answer may wait).
fn ask_store(pair: &mut Pair, at: NodeId, who: &Identity, file: FileId) -> AskerId {
    let asker = pair.asker();
    let request = ClientRequest::StoreFile(file);
    let frame = Bytes::from(RequestFrame { request_id: 7, request }.encode());
    pair.input(at, ServiceInput::ClientRequested { asker, user: Some(who.user()), frame });
    asker
}

/// Lets a held `StoreFile` answer run out: "still storing".
fn wait_out(pair: &mut Pair, asker: AskerId) -> ClientResponse {
    assert!(!pair.answered(asker), "answered at once: {:?}", pair.client_answer(asker));
    tick(pair, limits::STORE_WAIT_MS);
    pair.client_answer(asker)
}

#[test]
fn a_client_uploads_by_asking_a_replica_to_store_what_it_serves() {
    let Keyed { mut pair, a, alice, .. } = keyed_with_alice(None);
    let file = FileId::of(b"upload");
    let store = |pair: &mut Pair, file| ask_store(pair, a, &alice, file);

    let first = store(&mut pair, file);
    let from_alice = |o: &ServiceOutput| {
        matches!(o, ServiceOutput::FetchFile { sources, .. }
            if *sources == vec![FileSource::Client(alice.user())])
    };
    assert_eq!(pair.took(a, from_alice), 1);
    // The answer waits a while for the content, then says "still storing".
    assert_eq!(wait_out(&mut pair, first), ClientResponse::FileStoring(file));
    // Asking again while it is fetched starts nothing new.
    let again = store(&mut pair, file);
    assert_eq!(pair.took(a, |o| matches!(o, ServiceOutput::FetchFile { .. })), 1);
    // A second upload of the same user is taken; a third waits.
    let (second, third) = (FileId::of(b"second"), FileId::of(b"third"));
    let second_asked = store(&mut pair, second);
    let third_asked = store(&mut pair, third);
    assert_eq!(pair.client_answer(third_asked), ClientResponse::Busy);
    // Stored: the replica says so in the log, and the waiting ask hears
    // the moment the log records it.
    pair.input(a, ServiceInput::BlobStored { file });
    assert_eq!(pair.client_answer(again), ClientResponse::FileStored(file));
    let stored = store(&mut pair, file);
    assert_eq!(pair.client_answer(stored), ClientResponse::FileStored(file));
    let third_again = store(&mut pair, third);
    assert_eq!(wait_out(&mut pair, third_again), ClientResponse::FileStoring(third));
    // Larger than any file: refused with the reason.
    let huge = FileId { root: [1; 32], size_bytes: limits::FILE_BYTES_MAX + 1 };
    let too_large = store(&mut pair, huge);
    assert!(matches!(
        pair.client_answer(too_large),
        ClientResponse::StoreRefused(ImError::BadFile(FileInfoError::TooLarge { .. }))
    ));

    // The disk filled up under an upload: the waiting uploader is told
    // why, once (nothing was acknowledged); asking again starts over.
    // (The second's first ask ran out meanwhile.)
    assert_eq!(pair.client_answer(second_asked), ClientResponse::FileStoring(second));
    let waiting = store(&mut pair, second);
    let reason = "blob store at /d: No space left on device (os error 28)".to_string();
    pair.input(a, ServiceInput::FetchFailed { file: second, reason: reason.clone() });
    let refused = ClientResponse::StoreRefused(ImError::StoreFailed { reason: reason.clone() });
    assert_eq!(pair.client_answer(waiting), refused);
    let over = store(&mut pair, second);
    assert_eq!(wait_out(&mut pair, over), ClientResponse::FileStoring(second));
    // Failed with nobody waiting: the next ask is told.
    pair.input(a, ServiceInput::FetchFailed { file: second, reason: reason.clone() });
    let told = store(&mut pair, second);
    assert_eq!(pair.client_answer(told), refused);
    // A failure nobody asked about within the minute is forgotten.
    let gone = store(&mut pair, second);
    wait_out(&mut pair, gone);
    pair.input(a, ServiceInput::FetchFailed { file: second, reason: "gone".into() });
    pair.now = pair.now + std::time::Duration::from_millis(limits::UPLOAD_FAILURE_REMEMBERED_MS);
    let later = store(&mut pair, second);
    assert_eq!(wait_out(&mut pair, later), ClientResponse::FileStoring(second));
}

#[test]
fn file_sends_past_the_bound_are_told_to_back_off_never_answered_early() {
    let Keyed { mut pair, a, alice, .. } = keyed_with_alice(Some(Visibility::Public));
    // Held by A alone: no send of it can be answered yet.
    let file = FileId::of(b"waits");
    pair.input(a, ServiceInput::BlobStored { file });
    let info = FileInfo { id: file, name: "w.txt".into(), media_type: "text/plain".into() };
    let held: Vec<AskerId> = (0..=limits::FILE_SENDS_PENDING_MAX as u128)
        .map(|n| pair.submit(a, alice.user(), send_file(&alice, 100 + n, info.clone())))
        .collect();
    let (last, waiting) = held.split_last().expect("sends");
    assert!(waiting.iter().all(|asker| !pair.answered(*asker)));
    assert_eq!(pair.client_answer(*last), ClientResponse::Busy);
}

#[test]
fn a_replica_that_gave_up_a_fetch_looks_again_on_its_sweep() {
    let Keyed { mut pair, a, b, alice, .. } = keyed_with_alice(Some(Visibility::Private));
    let file = FileId::of(b"minutes");
    let info = FileInfo { id: file, name: "minutes.txt".into(), media_type: "text/plain".into() };
    pair.input(a, ServiceInput::BlobStored { file });
    // Its answer waits for a majority (both) to hold the content.
    let sent = pair.submit(a, alice.user(), send_file(&alice, 11, info));
    let fetches = |p: &Pair| p.took(b, |o| matches!(o, ServiceOutput::FetchFile { .. }));
    assert_eq!(fetches(&pair), 1, "B fetches what the log refers to and A holds");

    // B gives up (A was unreachable, say): nothing happens until a sweep.
    pair.input(b, ServiceInput::FetchFailed { file, reason: "no source".into() });
    tick(&mut pair, 1);
    assert_eq!(fetches(&pair), 1);
    tick(&mut pair, limits::FILE_SWEEP_INTERVAL_MS + limits::FILE_SWEEP_FIRST_MS);
    assert_eq!(fetches(&pair), 2, "the sweep fetches it again");
    // While it fetches, later sweeps do not start it twice.
    tick(&mut pair, limits::FILE_SWEEP_INTERVAL_MS);
    assert_eq!(fetches(&pair), 2);
    // Stored: B says so, and no sweep fetches it again.
    pair.input(b, ServiceInput::BlobStored { file });
    tick(&mut pair, limits::FILE_SWEEP_INTERVAL_MS);
    assert_eq!(fetches(&pair), 2);
    assert_eq!(pair.services[&a].node().state_machine().file_holders(file).len(), 2);
    assert!(pair.answered(sent));
}

/// Time goes by in Raft ticks, so the leader keeps leading.
fn tick(p: &mut Pair, ms: u64) {
    for _ in 0..ms.div_ceil(50) {
        p.now = p.now + std::time::Duration::from_millis(50);
        let now = p.now;
        for id in p.ids {
            let service = p.services.get_mut(&id).expect("replica");
            if service.poll_timeout().is_some_and(|t| t <= now) {
                service.handle_timeout(now);
            }
        }
        p.settle();
    }
}

#[test]
fn a_stored_file_is_not_fetched_again_while_its_record_is_missing_and_is_announced_again() {
    let Keyed { mut pair, a, b, alice, .. } = keyed_with_alice(Some(Visibility::Private));
    let file = FileId::of(b"agenda");
    let info = FileInfo { id: file, name: "agenda.txt".into(), media_type: "text/plain".into() };
    // B stored it, but its `HoldFile` is lost on the way to the leader.
    pair.cut = true;
    pair.input(b, ServiceInput::BlobStored { file });
    pair.cut = false;
    // A stores it too and alice sends it: B hears of A's copy and of the
    // message, and does not fetch what it stored (seed 123 of the madsim
    // file workload fetched such a file every 200 ms).
    pair.input(a, ServiceInput::BlobStored { file });
    let sent = pair.submit(a, alice.user(), send_file(&alice, 11, info));
    assert_eq!(pair.took(b, |o| matches!(o, ServiceOutput::FetchFile { .. })), 0);
    assert!(!pair.answered(sent), "one holder of two is no majority");
    // Its sweep says again that it holds it: now on a majority.
    tick(&mut pair, limits::FILE_SWEEP_FIRST_MS + limits::FILE_SWEEP_INTERVAL_MS);
    assert_eq!(pair.services[&a].node().state_machine().file_holders(file).len(), 2);
    assert!(pair.answered(sent));
    assert_eq!(pair.took(b, |o| matches!(o, ServiceOutput::FetchFile { .. })), 0);
}

#[test]
fn a_sweep_removes_copies_nothing_refers_to_or_holds() {
    let Keyed { mut pair, a, b, alice, .. } = keyed_with_alice(Some(Visibility::Private));
    let (kept, orphan, forgotten) =
        (FileId::of(b"kept"), FileId::of(b"orphan"), FileId::of(b"released"));
    let info = FileInfo { id: kept, name: "kept.txt".into(), media_type: "text/plain".into() };
    pair.input(a, ServiceInput::BlobStored { file: kept });
    pair.input(b, ServiceInput::BlobStored { file: kept });
    assert!(applied_ok(&pair.ask(a, &alice, ClientRequest::Submit(send_file(&alice, 11, info)))));
    // Uploaded, not sent yet: held, referred to by nothing (yet).
    pair.input(a, ServiceInput::BlobStored { file: orphan });
    // The sweep asks the store what it holds.
    tick(&mut pair, limits::FILE_SWEEP_FIRST_MS + 50);
    let listed = |o: &ServiceOutput| matches!(o, ServiceOutput::ListBlobs { after: None, .. });
    assert_eq!(pair.took(a, listed), 1);
    // A copy of content released while this replica was away goes, once
    // two looks agree; the others stay.
    let files = vec![kept, orphan, forgotten];
    pair.input(a, ServiceInput::BlobsListed { files: files.clone() });
    assert_eq!(pair.took(a, |o| matches!(o, ServiceOutput::RemoveBlob { .. })), 0);
    pair.input(a, ServiceInput::BlobsListed { files });
    let removed = |file: FileId| move |o: &ServiceOutput| matches!(o, ServiceOutput::RemoveBlob { file: f, why: BlobRemoval::Released } if *f == file);
    assert_eq!(pair.took(a, removed(forgotten)), 1);
    assert_eq!(pair.took(a, removed(kept)) + pair.took(a, removed(orphan)), 0);
}

#[test]
fn a_replica_long_unheard_from_its_leader_removes_nothing_its_log_calls_released() {
    let Keyed { mut pair, b, .. } = keyed_with_alice(None);
    let forgotten = FileId::of(b"released");
    tick(&mut pair, limits::LEADER_UNHEARD_MS_MAX + 1_000);
    fn service(pair: &mut Pair, id: NodeId) -> &mut ReplicaService {
        pair.services.get_mut(&id).expect("a replica")
    }
    assert!(service(&mut pair, b).node().leader().is_some(), "B names its leader");
    // As a learner the cluster stopped talking to would: it names its
    // leader and has applied all it knows committed, but has heard nothing
    // for longer than the limit. Its log is stale: two looks remove nothing.
    let stale = pair.now - Duration::from_millis(limits::LEADER_UNHEARD_MS_MAX + 1);
    service(&mut pair, b).leader_heard_at = stale;
    let removed = |o: &ServiceOutput| matches!(o, ServiceOutput::RemoveBlob { .. });
    for _ in 0..2 {
        pair.input(b, ServiceInput::BlobsListed { files: vec![forgotten] });
    }
    assert_eq!(pair.took(b, removed), 0);
    // In touch again: two looks agree, and the copy goes.
    let now = pair.now;
    service(&mut pair, b).leader_heard_at = now;
    for _ in 0..2 {
        pair.input(b, ServiceInput::BlobsListed { files: vec![forgotten] });
    }
    assert_eq!(pair.took(b, removed), 1);
}
