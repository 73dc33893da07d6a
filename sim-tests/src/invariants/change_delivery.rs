//! Changes reach subscribers: once the healed cluster has settled (and its
//! live subscribers have had time to catch up), every message a subscriber
//! received is, as it last received it, the message as it is in the
//! converged state. So every edit, deletion and reaction made after the
//! subscriber received the message reached it, whether it was connected
//! then or resumed later, through the same replica or another.
//!
//! What a subscriber holds of a message is the last version it received:
//! the entry itself, then each change (`look` fingerprints compare them).

use kith_core::im::protocol::RoomId;
use kith_core::testing::invariant::{Invariant, Observation};
use std::collections::BTreeMap;

/// What each subscriber last received of each message.
#[derive(Debug, Default)]
pub struct ChangeDelivery {
    held: BTreeMap<(usize, RoomId, u64), u64>,
}

impl Invariant for ChangeDelivery {
    fn name(&self) -> &'static str {
        "changes reach subscribers"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        match observation {
            Observation::Delivered { subscriber, room, seq, msg_id: Some(_), look }
            | Observation::Updated { subscriber, room, seq, look, .. } => {
                self.held.insert((*subscriber, (*room).clone(), *seq), *look);
                Ok(())
            }
            Observation::Settled { stored, .. } => {
                let now: BTreeMap<(&RoomId, u64), u64> =
                    stored.iter().map(|m| ((&m.room, m.seq), m.look)).collect();
                for ((subscriber, room, seq), look) in &self.held {
                    // A message that is not stored is `live delivery`'s
                    // to report.
                    let Some(truth) = now.get(&(room, *seq)) else { continue };
                    if truth != look {
                        return Err(format!(
                            "subscriber {subscriber} holds {room} #{seq} as {look:016x}, but it is \
                             {truth:016x} now: a change never reached it"
                        ));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
