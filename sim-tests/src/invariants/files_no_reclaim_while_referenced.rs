//! No stored content is reclaimed while an entry refers to it: a replica
//! removes a copy as released only when no acknowledged file message that
//! refers to the content stands (nobody asked for its deletion). A damaged
//! copy may go (it is fetched again).

use super::file_messages::FileMessages;
use kith_core::replica::BlobRemoval;
use kith_core::testing::file_observation::FileObservation;
use kith_core::testing::invariant::{Invariant, Observation};

/// Acknowledged file messages not asked to be deleted.
#[derive(Debug, Default)]
pub struct FilesNoReclaimWhileReferenced {
    messages: FileMessages,
}

impl Invariant for FilesNoReclaimWhileReferenced {
    fn name(&self) -> &'static str {
        "no reclaim while referenced"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        let Observation::File(observation) = observation else { return Ok(()) };
        self.messages.observe(observation);
        if let FileObservation::Removed { node, file, why: BlobRemoval::Released } = observation {
            if let Some(((room, seq), _)) = self.messages.standing().find(|(_, f)| *f == file) {
                return Err(format!(
                    "n{node} reclaimed {file} while {room} seq {seq} refers to it"
                ));
            }
        }
        Ok(())
    }
}
