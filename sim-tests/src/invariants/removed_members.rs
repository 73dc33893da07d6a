//! Removed members are cut off: once a replica has adopted a configuration
//! without X (having had X in one earlier in the same run), it sends X
//! nothing until X is added back: no entries, snapshots or heartbeats, and
//! neither its vote nor an acknowledgement of X's entries. A removed replica
//! does not know it was removed until it hears so and may campaign or keep
//! leading; the others must give it nothing to act on.
//!
//! One exception: X may be answered in a term X won. A majority elected it
//! then, so it is a member again (added back, and this replica has not
//! applied that yet) or a leader finishing its own removal; refusing it
//! would leave a lagging replica unable ever to learn of the return
//! (madsim seed 9228 with 5 voters: a liveness failure).

use kith_core::ids::NodeId;
use kith_core::raft::Membership;
use kith_core::testing::invariant::{Invariant, Observation};
use kith_core::wire::PeerBody;
use std::collections::{BTreeMap, BTreeSet};

/// What one run of one replica has seen.
#[derive(Debug, Default)]
struct Seen {
    incarnation: u64,
    members: BTreeSet<NodeId>,
    removed: BTreeSet<NodeId>,
    /// The leader it followed after its last step (kept only while it has
    /// removed someone).
    leader: Option<NodeId>,
}

impl Seen {
    fn adopt(&mut self, m: &Membership) {
        let now: BTreeSet<NodeId> = m.members().collect();
        self.removed.extend(self.members.difference(&now));
        self.removed.retain(|id| !now.contains(id));
        self.members = now;
    }
}

/// Each replica's members and removed members in its current run, in the
/// order its outputs report them.
#[derive(Debug, Default)]
pub struct RemovedMembers {
    replicas: BTreeMap<NodeId, Seen>,
    /// Who won each term's election.
    leaders: BTreeMap<u64, NodeId>,
}

impl RemovedMembers {
    fn run_of(&mut self, node: NodeId, incarnation: u64) -> &mut Seen {
        let seen = self.replicas.entry(node).or_default();
        if seen.incarnation != incarnation {
            *seen = Seen { incarnation, ..Seen::default() };
        }
        seen
    }
}

impl Invariant for RemovedMembers {
    fn name(&self) -> &'static str {
        "removed members cut off"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        match observation {
            Observation::MembershipChanged { node, incarnation, membership } => {
                self.run_of(*node, *incarnation).adopt(membership);
                Ok(())
            }
            // The configuration a run starts with (from its disk) comes
            // with no change event.
            Observation::Stepped { node, incarnation } => {
                let seen = self.run_of(node.id(), *incarnation);
                if seen.members.is_empty() {
                    seen.adopt(&node.status().membership);
                }
                if !seen.removed.is_empty() {
                    seen.leader = node.status().leader;
                }
                Ok(())
            }
            Observation::BecameLeader { node, term } => {
                self.leaders.insert(term.get(), node.id());
                Ok(())
            }
            Observation::Sent { from, incarnation, to, frame } => {
                let seen = self.replicas.get(from).filter(|s| s.incarnation == *incarnation);
                let Some(seen) = seen.filter(|s| s.removed.contains(to)) else {
                    return Ok(());
                };
                let won = match &frame.body {
                    // Forwarded reads carry no term: they go to the leader
                    // the sender follows.
                    PeerBody::Raft(m) if m.term == 0 => seen.leader == Some(*to),
                    PeerBody::Raft(m) => self.leaders.get(&m.term) == Some(to),
                    PeerBody::SnapshotChunk(_) => false,
                };
                if won {
                    return Ok(());
                }
                let what = match &frame.body {
                    PeerBody::Raft(m) => format!("{:?} (term {})", m.kind, m.term),
                    PeerBody::SnapshotChunk(_) => "a snapshot chunk".to_string(),
                };
                Err(format!("node {from} sent {what} to {to}, which it had removed"))
            }
            _ => Ok(()),
        }
    }
}
