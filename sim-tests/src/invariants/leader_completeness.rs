//! Leader completeness (Raft §5.4): a new leader's log holds every entry
//! committed so far (above its own snapshot).

use kith_core::ids::{LogIndex, Term};
use kith_core::testing::invariant::{Invariant, Observation};
use std::collections::BTreeMap;

/// The term of every index some replica applied (applied means committed).
#[derive(Debug, Default)]
pub struct LeaderCompleteness {
    committed: BTreeMap<u64, Term>,
}

impl Invariant for LeaderCompleteness {
    fn name(&self) -> &'static str {
        "leader completeness"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        match observation {
            Observation::Applied { index, term, .. } => {
                self.committed.entry(index.get()).or_insert(*term);
                Ok(())
            }
            Observation::BecameLeader { node, term } => {
                let floor = node.status().snapshot_index.get();
                for (&index, &committed_term) in self.committed.range(floor + 1..) {
                    if node.entry_term(LogIndex(index)) != Some(committed_term) {
                        return Err(format!(
                            "leader {} of term {term} lacks committed entry {index} (term \
                             {committed_term})",
                            node.id()
                        ));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
