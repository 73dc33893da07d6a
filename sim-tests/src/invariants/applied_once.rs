//! No command applied twice: within one run of a replica, applied positions
//! (log index, position in the batched entry) strictly increase.

use kith_core::ids::NodeId;
use kith_core::testing::invariant::{Invariant, Observation};
use std::collections::BTreeMap;

/// Each replica's incarnation and last applied position.
#[derive(Debug, Default)]
pub struct AppliedOnce {
    last: BTreeMap<NodeId, (u64, (u64, u32))>,
}

impl Invariant for AppliedOnce {
    fn name(&self) -> &'static str {
        "no command applied twice"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        let Observation::Applied { node, incarnation, index, position, .. } = observation else {
            return Ok(());
        };
        let here = (index.get(), *position);
        match self.last.insert(*node, (*incarnation, here)) {
            Some((run, last)) if run == *incarnation && last >= here => {
                Err(format!("node {node} applied {here:?} after {last:?}"))
            }
            _ => Ok(()),
        }
    }
}
