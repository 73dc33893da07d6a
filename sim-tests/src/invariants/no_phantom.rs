//! No phantom message: every stored message was submitted by a client, and
//! is stored under that client's name (signatures make forging impossible;
//! this catches a state machine that invents or misattributes).

use kith_core::testing::invariant::{Invariant, Observation};
use std::collections::BTreeMap;

/// Checks the settled state.
#[derive(Debug, Default)]
pub struct NoPhantom;

impl Invariant for NoPhantom {
    fn name(&self) -> &'static str {
        "no phantom message"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        let Observation::Settled { stored, clients } = observation else { return Ok(()) };
        let senders: BTreeMap<_, _> =
            clients.iter().flat_map(|c| c.submitted.iter().map(move |id| (*id, c.user))).collect();
        for m in *stored {
            match senders.get(&m.msg_id) {
                None => return Err(format!("{} seq {} was never sent", m.room, m.seq)),
                Some(user) if *user != m.author => {
                    return Err(format!("{} seq {} has the wrong author", m.room, m.seq))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
