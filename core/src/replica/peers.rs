//! The replica-to-replica protocol: Raft traffic (and who may send it),
//! forwarded commands and admin requests, and the answers to ours.

use super::asker::{Asker, AskerId, AskerKind, OutboundId};
use super::output::ServiceOutput;
use super::ReplicaService;
use crate::ids::NodeId;
use crate::limits;
use crate::raft::Input;
use crate::wire::client_protocol::ClientResponse;
use crate::wire::replica_protocol::{
    self, AdminResponse, PeerRequest, PeerResponse, ReplicaRecord,
};
use bytes::Bytes;
use std::collections::BTreeSet;
use std::time::Duration;

/// Who may send this replica Raft traffic, besides its members.
#[derive(Debug, Default)]
pub(super) struct Admission {
    /// Replicas a member vouched for (the driver's directory).
    pub vouched: BTreeSet<NodeId>,
    /// Replicas this one was told to join through.
    pub join_targets: BTreeSet<NodeId>,
}

/// A request of ours awaiting another replica's answer.
#[derive(Clone, Copy, Debug)]
pub(super) enum Pending {
    /// A client's command, forwarded to the leader.
    Forward(Asker),
    /// An operator's request, forwarded to the leader.
    Admin(Asker),
}

impl ReplicaService {
    /// Whether `from` may send Raft traffic: members may; so may replicas
    /// members told this one about, since a replica that has not applied an
    /// addition yet must still follow the added replica if it leads, or it
    /// never catches up to learn of the addition; and a replica that has
    /// no configuration yet (it is joining) takes it from its join targets.
    /// A removed replica vouched for gets past this gate, and the node gives
    /// it nothing to act on (`Node::removed`).
    pub fn admits_raft_from(&self, from: NodeId) -> bool {
        let membership = self.node.membership();
        membership.contains(from)
            || self.admission.vouched.contains(&from)
            || (membership.is_empty() && self.admission.join_targets.contains(&from))
    }

    /// Whether this replica has no configuration yet (it is joining).
    pub fn is_joining(&self) -> bool {
        self.node.membership().is_empty()
    }

    /// Whether to trust `from`'s directory of replicas (and to greet it):
    /// a member's, or a join target's.
    pub fn trusts_directory_of(&self, from: NodeId) -> bool {
        self.node.membership().contains(from) || self.admission.join_targets.contains(&from)
    }

    /// The records in another replica's directory this one takes from it:
    /// those of members only (records are self-certifying, so a member
    /// cannot forge one, but a stranger could flood the directory).
    pub fn directory_records_to_take(&self, records: Vec<ReplicaRecord>) -> Vec<ReplicaRecord> {
        let membership = self.node.membership();
        records.into_iter().filter(|r| membership.contains(NodeId::of_peer(&r.peer))).collect()
    }

    /// Whether this replica is in touch with the cluster: it is the
    /// leader, or took a Raft frame from the leader it knows (or started)
    /// within [`limits::LEADER_UNHEARD_MS_MAX`]. Naming a leader is not
    /// enough: a learner never campaigns, so one the cluster stopped
    /// talking to names its old leader for good (seed 4005).
    pub(super) fn leader_heard_lately(&self) -> bool {
        let unheard = self.now.saturating_since(self.leader_heard_at);
        unheard <= Duration::from_millis(limits::LEADER_UNHEARD_MS_MAX)
    }

    /// Hands a Raft frame to the node if `from` may send one.
    pub(super) fn take_raft_frame(&mut self, from: NodeId, frame: Bytes) -> bool {
        if !self.admits_raft_from(from) {
            self.metrics.raft_frames_refused += 1;
            return false;
        }
        self.node.handle_input(self.now, Input::Received { from, bytes: frame });
        if self.node.leader() == Some(from) {
            self.leader_heard_at = self.now;
        }
        true
    }

    pub(super) fn on_peer_request(&mut self, id: AskerId, from: NodeId, frame: &[u8]) {
        let refuse = |why: String| replica_protocol::encode(&PeerResponse::Refused(why));
        let request = match replica_protocol::decode::<PeerRequest>(frame) {
            Ok(r) => r,
            Err(e) => {
                let frame = refuse(format!("malformed frame: {e}"));
                return self.outputs.push_back(ServiceOutput::Respond { asker: id, frame });
            }
        };
        let member = self.node.membership().contains(from);
        match request {
            PeerRequest::Raft(raft) => {
                let frame = if self.take_raft_frame(from, raft) {
                    replica_protocol::encode(&PeerResponse::Ack)
                } else {
                    refuse("not a member of this cluster".into())
                };
                self.outputs.push_back(ServiceOutput::Respond { asker: id, frame });
            }
            PeerRequest::Forward(command) if member => {
                let asker = Asker { id, kind: AskerKind::ForwardingReplica };
                self.submit(command, asker, super::intake::Origin::Replica(from))
            }
            PeerRequest::Admin(request) if member => {
                self.admin(request, Asker { id, kind: AskerKind::ForwardingOperator })
            }
            // Addresses are the driver's business: it takes the records
            // and answers with its own directory.
            PeerRequest::Hello(records) => {
                let records = self.directory_records_to_take(records);
                self.outputs.push_back(ServiceOutput::HelloReceived { asker: id, records });
            }
            _ => {
                let frame = refuse("not a member of this cluster".into());
                self.outputs.push_back(ServiceOutput::Respond { asker: id, frame });
            }
        }
    }

    pub(super) fn on_peer_answer(&mut self, request: OutboundId, frame: &[u8]) {
        let Some(pending) = self.outbound.remove(&request) else { return };
        match (pending, replica_protocol::decode::<PeerResponse>(frame)) {
            (Pending::Forward(asker), Ok(PeerResponse::Forwarded(response))) => {
                self.answer(asker, response)
            }
            (Pending::Admin(asker), Ok(PeerResponse::Admin(response))) => {
                self.answer_admin(asker, response)
            }
            (pending, _) => self.fail_outbound(pending, true),
        }
    }

    pub(super) fn on_peer_failure(&mut self, request: OutboundId, sent: bool) {
        if let Some(pending) = self.outbound.remove(&request) {
            self.fail_outbound(pending, sent);
        }
    }

    fn fail_outbound(&mut self, pending: Pending, sent: bool) {
        match pending {
            // The leader may have applied it: the client retries with the
            // same command id, which is idempotent.
            Pending::Forward(asker) => {
                self.answer(asker, ClientResponse::Retry { maybe_applied: sent })
            }
            Pending::Admin(asker) => {
                let retry = AdminResponse::Retry("the leader did not answer".into());
                self.answer_admin(asker, retry)
            }
        }
    }
}
