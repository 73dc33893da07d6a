//! File content around a replica: who may fetch what from it, what it
//! fetches from the others, what it reclaims, and when it tells the log
//! that it holds a content. The blob store and the transfers are the
//! driver's; every decision is here.
//!
//! Rules:
//! - A client may fetch a content while it may read a live entry that
//!   refers to it (`ImMachine::may_fetch`); a member replica may fetch any
//!   content the log refers to or records as held (it replicates). Anyone
//!   else is `Forbidden`. A replica serves only what the log says it holds.
//! - When the log refers to a content this replica does not hold, it
//!   fetches it from the holders the log names; once the driver reports it
//!   stored (synced, checked), the replica submits `HoldFile` as itself.
//! - When the log releases a content, the replica stops uploading and
//!   fetching it; the copy goes at the sweep (below), never on the release
//!   alone (the replica may be behind the cluster). A copy found damaged
//!   is removed and fetched again.
//! - A client uploads by asking a replica to store a content
//!   (`StoreFile`): the replica fetches it from the client (and from any
//!   replica that holds it), within the user's quota and a bound on
//!   uploads, and answers `FileStored` once the log records it as a holder
//!   (a client that asks meanwhile is answered when that changes, or after
//!   a short wait: `store_waits`).
//! - Every [`FILE_SWEEP_INTERVAL_MS`] the replica looks through a part of
//!   the referenced contents for ones it lacks (after a restart, a fetch
//!   that gave up, a copy lost with its disk) and fetches them, at most
//!   [`REPLICATION_FETCHES_MAX`] at a time; and through a part of its
//!   store's copies for ones nothing refers to or holds, and removes those
//!   found so at two looks in a row, each while caught up.

use super::asker::{Asker, AskerId, AskerKind};
use super::intake::Origin;
use super::output::{BlobRemoval, FileSource, ServiceOutput};
use super::ReplicaService;
use crate::files::FileId;
use crate::im::identity::UserId;
use crate::im::protocol::{
    CommandBody, EntryKind, FileInfoError, ImError, ImEvent, Operation, SignedCommand,
    IM_PROTOCOL_VERSION,
};
use crate::limits::{
    self, FILE_SWEEP_FILES_MAX, FILE_SWEEP_FIRST_MS, FILE_SWEEP_INTERVAL_MS,
    REPLICATION_FETCHES_MAX, UPLOAD_FAILURE_REMEMBERED_MS,
};
use crate::time::Instant;
use crate::wire::chunk_protocol::{ChunkAnswer, ChunkRequest};
use crate::wire::client_protocol::ClientResponse;
use std::collections::BTreeSet;
use std::time::Duration;

/// When the next look for missing content is due, and where the last one
/// stopped.
#[derive(Clone, Debug)]
pub(super) struct Sweep {
    pub(super) due: Instant,
    after: Option<FileId>,
    /// Where the look through the store's own copies goes on from.
    listed_after: Option<FileId>,
    /// Copies the last looks found nothing refers to or holds: removed if
    /// the next look still finds them so (at most
    /// [`FILE_SWEEP_FILES_MAX`]).
    unheld: BTreeSet<FileId>,
}

impl Sweep {
    /// The first look comes soon after start, once the log has been read.
    pub(super) fn starting(now: Instant) -> Sweep {
        let due = now + Duration::from_millis(FILE_SWEEP_FIRST_MS);
        Sweep { due, after: None, listed_after: None, unheld: BTreeSet::new() }
    }
}

impl ReplicaService {
    /// A chunk request from a connection authenticated as `user`.
    pub(super) fn on_chunk_request(&mut self, asker: AskerId, user: Option<UserId>, frame: &[u8]) {
        let answer = |s: &mut ReplicaService, answer: ChunkAnswer| {
            let frame = answer.encode();
            s.outputs.push_back(ServiceOutput::Respond { asker, frame });
        };
        let request = match ChunkRequest::decode(frame) {
            Ok(r) => r,
            Err(e) => return answer(self, ChunkAnswer::Refused(e.to_string())),
        };
        let file = request.file;
        let machine = self.node.state_machine();
        let allowed = user.is_some_and(|user| {
            if self.node.membership().contains(user.node_id()) {
                machine.is_file_in_use(file)
            } else {
                machine.may_fetch(user, file)
            }
        });
        if !allowed {
            return answer(self, ChunkAnswer::Forbidden);
        }
        // A copy being fetched (a damaged one being repaired) is not whole.
        if !self.holds(file) || self.fetching.contains(&file) {
            return answer(self, ChunkAnswer::NotHere);
        }
        let groups = request.groups();
        self.outputs.push_back(ServiceOutput::ServeChunks { asker, file, groups });
    }

    /// A client asks this replica to store `file`, which it serves.
    pub(super) fn store_file(&mut self, file: FileId, user: UserId) -> ClientResponse {
        if let Err(too_large) = FileInfoError::check_size(file) {
            return ClientResponse::StoreRefused(ImError::BadFile(too_large));
        }
        if self.holds(file) {
            return ClientResponse::FileStored(file);
        }
        if let Err(over) = self.node.state_machine().check_file_quota(user, file) {
            return ClientResponse::StoreRefused(over);
        }
        if self.fetching.contains(&file) {
            return ClientResponse::FileStoring(file);
        }
        // Stored, the record not applied yet: say so again (it may have
        // been lost with a leader) rather than fetch it again.
        if self.unrecorded.contains(file) {
            self.announce_held(file);
            return ClientResponse::FileStoring(file);
        }
        // Told once; asking again starts over (the disk may have room now).
        let remembered = Duration::from_millis(UPLOAD_FAILURE_REMEMBERED_MS);
        self.upload_failures.forget_older_than(self.now, remembered);
        if let Some(reason) = self.upload_failures.remove(file) {
            return ClientResponse::StoreRefused(ImError::StoreFailed { reason });
        }
        let by_user = self.uploading.values().filter(|u| **u == user).count();
        if by_user >= limits::UPLOADS_PER_USER_MAX || self.uploading.len() >= limits::UPLOADS_MAX {
            return ClientResponse::Busy;
        }
        let mut sources = self.other_holders(file);
        sources.push(FileSource::Client(user));
        self.fetching.insert(file);
        self.uploading.insert(file, user);
        self.outputs.push_back(ServiceOutput::FetchFile { file, sources });
        if crate::config::bug_on!(self, hold_before_stored) {
            self.announce_held(file);
        }
        ClientResponse::FileStoring(file)
    }

    /// Whether the log records this replica as holding `file`.
    fn holds(&self, file: FileId) -> bool {
        let me = self.node.id();
        self.node.state_machine().file_holder_nodes(file).any(|n| n == me)
    }

    /// The other replicas the log records as holding `file`.
    fn other_holders(&self, file: FileId) -> Vec<FileSource> {
        let me = self.node.id();
        let holders = self.node.state_machine().file_holder_nodes(file);
        holders.filter(|n| *n != me).map(FileSource::Replica).collect()
    }

    /// The driver stored `file` (synced, its hash tree built and checked).
    pub(super) fn on_blob_stored(&mut self, file: FileId) {
        self.fetching.remove(&file);
        self.uploading.remove(&file);
        if !self.holds(file) {
            self.unrecorded.insert(self.now, file, ());
        }
        self.announce_held(file);
    }

    /// Submits `HoldFile` for `file` as this replica, unless the log
    /// records it as a holder already.
    fn announce_held(&mut self, file: FileId) {
        if self.holds(file) {
            return;
        }
        let Some(identity) = &self.identity else {
            tracing::warn!(%file, "stored a file but has no key to say so in the log");
            return;
        };
        // The id is fixed by who, what and when: a repeat within the same
        // millisecond is the same command, a later one (after a release
        // and a new upload) a new one.
        let issued_at_ms = self.now.as_micros() / 1000;
        let mut id = blake3::Hasher::new();
        id.update(&self.node.id().get().to_le_bytes());
        id.update(&file.root);
        id.update(&file.size_bytes.to_le_bytes());
        id.update(&issued_at_ms.to_le_bytes());
        let id: [u8; 16] = id.finalize().as_bytes()[..16].try_into().expect("16 bytes");
        let body = CommandBody {
            version: IM_PROTOCOL_VERSION,
            command_id: uuid::Uuid::from_bytes(id),
            issued_at_ms,
            op: Operation::HoldFile { file },
        };
        let command = SignedCommand::sign(identity, &body);
        let asker = Asker { id: AskerId(u64::MAX), kind: AskerKind::Itself };
        let me = self.node.id();
        self.submit(command, asker, Origin::Replica(me));
    }

    /// The driver found its copy of `file` damaged: drop it and fetch it
    /// again (it no longer serves it meanwhile: the answer is `NotHere`).
    pub(super) fn on_blob_damaged(&mut self, file: FileId) {
        self.unrecorded.remove(file);
        self.outputs.push_back(ServiceOutput::RemoveBlob { file, why: BlobRemoval::Damaged });
        self.fetching.remove(&file);
        self.fetch_if_needed(file, true);
    }

    /// The driver gave up fetching `file` (no source could serve it, or
    /// its disk failed); a later holder record or sweep starts it again. A
    /// failed upload is told to the clients waiting on it, else remembered
    /// for its uploader's next `StoreFile`.
    pub(super) fn on_fetch_failed(&mut self, file: FileId, reason: String) {
        self.fetching.remove(&file);
        if self.uploading.remove(&file).is_some() && !self.answer_store_failed(file, &reason) {
            let remembered = Duration::from_millis(UPLOAD_FAILURE_REMEMBERED_MS);
            self.upload_failures.forget_older_than(self.now, remembered);
            self.upload_failures.insert(self.now, file, reason);
        }
    }

    /// Reacts to what an applied command did to files.
    pub(super) fn on_file_events(&mut self, events: &[ImEvent]) {
        let stored_or_released = events
            .iter()
            .any(|e| matches!(e, ImEvent::FileHeld { .. } | ImEvent::FileReleased { .. }));
        if stored_or_released {
            self.release_stored_sends();
        }
        for event in events {
            match event {
                ImEvent::FileReleased { file } => self.on_file_released(*file),
                ImEvent::FileHeld { file, holder } => {
                    if self.identity.as_ref().is_some_and(|me| me.user() == *holder) {
                        self.unrecorded.remove(*file);
                        self.answer_stored(*file);
                    }
                    self.fetch_if_needed(*file, false);
                }
                ImEvent::Appended { entry, .. } => {
                    if let EntryKind::File(f) = &entry.kind {
                        self.fetch_if_needed(f.file.id, false);
                    }
                }
                _ => {}
            }
        }
    }

    /// An applied command released `file`. The event is of its entry's
    /// index, and the blob store is of now: a replica behind the cluster
    /// applies releases of contents that later entries refer to or hold
    /// again. Being behind cannot be told from here: a replica restarted
    /// behind its log replays them (seed 1318), and a follower's commit
    /// index is only as far as the leader knows it matches, so one whose
    /// log the leader is still filling has applied "all it knows
    /// committed" while the cluster has moved on (seed 8652 with five
    /// voters: a restarted follower reclaimed a copy a message acknowledged
    /// since then needed). So a release removes nothing by itself: it ends
    /// the upload and fetch of the content here, and the sweep's two looks,
    /// a sweep apart and each while caught up, decide whether the copy goes.
    fn on_file_released(&mut self, file: FileId) {
        let replay_bug = crate::config::bug_on!(self, reclaim_on_replayed_release);
        if self.node.state_machine().is_file_in_use(file) && !replay_bug {
            return;
        }
        self.answer_store_released(file);
        self.unrecorded.remove(file);
        self.fetching.remove(&file);
        self.uploading.remove(&file);
        if replay_bug {
            let why = BlobRemoval::Released;
            self.outputs.push_back(ServiceOutput::RemoveBlob { file, why });
        }
    }

    /// Whether this replica has applied all it knows committed, under a
    /// leader it knows and has heard from lately: only then does its log
    /// say what is released (a cut-off learner still names its old leader,
    /// and its commit index is as stale as its log).
    fn caught_up(&self) -> bool {
        let status = self.node.status();
        status.leader.is_some() && self.leader_heard_lately() && status.applied >= status.commit
    }

    /// Looks through the next part of the referenced contents for ones
    /// this replica lacks, and fetches them.
    pub(super) fn sweep_files(&mut self, now: Instant) {
        if now < self.file_sweep.due {
            return;
        }
        self.file_sweep.due = now + Duration::from_millis(FILE_SWEEP_INTERVAL_MS);
        let after = self.file_sweep.after;
        let part: Vec<FileId> = self
            .node
            .state_machine()
            .referenced_files_after(after)
            .take(FILE_SWEEP_FILES_MAX)
            .collect();
        // A short part means the end was reached: start over next time.
        self.file_sweep.after =
            if part.len() < FILE_SWEEP_FILES_MAX { None } else { part.last().copied() };
        for file in part {
            self.fetch_if_needed(file, false);
        }
        for file in self.unrecorded.files() {
            self.announce_held(file);
        }
        let after = self.file_sweep.listed_after;
        self.outputs.push_back(ServiceOutput::ListBlobs { after, max: FILE_SWEEP_FILES_MAX });
    }

    /// The store's copies after the sweep's cursor: one that nothing
    /// refers to or records as held, at two looks a sweep apart, while this
    /// replica is caught up with a leader it knows, goes (it was released
    /// while the replica was down and it caught up from a snapshot, which
    /// replays no releases). Two looks, caught up: a replica restarted
    /// behind its own log must not drop a copy the log still counts on.
    pub(super) fn on_blobs_listed(&mut self, mut files: Vec<FileId>) {
        files.truncate(FILE_SWEEP_FILES_MAX);
        self.file_sweep.listed_after =
            if files.len() < FILE_SWEEP_FILES_MAX { None } else { files.last().copied() };
        if !self.caught_up() {
            self.file_sweep.unheld.clear();
            return;
        }
        for file in files {
            let machine = self.node.state_machine();
            let kept = machine.is_file_in_use(file)
                || self.fetching.contains(&file)
                || self.unrecorded.contains(file);
            if kept {
                self.file_sweep.unheld.remove(&file);
            } else if self.file_sweep.unheld.remove(&file) {
                let why = BlobRemoval::Released;
                self.outputs.push_back(ServiceOutput::RemoveBlob { file, why });
            } else if self.file_sweep.unheld.len() < FILE_SWEEP_FILES_MAX {
                self.file_sweep.unheld.insert(file);
            }
        }
    }

    /// Starts fetching `file` from its holders if the log refers to it and
    /// this replica lacks it (`damaged`: it lacks it whatever the log says).
    /// Beyond [`REPLICATION_FETCHES_MAX`] it waits for a later sweep.
    fn fetch_if_needed(&mut self, file: FileId, damaged: bool) {
        let machine = self.node.state_machine();
        if !machine.is_file_referenced(file) || self.fetching.contains(&file) {
            return;
        }
        if self.unrecorded.contains(file) && !damaged {
            return;
        }
        if self.fetching.len().saturating_sub(self.uploading.len()) >= REPLICATION_FETCHES_MAX {
            return;
        }
        if self.holds(file) && !damaged {
            return;
        }
        let sources = self.other_holders(file);
        if sources.is_empty() {
            return;
        }
        self.fetching.insert(file);
        self.outputs.push_back(ServiceOutput::FetchFile { file, sources });
        if crate::config::bug_on!(self, hold_before_stored) {
            self.announce_held(file);
        }
    }
}
