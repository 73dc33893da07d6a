//! The client and admin protocols and gossip: each arriving frame becomes a
//! fact for the service, with the identity its connection authenticated.

use super::askers::Channel;
use super::peer_faults::PeerFault;
use super::sessions::{SessionKind, SessionRequest};
use super::Replica;
use crate::net::read_budget::{HeldFrame, Unreadable, READ_BUDGET};
use crate::peer_ids::node_id_of;
use crate::peer_ids::user_of;
use kith_core::replica::{GossipTopic, ServiceInput};
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::request_response::{Event, InboundFailure, Message};
use libp2p::PeerId;

impl Replica {
    pub(super) fn on_client_event(&mut self, event: Event<HeldFrame, Vec<u8>>) {
        let Event::Message { peer, message: Message::Request { request, channel, .. }, .. } = event
        else {
            return self.note_inbound_failure(&event);
        };
        let asker = self.askers.name(Channel::Client(channel));
        let user = user_of(&peer);
        // The frame holds its part of the read budget until the service took it.
        let (frame, _held) = request.into_parts();
        self.input(ServiceInput::ClientRequested { asker, user, frame: frame.into() });
    }

    /// A request on a session stream: the same fact as one on
    /// `/kith/client/1` (or `/kith/peer/1`); only the way back differs.
    pub(super) fn on_session_request(&mut self, request: SessionRequest) {
        let SessionRequest { kind, peer, frame, reply } = request;
        let asker = self.askers.name(Channel::Session(reply));
        // The frame holds its part of the read budget until the service took it.
        let (frame, _held) = frame.into_parts();
        let frame = frame.into();
        self.input(match kind {
            SessionKind::Client => {
                ServiceInput::ClientRequested { asker, user: user_of(&peer), frame }
            }
            SessionKind::Peer => {
                ServiceInput::PeerRequested { asker, from: node_id_of(&peer), frame }
            }
        });
    }

    pub(super) fn on_admin_event(&mut self, event: Event<HeldFrame, Vec<u8>>) {
        let Event::Message { peer, message: Message::Request { request, channel, .. }, .. } = event
        else {
            return self.note_inbound_failure(&event);
        };
        let asker = self.askers.name(Channel::Admin(channel));
        let operator = user_of(&peer);
        let (frame, _held) = request.into_parts();
        self.input(ServiceInput::AdminRequested { asker, operator, frame: frame.into() });
    }

    /// Counts a request that failed after it was read (its answer could not
    /// be written): the peer's fault, summarized in the log.
    pub(super) fn note_inbound_failure(&mut self, event: &Event<HeldFrame, Vec<u8>>) {
        if let Event::InboundFailure { peer, error: InboundFailure::Io(_), .. } = event {
            self.faults.note(PeerFault::RequestFailed, peer);
        }
    }

    /// Counts the requests peers sent that could not be read (too large,
    /// the read budget spent, cut off), which the codec noted. A connection
    /// evicted for holding the most of the read budget is the offender: a
    /// peer that is not a replica is disconnected.
    pub(super) fn take_unreadable(&mut self) {
        for Unreadable { peer, evicted } in READ_BUDGET.take_unreadable() {
            self.faults.note(PeerFault::RequestFailed, peer);
            if evicted && !self.directory.knows(&peer) && self.swarm.is_connected(&peer) {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    /// A gossip message: the service takes it or refuses it, and gossipsub
    /// forwards it only if it was taken. A peer that is not a replica and
    /// sends one the service refuses is disconnected (its score already
    /// keeps it out of the mesh; this keeps it from trying again at once).
    pub(super) fn on_gossip(
        &mut self,
        source: PeerId,
        id: &gossipsub::MessageId,
        topic: &gossipsub::TopicHash,
        data: Vec<u8>,
    ) {
        let topic =
            GossipTopic::ALL.into_iter().find(|t| IdentTopic::new(t.name()).hash() == *topic);
        let refused_before = self.service.metrics().gossip_refused;
        if let Some(topic) = topic {
            self.input(ServiceInput::GossipReceived { topic, data: data.into() });
        }
        let taken = topic.is_some() && self.service.metrics().gossip_refused == refused_before;
        let verdict = if taken {
            gossipsub::MessageAcceptance::Accept
        } else {
            gossipsub::MessageAcceptance::Reject
        };
        let gossip = &mut self.swarm.behaviour_mut().gossipsub;
        gossip.report_message_validation_result(id, &source, verdict);
        if !taken && !self.directory.knows(&source) {
            self.faults.note(PeerFault::InvalidGossip, source);
            let _ = self.swarm.disconnect_peer_id(source);
        }
    }

    pub(super) fn publish(&mut self, topic: GossipTopic, data: Vec<u8>) {
        // Best effort: with no other replica subscribed yet the message
        // simply stays local.
        let _ = self.swarm.behaviour_mut().gossipsub.publish(IdentTopic::new(topic.name()), data);
    }
}
