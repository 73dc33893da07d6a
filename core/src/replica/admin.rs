//! Requests from operators: cluster status for anyone, membership changes
//! for admins only, carried out on the leader or forwarded to it.

use super::asker::{Asker, AskerId, AskerKind};
use super::output::ServiceOutput;
use super::peers::Pending;
use super::ReplicaService;
use crate::ids::NodeId;
use crate::im::identity::UserId;
use crate::raft::{MembershipChange, Role, SubmitError};
use crate::wire::replica_protocol::{
    self, AdminRequest, AdminResponse, ClusterStatus, MemberStatus, PeerRequest,
};

impl ReplicaService {
    pub(super) fn on_admin_request(&mut self, id: AskerId, operator: Option<UserId>, frame: &[u8]) {
        let asker = Asker { id, kind: AskerKind::Operator };
        match replica_protocol::decode::<AdminRequest>(frame) {
            Err(e) => self.answer_admin(asker, AdminResponse::Refused(e.to_string())),
            Ok(AdminRequest::Status) => {
                let status = self.cluster_status();
                self.answer_admin(asker, AdminResponse::Status(status))
            }
            Ok(_) if !operator.is_some_and(|o| self.admins.contains(&o)) => {
                let who = operator.map_or_else(|| "this key".to_string(), |o| o.to_string());
                let why =
                    format!("{who} is not an admin of this replica (start it with --admin {who})");
                self.answer_admin(asker, AdminResponse::Refused(why))
            }
            Ok(request) => self.admin(request, asker),
        }
    }

    /// Carries out (on the leader) or forwards a membership change.
    pub(super) fn admin(&mut self, request: AdminRequest, asker: Asker) {
        let change = match &request {
            AdminRequest::Add { replica, learner } => {
                if !is_peer_id(&replica.peer) {
                    return self.answer_admin(asker, AdminResponse::Refused("not a PeerId".into()));
                }
                let id = NodeId::of_peer(&replica.peer);
                self.admission.vouched.insert(id);
                self.outputs.push_back(ServiceOutput::ReplicaAdded { record: replica.clone() });
                if *learner {
                    MembershipChange::AddLearner(id)
                } else {
                    MembershipChange::Promote(id)
                }
            }
            AdminRequest::Remove { peer } if is_peer_id(peer) => {
                MembershipChange::Remove(NodeId::of_peer(peer))
            }
            AdminRequest::Remove { .. } => {
                return self.answer_admin(asker, AdminResponse::Refused("not a PeerId".into()))
            }
            _ => {
                let status = self.cluster_status();
                return self.answer_admin(asker, AdminResponse::Status(status));
            }
        };
        match self.node.change_membership(self.now, &change) {
            Ok(proposal) => {
                self.admin_proposals.insert(proposal, asker);
            }
            Err(SubmitError::NotLeader { leader_hint: Some(leader) }) if asker.is_direct() => {
                let request_id = self.next_outbound();
                self.outbound.insert(request_id, Pending::Admin(asker));
                let frame = replica_protocol::encode(&PeerRequest::Admin(request));
                self.outputs.push_back(ServiceOutput::SendPeerRequest {
                    to: leader,
                    request: request_id,
                    frame,
                });
            }
            Err(SubmitError::NotLeader { .. }) => {
                self.answer_admin(asker, AdminResponse::Retry("no leader known yet".into()))
            }
            Err(e @ (SubmitError::InvalidMembershipChange(_) | SubmitError::TooLarge { .. })) => {
                self.answer_admin(asker, AdminResponse::Refused(e.to_string()))
            }
            Err(e) => self.answer_admin(asker, AdminResponse::Retry(e.to_string())),
        }
    }

    pub(super) fn answer_admin(&mut self, asker: Asker, response: AdminResponse) {
        let frame = asker.admin_answer(response);
        self.outputs.push_back(ServiceOutput::Respond { asker: asker.id, frame });
    }

    /// The cluster as this replica sees it.
    pub fn cluster_status(&self) -> ClusterStatus {
        let status = self.node.status();
        let me = status.id;
        let m = &status.membership;
        let roles = m
            .voters
            .iter()
            .map(|id| (*id, "voter"))
            .chain(m.learners.iter().map(|id| (*id, "learner")))
            .chain(
                m.voters_outgoing
                    .iter()
                    .filter(|id| !m.voters.contains(id))
                    .map(|id| (*id, "outgoing")),
            );
        let members = roles
            .map(|(id, role)| MemberStatus {
                id,
                peer: self.names.get(&id).cloned(),
                role: role.into(),
                connected: id == me || self.connected.contains(&id),
            })
            .collect();
        ClusterStatus {
            id: status.id,
            role: role_name(status.role).into(),
            term: status.term,
            leader: status.leader,
            commit: status.commit,
            applied: status.applied,
            snapshot_index: status.snapshot_index,
            members,
        }
    }
}

/// Whether `bytes` has the shape of a libp2p PeerId: an identity multihash
/// of an inlined public key (at most 42 bytes), or a SHA-256 multihash.
fn is_peer_id(bytes: &[u8]) -> bool {
    match bytes {
        [0x00, len, key @ ..] => {
            usize::from(*len) == key.len() && !key.is_empty() && key.len() <= 42
        }
        [0x12, 0x20, digest @ ..] => digest.len() == 32,
        _ => false,
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre-candidate",
    }
}

impl ReplicaService {
    /// An operator's membership change made in-process (the simulator's
    /// operator); over the network the same change arrives as an admin
    /// request. The result shows as `ServiceOutput::MembershipChanged`.
    pub fn change_membership(
        &mut self,
        change: &MembershipChange,
    ) -> Result<crate::ids::ProposalId, SubmitError> {
        self.node.change_membership(self.now, change)
    }

    /// An operator asks the leader to hand leadership to `to`.
    pub fn transfer_leadership(&mut self, to: NodeId) {
        self.node.transfer_leadership(self.now, to);
    }
}
