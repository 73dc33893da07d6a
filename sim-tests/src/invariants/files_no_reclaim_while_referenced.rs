//! No stored content is reclaimed while an entry refers to it: a replica
//! removes a copy as released only when no acknowledged file message that
//! refers to the content stands (nobody asked for its deletion). A damaged
//! copy may go (it is fetched again).

use kith_core::files::FileId;
use kith_core::im::protocol::RoomId;
use kith_core::replica::BlobRemoval;
use kith_core::testing::file_observation::FileObservation;
use kith_core::testing::invariant::{Invariant, Observation};
use std::collections::{BTreeMap, BTreeSet};

/// Acknowledged file messages not asked to be deleted.
#[derive(Debug, Default)]
pub struct FilesNoReclaimWhileReferenced {
    standing: BTreeMap<(RoomId, u64), FileId>,
    deleting: BTreeSet<(RoomId, u64)>,
}

impl Invariant for FilesNoReclaimWhileReferenced {
    fn name(&self) -> &'static str {
        "no reclaim while referenced"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        let Observation::File(observation) = observation else { return Ok(()) };
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
            FileObservation::Removed { node, file, why: BlobRemoval::Released } => {
                if let Some(((room, seq), _)) = self.standing.iter().find(|(_, f)| *f == file) {
                    return Err(format!(
                        "n{node} reclaimed {file} while {room} seq {seq} refers to it"
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}
