//! The client and admin protocols and gossip: each arriving frame becomes a
//! fact for the service, with the identity its connection authenticated.

use super::askers::Channel;
use super::Replica;
use crate::peer_ids::user_of;
use kith_core::replica::{GossipTopic, ServiceInput};
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::request_response::{Event, Message};

impl Replica {
    pub(super) fn on_client_event(&mut self, event: Event<Vec<u8>, Vec<u8>>) {
        let Event::Message { peer, message: Message::Request { request, channel, .. }, .. } = event
        else {
            return;
        };
        let asker = self.askers.name(Channel::Client(channel));
        let user = user_of(&peer);
        self.input(ServiceInput::ClientRequested { asker, user, frame: request.into() });
    }

    pub(super) fn on_admin_event(&mut self, event: Event<Vec<u8>, Vec<u8>>) {
        let Event::Message { peer, message: Message::Request { request, channel, .. }, .. } = event
        else {
            return;
        };
        let asker = self.askers.name(Channel::Admin(channel));
        let operator = user_of(&peer);
        self.input(ServiceInput::AdminRequested { asker, operator, frame: request.into() });
    }

    pub(super) fn on_gossip(&mut self, topic: &gossipsub::TopicHash, data: Vec<u8>) {
        let topic =
            GossipTopic::ALL.into_iter().find(|t| IdentTopic::new(t.name()).hash() == *topic);
        if let Some(topic) = topic {
            self.input(ServiceInput::GossipReceived { topic, data: data.into() });
        }
    }

    pub(super) fn publish(&mut self, topic: GossipTopic, data: Vec<u8>) {
        // Best effort: with no other replica subscribed yet the message
        // simply stays local.
        let _ = self.swarm.behaviour_mut().gossipsub.publish(IdentTopic::new(topic.name()), data);
    }
}
