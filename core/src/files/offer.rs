//! The files a client offers while it uploads them, and what it answers to
//! a chunk request: the sender's side of `/kith/chunks/1`
//! (docs/PROTOCOL.md, section 12.2).
//!
//! Rules:
//! - Only offered files are served; anything else is `NotHere`.
//! - A malformed request, or one for groups outside the file, is
//!   `Refused` with the reason.
//! - Who may ask is the connection's business: a client listens nowhere,
//!   so only the replicas it dialed can ask. Access to the content is
//!   decided by the replicas, from the log, when they serve it on.
//! - At most [`OFFERED_FILES_MAX`] files are offered at once.

use super::FileId;
use crate::limits::OFFERED_FILES_MAX;
use crate::wire::chunk_protocol::{ChunkAnswer, ChunkRequest};
use std::collections::BTreeMap;
use std::ops::Range;

/// The files a client serves, each with what the driver serves it from
/// (`T`: a local file and its hash tree, say).
#[derive(Clone, Debug)]
pub struct Offer<T> {
    files: BTreeMap<FileId, T>,
}

impl<T> Default for Offer<T> {
    fn default() -> Offer<T> {
        Offer { files: BTreeMap::new() }
    }
}

/// What to do with one chunk request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OfferDecision<'a, T> {
    /// Encode these groups of this offered file from its local copy.
    Serve {
        /// What the file is served from.
        local: &'a T,
        /// The groups, inside it.
        groups: Range<u64>,
    },
    /// Answer this without reading anything.
    Answer(ChunkAnswer),
}

/// The offer is full.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[error("already offering {max} files; finish an upload first")]
pub struct OfferFull {
    /// [`OFFERED_FILES_MAX`].
    pub max: usize,
}

impl<T> Offer<T> {
    /// Starts serving `file` from `local`.
    pub fn add(&mut self, file: FileId, local: T) -> Result<(), OfferFull> {
        if !self.files.contains_key(&file) && self.files.len() >= OFFERED_FILES_MAX {
            return Err(OfferFull { max: OFFERED_FILES_MAX });
        }
        self.files.insert(file, local);
        Ok(())
    }

    /// Stops serving `file`.
    pub fn remove(&mut self, file: FileId) {
        self.files.remove(&file);
    }

    /// Whether `file` is offered.
    pub fn contains(&self, file: FileId) -> bool {
        self.files.contains_key(&file)
    }

    /// The decision for one request frame (untrusted bytes).
    pub fn answer(&self, frame: &[u8]) -> OfferDecision<'_, T> {
        let request = match ChunkRequest::decode(frame) {
            Ok(request) => request,
            Err(e) => return OfferDecision::Answer(ChunkAnswer::Refused(e.to_string())),
        };
        match self.files.get(&request.file) {
            Some(local) => OfferDecision::Serve { local, groups: request.groups() },
            None => OfferDecision::Answer(ChunkAnswer::NotHere),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::CHUNK_GROUP_BYTES;

    fn file(n: u8) -> FileId {
        FileId { root: [n; 32], size_bytes: 3 * CHUNK_GROUP_BYTES }
    }

    fn ask(file: FileId, first_group: u64, group_count: u64) -> Vec<u8> {
        ChunkRequest { file, first_group, group_count }.encode()
    }

    #[test]
    fn only_offered_files_inside_their_bounds_are_served() {
        let mut offer = Offer::default();
        offer.add(file(1), "one").expect("room");
        assert_eq!(
            offer.answer(&ask(file(1), 1, 2)),
            OfferDecision::Serve { local: &"one", groups: 1..3 }
        );
        assert_eq!(offer.answer(&ask(file(2), 0, 1)), OfferDecision::Answer(ChunkAnswer::NotHere));
        assert!(matches!(
            offer.answer(&ask(file(1), 2, 2)),
            OfferDecision::Answer(ChunkAnswer::Refused(_))
        ));
        assert!(matches!(
            offer.answer(b"\xff\xff"),
            OfferDecision::Answer(ChunkAnswer::Refused(_))
        ));
        offer.remove(file(1));
        assert_eq!(offer.answer(&ask(file(1), 0, 1)), OfferDecision::Answer(ChunkAnswer::NotHere));
    }

    #[test]
    fn the_offer_is_bounded() {
        let mut offer = Offer::default();
        for n in 0..OFFERED_FILES_MAX {
            offer.add(file(n as u8), n).expect("under the bound");
        }
        offer.add(file(0), 0).expect("offering the same file again is not new");
        assert_eq!(offer.add(file(200), 200), Err(OfferFull { max: OFFERED_FILES_MAX }));
    }
}
