//! A file is sent only when its message is applied *and* its content is
//! stored on a majority of the replicas. The replica a client asked holds
//! the `SendFile`'s answer until the log it has applied records holders
//! among a majority of the voters (of both configurations while joint), or
//! answers `Retry { maybe_applied: true }` after
//! [`limits::FILE_STORED_WAIT_MS`]: the client resends the same command,
//! which is a duplicate, and waits again.

use super::asker::{Asker, AskerId};
use super::held_answers::HeldAnswers;
use super::ReplicaService;
use crate::files::FileId;
use crate::ids::NodeId;
use crate::im::protocol::Receipt;
use crate::limits;
use crate::time::Instant;
use crate::wire::client_protocol::ClientResponse;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Answers held back until their file is stored on a majority.
#[derive(Debug, Default)]
pub(super) struct FileSends {
    /// Client askers whose command is a `SendFile`, and its file.
    sending: BTreeMap<AskerId, FileId>,
    /// The answers held.
    held: HeldAnswers<ClientResponse>,
}

impl ReplicaService {
    /// Notes that `asker` submitted a `SendFile` of `file`; false when
    /// too many are noted (the client is told to back off, so that no
    /// send is ever answered before its content is stored).
    pub(super) fn note_file_send(&mut self, asker: AskerId, file: FileId) -> bool {
        let pending = self.file_sends.sending.len() + self.file_sends.held.len();
        if pending >= limits::FILE_SENDS_PENDING_MAX {
            return false;
        }
        self.file_sends.sending.insert(asker, file);
        true
    }

    /// Holds back `response` if it is a file send's success whose content
    /// is not yet on a majority; true when it was held.
    pub(super) fn hold_file_send(&mut self, asker: Asker, response: &ClientResponse) -> bool {
        let Some(file) = self.file_sends.sending.remove(&asker.id) else { return false };
        let appended = matches!(response,
            ClientResponse::Applied(o) if matches!(o.result, Ok(Receipt::Appended { .. })));
        if !appended || self.stored_on_majority(file) {
            return false;
        }
        // Noted and held together are bounded where they are noted.
        debug_assert!(self.file_sends.held.len() < limits::FILE_SENDS_PENDING_MAX);
        let until = self.now + Duration::from_millis(limits::FILE_STORED_WAIT_MS);
        self.file_sends.held.hold(file, asker, response.clone(), until);
        true
    }

    /// Whether the applied log records holders of `file` among a majority
    /// of the voters (of both configurations while joint).
    pub(super) fn stored_on_majority(&self, file: FileId) -> bool {
        let holders: BTreeSet<NodeId> = self.node.state_machine().file_holder_nodes(file).collect();
        let membership = self.node.membership();
        let majority = |voters: &[NodeId]| {
            voters.is_empty()
                || voters.iter().filter(|v| holders.contains(v)).count() > voters.len() / 2
        };
        !membership.voters.is_empty()
            && majority(&membership.voters)
            && majority(&membership.voters_outgoing)
    }

    /// Answers the held sends whose files are now stored (or released: the
    /// message was deleted meanwhile, and its answer stands).
    pub(super) fn release_stored_sends(&mut self) {
        for file in self.file_sends.held.files() {
            let released = !self.node.state_machine().is_file_referenced(file);
            if released || self.stored_on_majority(file) {
                for (asker, response) in self.file_sends.held.take(file) {
                    self.answer_now(asker, response);
                }
            }
        }
    }

    /// Gives up on held sends whose time ran out: `Retry`, maybe applied.
    pub(super) fn expire_file_sends(&mut self) {
        for (_, asker, _) in self.file_sends.held.take_expired(self.now) {
            self.answer_now(asker, ClientResponse::Retry { maybe_applied: true });
        }
    }

    /// When the first held send gives up.
    pub(super) fn file_sends_timeout(&self) -> Option<Instant> {
        self.file_sends.held.next_deadline()
    }
}
