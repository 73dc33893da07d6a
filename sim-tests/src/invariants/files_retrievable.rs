//! Every file reported sent is fully retrievable after the heal: a file
//! message the client heard acknowledged (stored on a majority) and whose
//! deletion nobody asked for must be fetched whole and verified, from the
//! replicas alone (the sender serves nothing by then).

use kith_core::files::FileId;
use kith_core::im::protocol::RoomId;
use kith_core::testing::file_observation::FileObservation;
use kith_core::testing::invariant::{Invariant, Observation};
use std::collections::{BTreeMap, BTreeSet};

/// Acknowledged file messages not asked to be deleted.
#[derive(Debug, Default)]
pub struct FilesRetrievable {
    standing: BTreeMap<(RoomId, u64), FileId>,
    deleting: BTreeSet<(RoomId, u64)>,
}

impl Invariant for FilesRetrievable {
    fn name(&self) -> &'static str {
        "sent files retrievable"
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
            FileObservation::Settled { fetched } => {
                for ((room, seq), file) in &self.standing {
                    match fetched.iter().find(|(f, _)| f == file) {
                        Some((_, Ok(()))) => {}
                        Some((_, Err(why))) => {
                            return Err(format!("{file} (sent as {room} seq {seq}): {why}"))
                        }
                        None => {
                            return Err(format!(
                                "{file} (sent as {room} seq {seq}) was not fetched"
                            ))
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
