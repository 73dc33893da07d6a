//! Leader completeness (Raft §5.4): an entry committed in term C is in the
//! log of every leader of a term above C (above its own snapshot).
//!
//! Which term committed an entry is not observed, only when it was first
//! applied; by then the leader that committed it had announced itself, so
//! the highest leader term seen at that moment bounds the commit term from
//! above. An entry is required of a leader of term T when that bound is
//! below T. Requiring every entry committed so far was too strict: a
//! replica may win an older term late (its votes were slow) after a newer
//! term committed entries it never had, as Raft allows (madsim seed 934).

use kith_core::ids::{LogIndex, Term};
use kith_core::testing::invariant::{Invariant, Observation};
use std::collections::BTreeMap;

/// Every index some replica applied (applied means committed): its term,
/// and the highest leader term seen when it was first applied.
#[derive(Debug, Default)]
pub struct LeaderCompleteness {
    committed: BTreeMap<u64, (Term, Term)>,
    highest_leader_term: Term,
}

impl Invariant for LeaderCompleteness {
    fn name(&self) -> &'static str {
        "leader completeness"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        match observation {
            Observation::Applied { index, term, .. } => {
                self.committed.entry(index.get()).or_insert((*term, self.highest_leader_term));
                Ok(())
            }
            Observation::BecameLeader { node, term } => {
                self.highest_leader_term = self.highest_leader_term.max(*term);
                let floor = node.status().snapshot_index.get();
                let required = self
                    .committed
                    .range(floor + 1..)
                    .filter(|(_, (_, committed_by_then))| committed_by_then < term);
                for (&index, &(committed_term, _)) in required {
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
