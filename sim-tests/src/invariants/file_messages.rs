//! Which acknowledged file messages stand, for the file checkers: a
//! message stands from its acknowledgement until anyone asks for its
//! deletion (asked, it may be applied before its deleter hears back).

use kith_core::files::FileId;
use kith_core::im::protocol::RoomId;
use kith_core::testing::file_observation::FileObservation;
use std::collections::{BTreeMap, BTreeSet};

/// Acknowledged file messages not asked to be deleted.
#[derive(Debug, Default)]
pub(super) struct FileMessages {
    standing: BTreeMap<(RoomId, u64), FileId>,
    deleting: BTreeSet<(RoomId, u64)>,
}

impl FileMessages {
    /// Takes in a send or a deletion; other facts pass by.
    pub(super) fn observe(&mut self, observation: &FileObservation<'_>) {
        match observation {
            FileObservation::Sent { file, room, seq } => {
                let key = ((*room).clone(), *seq);
                if !self.deleting.contains(&key) {
                    self.standing.insert(key, *file);
                }
            }
            FileObservation::DeleteSubmitted { room, seq } => {
                let key = ((*room).clone(), *seq);
                self.standing.remove(&key);
                self.deleting.insert(key);
            }
            _ => {}
        }
    }

    /// The standing messages: (room, seq) and the content each refers to.
    pub(super) fn standing(&self) -> impl Iterator<Item = (&(RoomId, u64), &FileId)> {
        self.standing.iter()
    }
}
