//! A client's `StoreFile` that finds its content still being stored is
//! answered when that changes: `FileStored` once the applied log records
//! this replica as holding it, the upload's failure once it fails, and
//! `FileStoring` (ask again) after [`limits::STORE_WAIT_MS`] or when the
//! content is released meanwhile. A client hears the moment its upload is
//! done, without asking often.

use super::asker::Asker;
use super::held_answers::HeldAnswers;
use super::ReplicaService;
use crate::files::FileId;
use crate::im::protocol::ImError;
use crate::limits;
use crate::time::Instant;
use crate::wire::client_protocol::ClientResponse;
use std::time::Duration;

/// `StoreFile` answers held.
pub(super) type StoreWaits = HeldAnswers<()>;

impl ReplicaService {
    /// Holds `asker`'s answer while `file` is being stored here (at once
    /// "still storing" when [`limits::STORE_WAITS_MAX`] are held).
    pub(super) fn wait_for_store(&mut self, asker: Asker, file: FileId) {
        if self.store_waits.len() >= limits::STORE_WAITS_MAX {
            return self.answer_now(asker, ClientResponse::FileStoring(file));
        }
        let until = self.now + Duration::from_millis(limits::STORE_WAIT_MS);
        self.store_waits.hold(file, asker, (), until);
    }

    /// The log records this replica as holding `file`.
    pub(super) fn answer_stored(&mut self, file: FileId) {
        self.end_store_waits(file, &ClientResponse::FileStored(file));
    }

    /// The upload of `file` failed: the waiting clients are told why (and
    /// the failure is not told again: asking again starts over). False
    /// when nobody was waiting.
    pub(super) fn answer_store_failed(&mut self, file: FileId, reason: &str) -> bool {
        let reason = reason.to_string();
        let refused = ClientResponse::StoreRefused(ImError::StoreFailed { reason });
        self.end_store_waits(file, &refused)
    }

    /// `file` was released while stored: ask again.
    pub(super) fn answer_store_released(&mut self, file: FileId) {
        self.end_store_waits(file, &ClientResponse::FileStoring(file));
    }

    fn end_store_waits(&mut self, file: FileId, response: &ClientResponse) -> bool {
        let waiting = self.store_waits.take(file);
        let told = !waiting.is_empty();
        for (asker, ()) in waiting {
            self.answer_now(asker, response.clone());
        }
        told
    }

    /// Answers "still storing" to those held their time.
    pub(super) fn expire_store_waits(&mut self) {
        for (file, asker, ()) in self.store_waits.take_expired(self.now) {
            self.answer_now(asker, ClientResponse::FileStoring(file));
        }
    }

    /// When the first held answer is due.
    pub(super) fn store_waits_timeout(&self) -> Option<Instant> {
        self.store_waits.next_deadline()
    }
}
