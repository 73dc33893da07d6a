//! Each client's own messages in send order: a client that sends A, waits
//! for its acknowledgement, then sends B to the same room finds A before B.
//! (Together with the room's single sequence this makes each room one
//! total order that every replica holds a prefix of.)

use kith_core::testing::invariant::{Invariant, Observation};
use std::collections::BTreeMap;

/// Checks the settled state.
#[derive(Debug, Default)]
pub struct ClientOrder;

impl Invariant for ClientOrder {
    fn name(&self) -> &'static str {
        "client order"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        let Observation::Settled { clients, .. } = observation else { return Ok(()) };
        for (i, c) in clients.iter().enumerate() {
            let mut last = BTreeMap::new();
            for (_, room, seq) in &c.acked {
                if last.insert(room, *seq).is_some_and(|prev| prev >= *seq) {
                    return Err(format!("client {i}: {room} seq {seq} after a later send"));
                }
            }
        }
        Ok(())
    }
}
