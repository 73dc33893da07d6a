//! Presence and typing: ephemeral, signed by their users, passed between
//! replicas over gossip and never through the log.
//!
//! A replica takes an announcement from its own client (the connection's
//! user must be its signer) and publishes it to the others; one that
//! arrives over gossip is checked the same way and never re-published
//! (gossip forwards it already).

use super::output::ServiceOutput;
use super::presence::PresenceView;
use super::topic::GossipTopic;
use super::ReplicaService;
use crate::im::identity::UserId;
use crate::im::presence::{PresenceError, PresenceStatus, SignedPresence};
use crate::im::typing::{SignedTyping, TypingError};
use crate::limits;
use crate::wire::client_protocol::{ClientResponse, LiveFrame, UserPresence};
use crate::wire::replica_protocol;
use bytes::Bytes;

impl ReplicaService {
    /// Takes a presence announcement from a client (`user`) or from gossip (None).
    pub(super) fn take_presence(
        &mut self,
        announcement: &SignedPresence,
        user: Option<UserId>,
    ) -> ClientResponse {
        if user.is_some_and(|u| u != announcement.user) {
            return ClientResponse::BadRequest("presence signed by another user".into());
        }
        match self.presence.announce(self.now, announcement) {
            Ok(_) => {
                if user.is_some() && !crate::config::bug_on!(self, skip_presence_gossip) {
                    self.publish(GossipTopic::Presence, replica_protocol::encode(announcement));
                }
                ClientResponse::PresenceTaken
            }
            // An older announcement than one already seen changes nothing;
            // the client did nothing wrong (its replica may have lagged).
            Err(PresenceError::Stale) => ClientResponse::PresenceTaken,
            Err(e) => ClientResponse::BadRequest(e.to_string()),
        }
    }

    /// Answers `asker`'s presence look-up from the table. A user who
    /// blocks the asker looks to them as one never seen.
    pub(super) fn presence_of(&self, users: &[UserId], asker: UserId) -> ClientResponse {
        if users.len() > limits::PRESENCE_QUERY_USERS_MAX {
            return ClientResponse::BadRequest("too many users in one presence query".into());
        }
        let machine = self.node.state_machine();
        let view = |u: &UserId| {
            if machine.blocks(*u, asker) {
                PresenceView { status: PresenceStatus::Offline, last_seen_ms: None }
            } else {
                self.presence.view(self.now, *u)
            }
        };
        let views = users.iter().map(|u| UserPresence::new(*u, view(u))).collect();
        ClientResponse::Presence(views)
    }

    /// Takes a typing notice from a client (`user`) or from gossip (None):
    /// only a current member may type in a room, only a fresh notice counts
    /// (an old signed one replayed is refused), and it goes to this
    /// replica's subscribers of the room and, from a client, to the others.
    pub(super) fn take_typing(
        &mut self,
        notice: &SignedTyping,
        user: Option<UserId>,
    ) -> ClientResponse {
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
        match self.typing.admit(self.now, notice.user, &body) {
            Ok(()) => {}
            // A repeat of a notice already passed on is no news.
            Err(TypingError::Repeated) => return ClientResponse::TypingTaken,
            Err(e) => return ClientResponse::BadRequest(e.to_string()),
        }
        if user.is_some() {
            self.publish(GossipTopic::Typing, replica_protocol::encode(notice));
        }
        let frame =
            LiveFrame::Typing { room: body.room.clone(), user: notice.user, active: body.active };
        self.live.offer_typing(self.node.state_machine(), &body.room, notice.user, &frame);
        ClientResponse::TypingTaken
    }

    /// A gossip message from another replica. Junk is dropped here; a
    /// driver with peer scoring may also count it against the sender.
    pub(super) fn on_gossip(&mut self, topic: GossipTopic, data: &Bytes) -> bool {
        match topic {
            GossipTopic::Presence => match replica_protocol::decode::<SignedPresence>(data) {
                Ok(a) => matches!(self.take_presence(&a, None), ClientResponse::PresenceTaken),
                Err(_) => false,
            },
            GossipTopic::Typing => match replica_protocol::decode::<SignedTyping>(data) {
                Ok(n) => matches!(self.take_typing(&n, None), ClientResponse::TypingTaken),
                Err(_) => false,
            },
        }
    }

    fn publish(&mut self, topic: GossipTopic, data: Vec<u8>) {
        self.outputs.push_back(ServiceOutput::Publish { topic, data });
    }
}
