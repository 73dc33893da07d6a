//! Membership changes, expressed in kith's terms and turned into raft-rs
//! `ConfChangeV2` proposals.
//!
//! Single-node changes use the simple (non-joint) protocol. A change of
//! several nodes at once goes through joint consensus with an explicit
//! transition; the leader proposes the leave-joint entry itself once the
//! joint configuration is applied, so nobody has to remember to.

use super::error::SubmitError;
use super::output::Membership;
use crate::ids::NodeId;
use crate::limits;
use raft::eraftpb::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
};

/// A requested change of the Raft group's membership.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipChange {
    /// Add a non-voting learner that receives the log.
    AddLearner(NodeId),
    /// Make a learner a voter (or add a new voter directly).
    Promote(NodeId),
    /// Remove a voter or learner.
    Remove(NodeId),
    /// Several changes at once, through joint consensus.
    Joint {
        /// Nodes to add as voters (or promote).
        add_voters: Vec<NodeId>,
        /// Nodes to remove.
        remove: Vec<NodeId>,
    },
    /// Leave a joint configuration (normally proposed automatically).
    LeaveJoint,
}

fn single(kind: ConfChangeType, node: NodeId) -> ConfChangeSingle {
    let mut c = ConfChangeSingle::default();
    c.set_change_type(kind);
    c.node_id = node.get();
    c
}

impl MembershipChange {
    /// Checks the change against `current` and builds the raft-rs change.
    pub(crate) fn to_conf_change(&self, current: &Membership) -> Result<ConfChangeV2, SubmitError> {
        let invalid = SubmitError::InvalidMembershipChange;
        let mut cc = ConfChangeV2::default();
        let changes: Vec<ConfChangeSingle> = match self {
            MembershipChange::LeaveJoint => {
                if !current.is_joint() {
                    return Err(invalid("not in a joint configuration"));
                }
                return Ok(cc);
            }
            _ if current.is_joint() => return Err(SubmitError::MembershipChangePending),
            MembershipChange::AddLearner(id) => {
                if current.contains(*id) {
                    return Err(invalid("node is already a member"));
                }
                vec![single(ConfChangeType::AddLearnerNode, *id)]
            }
            MembershipChange::Promote(id) => {
                if current.voters.contains(id) {
                    return Err(invalid("node is already a voter"));
                }
                vec![single(ConfChangeType::AddNode, *id)]
            }
            MembershipChange::Remove(id) => {
                if !current.contains(*id) {
                    return Err(invalid("node is not a member"));
                }
                if current.voters == [*id] {
                    return Err(invalid("cannot remove the last voter"));
                }
                vec![single(ConfChangeType::RemoveNode, *id)]
            }
            MembershipChange::Joint { add_voters, remove } => {
                if add_voters.iter().any(|id| remove.contains(id)) {
                    return Err(invalid("a node is both added and removed"));
                }
                if current.voters.iter().all(|v| remove.contains(v)) && add_voters.is_empty() {
                    return Err(invalid("cannot remove every voter"));
                }
                cc.set_transition(ConfChangeTransition::Explicit);
                let adds = add_voters.iter().map(|id| single(ConfChangeType::AddNode, *id));
                let removes = remove.iter().map(|id| single(ConfChangeType::RemoveNode, *id));
                adds.chain(removes).collect()
            }
        };
        if changes.iter().any(|c| c.node_id == 0) {
            return Err(invalid("node id 0 is reserved"));
        }
        let added = changes.iter().filter(|c| c.get_change_type() != ConfChangeType::RemoveNode);
        if current.voters.len() + current.learners.len() + added.count() > limits::PEERS_MAX {
            return Err(invalid("group would exceed the peer limit"));
        }
        cc.set_changes(changes.into());
        Ok(cc)
    }
}

impl Membership {
    /// From raft-rs's conf state, sorted so equal memberships compare equal.
    pub fn from_conf_state(cs: &ConfState) -> Membership {
        let sorted = |ids: &[u64]| {
            let mut v: Vec<NodeId> = ids.iter().copied().map(NodeId).collect();
            v.sort();
            v
        };
        let mut learners = sorted(&cs.learners);
        learners.extend(sorted(&cs.learners_next));
        learners.sort();
        learners.dedup();
        Membership {
            voters: sorted(&cs.voters),
            learners,
            voters_outgoing: sorted(&cs.voters_outgoing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Membership {
        Membership { voters: vec![NodeId(1), NodeId(2), NodeId(3)], ..Default::default() }
    }

    #[test]
    fn validates_against_current_membership() {
        let m = three();
        assert!(MembershipChange::AddLearner(NodeId(4)).to_conf_change(&m).is_ok());
        assert!(MembershipChange::AddLearner(NodeId(2)).to_conf_change(&m).is_err());
        assert!(MembershipChange::Promote(NodeId(2)).to_conf_change(&m).is_err());
        assert!(MembershipChange::Remove(NodeId(9)).to_conf_change(&m).is_err());
        assert!(MembershipChange::LeaveJoint.to_conf_change(&m).is_err());
        assert!(MembershipChange::AddLearner(NodeId(0)).to_conf_change(&m).is_err());
        let joint =
            MembershipChange::Joint { add_voters: vec![NodeId(4)], remove: vec![NodeId(1)] };
        let cc = joint.to_conf_change(&m).unwrap();
        assert_eq!(cc.get_transition(), ConfChangeTransition::Explicit);
        let mut in_joint = m.clone();
        in_joint.voters_outgoing = vec![NodeId(1)];
        assert_eq!(
            MembershipChange::AddLearner(NodeId(5)).to_conf_change(&in_joint),
            Err(SubmitError::MembershipChangePending)
        );
        assert!(MembershipChange::LeaveJoint.to_conf_change(&in_joint).is_ok());
    }
}
