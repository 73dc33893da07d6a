//! A deleted file is never served afterwards: once every file message that
//! was ever submitted for a content has been deleted (acknowledged), no
//! replica that has applied those deletions serves any of it, to a client
//! or to another replica.

use kith_core::files::FileId;
use kith_core::ids::LogIndex;
use kith_core::im::protocol::RoomId;
use kith_core::testing::file_observation::FileObservation;
use kith_core::testing::invariant::{Invariant, Observation};
use std::collections::BTreeMap;

/// What was submitted, sent and deleted, per content.
#[derive(Debug, Default)]
pub struct FilesDeletedNotServed {
    submitted: BTreeMap<FileId, u64>,
    entries: BTreeMap<(RoomId, u64), FileId>,
    /// Acknowledged deletions per content, and an index past all of them.
    deleted: BTreeMap<FileId, (u64, LogIndex)>,
}

impl FilesDeletedNotServed {
    /// The index past which a replica must not serve `file`, if every
    /// message ever submitted for it is deleted.
    fn gone_after(&self, file: FileId) -> Option<LogIndex> {
        let (count, applied) = self.deleted.get(&file)?;
        (self.submitted.get(&file) == Some(count)).then_some(*applied)
    }
}

impl Invariant for FilesDeletedNotServed {
    fn name(&self) -> &'static str {
        "deleted files not served"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        let Observation::File(observation) = observation else { return Ok(()) };
        match observation {
            FileObservation::SendSubmitted { file } => {
                *self.submitted.entry(*file).or_default() += 1;
            }
            FileObservation::Sent { file, room, seq } => {
                self.entries.insert(((*room).clone(), *seq), *file);
            }
            FileObservation::Deleted { room, seq, applied } => {
                let Some(file) = self.entries.remove(&((*room).clone(), *seq)) else {
                    return Ok(());
                };
                let (count, past) = self.deleted.entry(file).or_insert((0, LogIndex(0)));
                *count += 1;
                *past = (*past).max(*applied);
            }
            FileObservation::Served { node: Some(node), applied, to, file, response }
                if self.gone_after(*file).is_some_and(|past| *applied >= past) =>
            {
                return Err(format!(
                    "n{node} (applied {}) served groups {:?} of deleted {file} to {to}",
                    applied.get(),
                    response.groups()
                ));
            }
            _ => {}
        }
        Ok(())
    }
}
