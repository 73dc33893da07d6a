//! Vote safety (Raft §5.2): a replica grants its vote to at most one
//! candidate per term, across restarts. A replica that forgot a vote it had
//! persisted (or sent one before persisting it) could elect two leaders.

use kith_core::ids::NodeId;
use kith_core::testing::invariant::{Invariant, Observation};
use kith_core::wire::{PeerBody, WireMessageKind};
use std::collections::BTreeMap;

/// Every vote granted, by (voter, term).
#[derive(Debug, Default)]
pub struct VoteSafety {
    votes: BTreeMap<(NodeId, u64), NodeId>,
}

impl Invariant for VoteSafety {
    fn name(&self) -> &'static str {
        "vote safety"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        let Observation::Sent { from, to, frame, .. } = observation else { return Ok(()) };
        let PeerBody::Raft(m) = &frame.body else { return Ok(()) };
        if m.kind != WireMessageKind::RequestVoteResponse || m.reject {
            return Ok(());
        }
        let prior = *self.votes.entry((*from, m.term)).or_insert(*to);
        if prior != *to {
            return Err(format!("node {from} voted for {prior} and {to} in term {}", m.term));
        }
        Ok(())
    }
}
