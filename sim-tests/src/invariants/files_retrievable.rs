//! Every file reported sent is fully retrievable after the heal: a file
//! message the client heard acknowledged (stored on a majority) and whose
//! deletion nobody asked for must be fetched whole and verified, from the
//! replicas alone (the sender serves nothing by then).

use super::file_messages::FileMessages;
use kith_core::testing::file_observation::FileObservation;
use kith_core::testing::invariant::{Invariant, Observation};

/// Acknowledged file messages not asked to be deleted.
#[derive(Debug, Default)]
pub struct FilesRetrievable {
    messages: FileMessages,
}

impl Invariant for FilesRetrievable {
    fn name(&self) -> &'static str {
        "sent files retrievable"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        let Observation::File(observation) = observation else { return Ok(()) };
        self.messages.observe(observation);
        if let FileObservation::Settled { fetched } = observation {
            for ((room, seq), file) in self.messages.standing() {
                match fetched.iter().find(|(f, _)| f == file) {
                    Some((_, Ok(()))) => {}
                    Some((_, Err(why))) => {
                        return Err(format!("{file} (sent as {room} seq {seq}): {why}"))
                    }
                    None => {
                        return Err(format!("{file} (sent as {room} seq {seq}) was not fetched"))
                    }
                }
            }
        }
        Ok(())
    }
}
