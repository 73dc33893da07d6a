//! State machine safety (Raft §5.4.3): every replica applies the same entry
//! at a given index, and replicas at equal applied indexes have equal state
//! digests.

use kith_core::ids::{LogIndex, NodeId};
use kith_core::state_machine::Digest;
use kith_core::testing::invariant::{Invariant, Observation};
use std::collections::BTreeMap;

/// The term applied at each index, the digest seen at each applied index,
/// and each replica's last applied index (per incarnation).
#[derive(Debug, Default)]
pub struct StateMachineSafety {
    terms: BTreeMap<u64, u64>,
    digests: BTreeMap<LogIndex, Digest>,
    applied: BTreeMap<NodeId, (u64, LogIndex)>,
}

impl Invariant for StateMachineSafety {
    fn name(&self) -> &'static str {
        "state machine safety"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        match observation {
            Observation::Applied { node, index, term, .. } => {
                let prior = *self.terms.entry(index.get()).or_insert(term.get());
                if prior != term.get() {
                    return Err(format!(
                        "node {node} applied index {index} from term {term}, others from term \
                         {prior}"
                    ));
                }
                Ok(())
            }
            Observation::Stepped { node, incarnation } => {
                let applied = node.status().applied;
                let last = self.applied.insert(node.id(), (*incarnation, applied));
                let moved = last != Some((*incarnation, applied));
                // Large states are digested by the node itself at fixed
                // indexes (`Config::digest_every_entries`); small ones
                // whenever the applied index moved.
                let (index, digest) = match node.digest_checkpoint() {
                    Some(checkpoint) => checkpoint,
                    None if moved => (applied, node.digest()),
                    None => return Ok(()),
                };
                let prior = *self.digests.entry(index).or_insert(digest);
                if prior != digest {
                    return Err(format!(
                        "node {} at applied index {index} has digest {digest:?}, expected \
                         {prior:?}",
                        node.id()
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
