//! No acknowledged message lost: every send a client saw acknowledged is
//! stored, at the room and position its acknowledgement named.

use kith_core::testing::invariant::{Invariant, Observation};
use std::collections::BTreeMap;

/// Checks the settled state.
#[derive(Debug, Default)]
pub struct NoAckLost;

impl Invariant for NoAckLost {
    fn name(&self) -> &'static str {
        "no acknowledged message lost"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        let Observation::Settled { stored, clients } = observation else { return Ok(()) };
        let found: BTreeMap<_, _> = stored.iter().map(|m| (m.msg_id, (&m.room, m.seq))).collect();
        for (i, c) in clients.iter().enumerate() {
            for (id, room, seq) in &c.acked {
                if found.get(id) != Some(&(room, *seq)) {
                    return Err(format!(
                        "client {i}: {id} acked at {room} seq {seq}, stored at {:?}",
                        found.get(id)
                    ));
                }
            }
        }
        Ok(())
    }
}
