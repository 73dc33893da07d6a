//! Election safety (Raft §5.2): at most one leader per term.

use kith_core::ids::{NodeId, Term};
use kith_core::testing::invariant::{Invariant, Observation};
use std::collections::BTreeMap;

/// Remembers who led each term.
#[derive(Debug, Default)]
pub struct ElectionSafety {
    leaders: BTreeMap<Term, NodeId>,
}

impl Invariant for ElectionSafety {
    fn name(&self) -> &'static str {
        "election safety"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        let Observation::BecameLeader { node, term } = observation else { return Ok(()) };
        let id = node.id();
        match self.leaders.insert(*term, id) {
            Some(other) if other != id => {
                Err(format!("nodes {other} and {id} both led term {term}"))
            }
            _ => Ok(()),
        }
    }
}
