//! Commit and applied indexes never move backwards within one run of a
//! replica (a restart may begin lower, from its disk).

use kith_core::ids::{LogIndex, NodeId};
use kith_core::testing::invariant::{Invariant, Observation};
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, Copy)]
struct Watermarks {
    incarnation: u64,
    commit: LogIndex,
    applied: LogIndex,
}

/// The highest commit and applied index of each replica's current run.
#[derive(Debug, Default)]
pub struct MonotonicProgress {
    watermarks: BTreeMap<NodeId, Watermarks>,
}

impl Invariant for MonotonicProgress {
    fn name(&self) -> &'static str {
        "monotonic commit and apply"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        let Observation::Stepped { node, incarnation } = observation else { return Ok(()) };
        let status = node.status();
        let w = self.watermarks.entry(node.id()).or_default();
        if w.incarnation != *incarnation {
            *w = Watermarks { incarnation: *incarnation, ..Watermarks::default() };
        }
        let (old_commit, old_applied) = (w.commit, w.applied);
        w.commit = w.commit.max(status.commit);
        w.applied = w.applied.max(status.applied);
        if status.commit < old_commit || status.applied < old_applied {
            return Err(format!(
                "node {}: commit {old_commit}->{}, applied {old_applied}->{}",
                node.id(),
                status.commit,
                status.applied
            ));
        }
        Ok(())
    }
}
