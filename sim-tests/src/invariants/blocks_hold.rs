//! Blocks hold: once the healed cluster converged, every client blocks
//! exactly whom the answers to its `Block` and `Unblock` commands said
//! (the last answer per user wins), and is shown no request from a user
//! it blocks, whatever that user did and whenever.

use kith_core::testing::invariant::{Invariant, Observation};

/// Checks who can reach each client at the end of a run.
#[derive(Debug, Default)]
pub struct BlocksHold;

impl Invariant for BlocksHold {
    fn name(&self) -> &'static str {
        "blocks hold"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        let Observation::ReachSettled { reach } = observation else { return Ok(()) };
        for r in reach.iter() {
            if r.blocked != r.told_blocked {
                return Err(format!(
                    "{} blocks {:?} in the state, but its answers said {:?}",
                    r.user, r.blocked, r.told_blocked
                ));
            }
            if let Some(sender) = r.incoming.intersection(&r.blocked).next() {
                return Err(format!("{} is shown a request of {sender}, whom it blocks", r.user));
            }
        }
        Ok(())
    }
}
