//! Replays every committed fuzz corpus input (and every crash ever found,
//! kept as a regression input) through the fuzz targets' checks, so the
//! test command exercises them without cargo-fuzz.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("readable");
        check(&data);
        count += 1;
    }
    assert!(count > 0, "no corpus for {target}");
}

#[test]
fn wire_decode_corpus() {
    replay("wire_decode", kith_core::testing::fuzz::wire_decode);
}

#[test]
fn log_recovery_corpus() {
    replay("log_recovery", kith_core::testing::fuzz::log_recovery);
}

#[test]
fn im_apply_corpus() {
    replay("im_apply", kith_core::testing::fuzz::im_apply);
}

#[test]
fn cluster_ops_corpus() {
    replay("cluster_ops", |data| {
        kith_core::testing::fuzz::cluster_ops(data, kith_sim_tests::invariants::all)
    });
}

#[test]
fn raft_inbound_corpus() {
    replay("raft_inbound", kith_core::testing::fuzz::raft_inbound);
}

#[test]
fn file_download_corpus() {
    replay("file_download", kith_core::testing::fuzz::file_download);
}

/// Writes the seed corpora (run by hand: `cargo test -p kith-core --test
/// fuzz_corpus write_seed_corpus -- --ignored`).
#[test]
#[ignore]
fn write_seed_corpus() {
    use bytes::Bytes;
    use kith_core::durable::{encode_batch, DurableHardState, Record};
    use kith_core::ids::NodeId;
    use kith_core::im::protocol::{QueryKind, RoomId};
    use kith_core::wire::client_protocol::{
        ClientRequest, ClientResponse, RequestFrame, ResponseFrame,
    };
    use kith_core::wire::*;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let message = |kind| WireMessage {
        log_term: 1,
        index: 3,
        entries: vec![WireEntry {
            term: 2,
            index: 4,
            payload: WireEntryPayload::Normal(Bytes::from_static(b"x")),
            context: Bytes::new(),
        }],
        commit: 3,
        commit_term: 1,
        ..WireMessage::new(kind, 2)
    };
    let frame = PeerFrame {
        from: NodeId(1),
        to: NodeId(2),
        body: PeerBody::Raft(message(WireMessageKind::Append)),
    };
    write("wire_decode", "append", &frame.encode());
    let mut snap = message(WireMessageKind::Snapshot);
    snap.entries.clear();
    snap.snapshot = Some(WireSnapshotMeta {
        index: 9,
        term: 2,
        conf_state: WireConfState { voters: vec![1, 2, 3], ..Default::default() },
    });
    for (i, chunk) in
        SnapshotChunk::split(snap, &Bytes::from_static(b"state")).into_iter().enumerate()
    {
        let f = PeerFrame { from: NodeId(1), to: NodeId(2), body: PeerBody::SnapshotChunk(chunk) };
        write("wire_decode", &format!("snapshot_chunk_{i}"), &f.encode());
    }
    let req = RequestFrame {
        request_id: 1,
        request: ClientRequest::Query(QueryKind::Room { room: RoomId::Group("lobby".into()) }),
    };
    write("wire_decode", "client_request", &req.encode());
    let resp = ResponseFrame {
        request_id: 1,
        response: ClientResponse::NotLeader { leader_hint: Some(NodeId(2)) },
    };
    write("wire_decode", "client_response", &resp.encode());
    {
        use kith_core::im::identity::Identity;
        use kith_core::im::presence::{PresenceBody, PresenceStatus, SignedPresence};
        use kith_core::wire::client_protocol::{LiveFrame, RoomFrom, SubscribeFrame};
        use kith_core::wire::replica_protocol::{
            encode, AdminRequest, PeerRequest, PeerResponse, ReplicaRecord,
        };
        let sub =
            SubscribeFrame { rooms: vec![RoomFrom::new(RoomId::Group("lobby".into()), 7, 9)] };
        write("wire_decode", "subscribe", &sub.encode());
        let live = LiveFrame::Ended { room: RoomId::Group("lobby".into()), last_seq: 9 };
        write("wire_decode", "live_ended", &live.encode());
        let seen = LiveFrame::ChangesSeen { room: RoomId::Group("lobby".into()), change: 9 << 10 };
        write("wire_decode", "live_changes_seen", &seen.encode());
        let record = ReplicaRecord { peer: vec![0, 36, 8, 1], addrs: vec![vec![4, 127, 0, 0, 1]] };
        write("wire_decode", "peer_hello", &encode(&PeerRequest::Hello(vec![record.clone()])));
        write("wire_decode", "peer_raft", &encode(&PeerRequest::Raft(frame.encode())));
        write("wire_decode", "peer_refused", &encode(&PeerResponse::Refused("no".into())));
        write(
            "wire_decode",
            "admin_add",
            &encode(&AdminRequest::Add { replica: record, learner: true }),
        );
        {
            use kith_core::files::{ChunkResponse, FileId};
            use kith_core::wire::chunk_protocol::{ChunkAnswer, ChunkRequest};
            let file = FileId { root: [5; 32], size_bytes: 100_000 };
            let request = ChunkRequest { file, first_group: 2, group_count: 3 };
            write("wire_decode", "chunk_request", &request.encode());
            let groups = ChunkResponse {
                first_group: 2,
                group_count: 1,
                encoded: Bytes::from_static(&[9; 80]),
            };
            write("wire_decode", "chunk_answer", &ChunkAnswer::Groups(groups).encode());
            write("wire_decode", "chunk_not_here", &ChunkAnswer::NotHere.encode());
        }
        let ann = Identity::from_secret([1; 32]);
        let body = PresenceBody { status: PresenceStatus::Away, issued_at_ms: 5, ttl_ms: 60_000 };
        write("wire_decode", "presence_gossip", &encode(&SignedPresence::sign(&ann, &body)));
    }
    // cluster_ops: byte strings (from a fixed seed) whose schedules are
    // long and eventful, so the replay in `cargo test` does real work.
    {
        use arbitrary::{Arbitrary, Unstructured};
        use kith_core::rng::SeededRng;
        use kith_core::testing::fault_schedule::{FaultSchedule, FaultStep};
        let mut rng = SeededRng::new(2026);
        let mut kept = 0;
        while kept < 4 {
            let bytes: Vec<u8> = (0..400).map(|_| rng.range(0, 256) as u8).collect();
            let Ok(s) = FaultSchedule::arbitrary_take_rest(Unstructured::new(&bytes)) else {
                continue;
            };
            let faults = s.steps.iter().filter(|f| !matches!(f, FaultStep::Run(_))).count();
            let runs = s.steps.iter().filter(|f| matches!(f, FaultStep::Run(m) if *m > 40)).count();
            if faults >= 4 && runs >= 3 {
                write("cluster_ops", &format!("schedule_{kept}"), &bytes);
                kept += 1;
            }
        }
    }
    let mut log = vec![0x80u8];
    log.extend(encode_batch(&[Record::HardState(DurableHardState {
        term: 1,
        vote: 1,
        commit: 0,
    })]));
    log.extend(encode_batch(&[Record::Entries(vec![WireEntry {
        term: 1,
        index: 2,
        payload: WireEntryPayload::Normal(Bytes::from_static(b"e")),
        context: Bytes::new(),
    }])]));
    write("log_recovery", "two_batches", &log);
    let torn = &log[..log.len() - 3];
    write("log_recovery", "torn_tail", torn);
    // Damaged-log mode: 4 batches, torn near the end, a byte flipped early.
    write("log_recovery", "damaged_flip_early", &[1, 3, 0x7f, 0x05, 1, 2, 3, 0]);
    write("log_recovery", "damaged_tear_only", &[1, 5, 0x50, 0x03, 0, 1, 2, 3, 1, 2]);
    // raft_inbound and im_apply inputs start with a mode byte: 0 selects
    // the dense decoding these seeds are written in.
    // Time passes, a write, a forged heartbeat committing far ahead, a
    // forged append, garbage, more time.
    write(
        "raft_inbound",
        "forged_commit",
        &[0, 0, 200, 1, 3, 7, 5, 1, 3, 0x45, 0x10, 0, 0, 0, 200],
    );
    write("raft_inbound", "forged_append", &[0, 0, 200, 3, 0, 9, 1, 4, 60, 0, 3, 0, 150]);
    // Create a private room, invite, join, send, kick, send again, read.
    write(
        "im_apply",
        "private_room_life",
        &[0, 0, 0, 1, 9, 0, 1, 3, 0, 1, 6, 0, 0, 12, 0, 1, 18, 0, 0, 21, 0, 5],
    );
    write("im_apply", "public_room_roles", &[0, 0, 1, 0, 4, 1, 0, 16, 1, 1, 15, 1, 4, 18, 1, 0]);
    write("raft_inbound", "garbage", &[0, 0, 120, 2, 5, 1, 2, 3, 4, 5, 0, 90]);
    // file_download: a size byte, then operations (see download_schedule).
    // Three groups asked, answered honestly, synced and saved, a crash and
    // a resume; then damaged and input-written answers and a full sync.
    let mut honest = vec![5u8];
    for _ in 0..6 {
        honest.extend([0, 0, 3, 0, 1, 4]);
    }
    honest.extend([7, 0, 0, 0, 0, 3, 0, 1, 4, 5, 120, 0, 0, 3, 0, 1]);
    write("file_download", "honest_crash_resume", &honest);
    write("file_download", "damaged_answers", &[4, 1, 0, 7, 3, 1, 1, 40, 1, 0, 0, 3, 0, 1]);
    write("file_download", "forged_answer", &[3, 2, 0, 0, 1, 2, 9, 9, 9, 0, 0, 3, 0, 0, 6, 1]);
    write("file_download", "timeouts", &[200, 5, 255, 5, 255, 0, 0, 0, 1, 3, 0, 1, 4]);
    // Create, checkpoint (snapshot and restore), send, checkpoint, send.
    write("im_apply", "checkpoint_mid_room", &[0, 0, 0, 0, 24, 0, 0, 18, 0, 0, 24, 0, 0, 18, 0, 0]);
}
