//! No duplicate: a message id is stored at most once, however often its
//! client retried it (the state machine's idempotency check).

use kith_core::testing::invariant::{Invariant, Observation};
use std::collections::BTreeSet;

/// Checks the settled state.
#[derive(Debug, Default)]
pub struct NoDuplicate;

impl Invariant for NoDuplicate {
    fn name(&self) -> &'static str {
        "no duplicate"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        let Observation::Settled { stored, .. } = observation else { return Ok(()) };
        let mut seen = BTreeSet::new();
        for m in *stored {
            if !seen.insert(m.msg_id) {
                return Err(format!("message {} stored twice", m.msg_id));
            }
        }
        Ok(())
    }
}
