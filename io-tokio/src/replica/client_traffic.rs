//! The client and admin protocols, and presence gossip.

use super::askers::{answer, answer_admin, AdminAsker, Asker};
use super::{Outbound, Replica};
use crate::net::behaviour::{PRESENCE_TOPIC, TYPING_TOPIC};
use crate::peer_ids::{node_id_of, user_of};
use kith_core::im::client_protocol::{ClientRequest, ClientResponse, RequestFrame, UserPresence};
use kith_core::im::identity::UserId;
use kith_core::im::presence::{PresenceError, SignedPresence};
use kith_core::im::protocol::{ImQuery, SignedCommand};
use kith_core::im::replica_protocol::{
    self, AdminRequest, AdminResponse, ClusterStatus, MemberStatus, PeerRequest,
};
use kith_core::im::typing::SignedTyping;
use kith_core::limits;
use kith_core::node::{MembershipChange, Role, SubmitError};
use libp2p::request_response::{Event, Message};
use libp2p::{gossipsub, Multiaddr, PeerId};

impl Replica {
    pub(super) fn on_client_event(&mut self, event: Event<Vec<u8>, Vec<u8>>) {
        let Event::Message { peer, message: Message::Request { request, channel, .. }, .. } = event
        else {
            return;
        };
        let frame = match RequestFrame::decode(&request) {
            Ok(f) => f,
            Err(e) => {
                let asker = Asker::Client { channel, request_id: 0 };
                return answer(&mut self.swarm, asker, ClientResponse::BadRequest(e.to_string()));
            }
        };
        let asker = Asker::Client { channel, request_id: frame.request_id };
        let Some(user) = user_of(&peer) else {
            let why = "clients must connect with an ed25519 key".to_string();
            return answer(&mut self.swarm, asker, ClientResponse::BadRequest(why));
        };
        let now = self.now();
        match frame.request {
            ClientRequest::Submit(command) => self.submit(command, asker, Some(user)),
            ClientRequest::Query(kind) => {
                match self.node.read(now, ImQuery { as_user: user, kind }) {
                    Ok(read) => {
                        self.reads.insert(read, asker);
                    }
                    Err(e) => answer(&mut self.swarm, asker, e.into()),
                }
            }
            ClientRequest::Presence(announcement) => {
                let response = self.take_presence(&announcement, Some(user));
                answer(&mut self.swarm, asker, response);
            }
            ClientRequest::PresenceOf(users) => {
                let response = if users.len() > limits::PRESENCE_QUERY_USERS_MAX {
                    ClientResponse::BadRequest("too many users in one presence query".into())
                } else {
                    let views = users
                        .into_iter()
                        .map(|u| UserPresence::new(u, self.presence.view(now, u)))
                        .collect();
                    ClientResponse::Presence(views)
                };
                answer(&mut self.swarm, asker, response);
            }
            ClientRequest::Typing(notice) => {
                let response = self.take_typing(&notice, Some(user));
                answer(&mut self.swarm, asker, response);
            }
            _ => answer(&mut self.swarm, asker, ClientResponse::BadRequest("unsupported".into())),
        }
    }

    /// Verifies and proposes a command, or forwards it to the leader.
    /// `user` is the connection's user (None when a replica forwarded it).
    pub(super) fn submit(&mut self, command: SignedCommand, asker: Asker, user: Option<UserId>) {
        let body = match self.verified.verify(&command, user) {
            Ok(body) => body,
            Err(e) => return answer(&mut self.swarm, asker, ClientResponse::Refused(e)),
        };
        tracing::debug!(author = %command.author, op = ?body.op, "command");
        let now = self.now();
        match self.node.submit(now, &command) {
            Ok(proposal) => {
                self.proposals.insert(proposal, (asker, now));
            }
            Err(SubmitError::NotLeader { .. }) if self.forwards >= super::FORWARDS_MAX => {
                answer(&mut self.swarm, asker, ClientResponse::Busy)
            }
            Err(SubmitError::NotLeader { leader_hint: Some(leader) })
                if matches!(asker, Asker::Client { .. }) =>
            {
                match self.directory.peer(leader) {
                    Some(peer) => {
                        self.forwards += 1;
                        self.send_peer(
                            peer,
                            &PeerRequest::Forward(command),
                            Outbound::Forward(asker),
                        );
                    }
                    None => answer(
                        &mut self.swarm,
                        asker,
                        ClientResponse::Retry { maybe_applied: false },
                    ),
                }
            }
            Err(e) => answer(&mut self.swarm, asker, e.into()),
        }
    }

    fn take_presence(
        &mut self,
        announcement: &SignedPresence,
        user: Option<UserId>,
    ) -> ClientResponse {
        if user.is_some_and(|u| u != announcement.user) {
            return ClientResponse::BadRequest("presence signed by another user".into());
        }
        match self.presence.announce(self.now(), announcement) {
            Ok(_) => {
                if user.is_some() {
                    let topic = gossipsub::IdentTopic::new(PRESENCE_TOPIC);
                    let bytes = replica_protocol::encode(announcement);
                    // Best effort: with no other replica subscribed yet the
                    // announcement simply stays local.
                    let _ = self.swarm.behaviour_mut().gossipsub.publish(topic, bytes);
                }
                ClientResponse::PresenceTaken
            }
            Err(PresenceError::Stale) => ClientResponse::PresenceTaken,
            Err(e) => ClientResponse::BadRequest(e.to_string()),
        }
    }

    /// Takes a typing notice from a client (`user`) or from gossip (None):
    /// only a current member may type in a room; the notice goes to this
    /// replica's subscribers of the room and, from a client, to the others.
    fn take_typing(&mut self, notice: &SignedTyping, user: Option<UserId>) -> ClientResponse {
        if user.is_some_and(|u| u != notice.user) {
            return ClientResponse::BadRequest("typing notice signed by another user".into());
        }
        let body = match notice.verify() {
            Ok(body) => body,
            Err(e) => return ClientResponse::BadRequest(e.to_string()),
        };
        if !self.node.state_machine().is_member(&body.room, notice.user) {
            return ClientResponse::BadRequest(format!("not a member of {}", body.room));
        }
        if user.is_some() {
            let topic = gossipsub::IdentTopic::new(TYPING_TOPIC);
            let _ = self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(topic, replica_protocol::encode(notice));
        }
        self.deliver_typing(&body.room, notice.user, body.active);
        ClientResponse::PresenceTaken
    }

    pub(super) fn on_gossip(&mut self, topic: &gossipsub::TopicHash, data: &[u8]) {
        if *topic == gossipsub::IdentTopic::new(PRESENCE_TOPIC).hash() {
            if let Ok(announcement) = replica_protocol::decode::<SignedPresence>(data) {
                let _ = self.take_presence(&announcement, None);
            }
        } else if *topic == gossipsub::IdentTopic::new(TYPING_TOPIC).hash() {
            if let Ok(notice) = replica_protocol::decode::<SignedTyping>(data) {
                let _ = self.take_typing(&notice, None);
            }
        }
    }

    pub(super) fn on_admin_event(&mut self, event: Event<Vec<u8>, Vec<u8>>) {
        let Event::Message { peer, message: Message::Request { request, channel, .. }, .. } = event
        else {
            return;
        };
        let asker = AdminAsker::Operator(channel);
        match replica_protocol::decode::<AdminRequest>(&request) {
            Err(e) => answer_admin(&mut self.swarm, asker, AdminResponse::Refused(e.to_string())),
            Ok(AdminRequest::Status) => {
                let status = self.cluster_status();
                answer_admin(&mut self.swarm, asker, AdminResponse::Status(status))
            }
            Ok(_) if !self.admins.contains(&peer) => {
                let why = format!(
                    "{peer} is not an admin of this replica (start it with --admin {peer})"
                );
                answer_admin(&mut self.swarm, asker, AdminResponse::Refused(why))
            }
            Ok(request) => self.admin(request, asker),
        }
    }

    /// Carries out (on the leader) or forwards a membership change.
    pub(super) fn admin(&mut self, request: AdminRequest, asker: AdminAsker) {
        let change = match &request {
            AdminRequest::Add { replica, learner } => {
                let Ok(peer) = PeerId::from_bytes(&replica.peer) else {
                    let r = AdminResponse::Refused("not a PeerId".into());
                    return answer_admin(&mut self.swarm, asker, r);
                };
                let addrs: Vec<Multiaddr> = replica
                    .addrs
                    .iter()
                    .filter_map(|a| Multiaddr::try_from(a.clone()).ok())
                    .collect();
                if self.directory.insert(peer, &addrs) {
                    self.directory.save();
                }
                self.add_directory_addresses();
                let id = node_id_of(&peer);
                if *learner {
                    MembershipChange::AddLearner(id)
                } else {
                    MembershipChange::Promote(id)
                }
            }
            AdminRequest::Remove { peer } => match PeerId::from_bytes(peer) {
                Ok(p) => MembershipChange::Remove(node_id_of(&p)),
                Err(_) => {
                    let r = AdminResponse::Refused("not a PeerId".into());
                    return answer_admin(&mut self.swarm, asker, r);
                }
            },
            _ => {
                let status = self.cluster_status();
                return answer_admin(&mut self.swarm, asker, AdminResponse::Status(status));
            }
        };
        let now = self.now();
        match self.node.change_membership(now, &change) {
            Ok(proposal) => {
                self.admin_proposals.insert(proposal, asker);
            }
            Err(SubmitError::NotLeader { leader_hint: Some(leader) })
                if matches!(asker, AdminAsker::Operator(_)) =>
            {
                match self.directory.peer(leader) {
                    Some(peer) => {
                        self.send_peer(peer, &PeerRequest::Admin(request), Outbound::Admin(asker));
                    }
                    None => answer_admin(
                        &mut self.swarm,
                        asker,
                        AdminResponse::Retry("no leader known yet".into()),
                    ),
                }
            }
            Err(e @ (SubmitError::InvalidMembershipChange(_) | SubmitError::TooLarge { .. })) => {
                answer_admin(&mut self.swarm, asker, AdminResponse::Refused(e.to_string()))
            }
            Err(e) => answer_admin(&mut self.swarm, asker, AdminResponse::Retry(e.to_string())),
        }
    }

    pub(super) fn cluster_status(&self) -> ClusterStatus {
        let status = self.node.status();
        let me = *self.swarm.local_peer_id();
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
            .map(|(id, role)| {
                let peer = self.directory.peer(id);
                MemberStatus {
                    id,
                    peer: peer.map(|p| p.to_string()),
                    role: role.into(),
                    connected: peer.is_some_and(|p| p == me || self.swarm.is_connected(&p)),
                }
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

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre-candidate",
    }
}
