//! The service's requests to other replicas (commands forwarded to the
//! leader, operator requests) on one `/kith/peer-session/1` stream per
//! peer (`crate::net::session_link`) instead of a `/kith/peer/1` exchange
//! each: a follower forwards most of a cluster's commands, and each
//! exchange cost a yamux stream, a negotiation and a request timer.
//!
//! Each request's answer, or its failure, comes back to the run loop on
//! one channel under the service's `OutboundId` (`crate::net::pending`),
//! a fact for the service as a request-response answer was. Links are kept
//! when their peer leaves the membership: a leader being removed still
//! answers the removal forwarded to it, and dropping its link failed that
//! request, whose resend was then refused as removing a non-member
//! (`node/tests/missed_addition.rs` caught it). There is one link per
//! replica this one ever forwarded to, each a task idle between requests.
//! A peer that has no session streams (a replica from before them, during
//! an upgrade) gets the requests on `/kith/peer/1`, through the run loop.

use crate::net::behaviour::PEER_SESSION_PROTOCOL;
use crate::net::pending::{Answer, Pending, TaggedAnswers};
use crate::net::session_link::{Fallback, LinkTo, Request, SessionLink};
use kith_core::limits::PEER_SESSION_REQUESTS_IN_FLIGHT_MAX;
use kith_core::replica::OutboundId;
use libp2p::PeerId;
use std::collections::BTreeMap;
use tokio::sync::mpsc;

/// Requests queued per peer, not yet written.
const QUEUED_PER_PEER: usize = 1024;
/// Requests for peers without session streams not yet taken by the run
/// loop.
const FALLBACKS_QUEUED: usize = 1024;

/// The links to other replicas.
pub struct PeerLinks {
    control: libp2p_stream::Control,
    links: BTreeMap<PeerId, SessionLink>,
    answers: TaggedAnswers,
    fallback: mpsc::Sender<(PeerId, Request)>,
}

/// What the links report to the run loop.
pub struct PeerLinkEvents {
    /// Answers to the service's requests, under their `OutboundId`s.
    pub answers: mpsc::UnboundedReceiver<(u64, Answer)>,
    /// Requests for a peer without session streams, to send on
    /// `/kith/peer/1`.
    pub fallback: mpsc::Receiver<(PeerId, Request)>,
}

impl PeerLinks {
    pub fn new(control: libp2p_stream::Control) -> (PeerLinks, PeerLinkEvents) {
        let (answers, answers_rx) = mpsc::unbounded_channel();
        let (fallback, fallback_rx) = mpsc::channel(FALLBACKS_QUEUED);
        let links = PeerLinks { control, links: BTreeMap::new(), answers, fallback };
        (links, PeerLinkEvents { answers: answers_rx, fallback: fallback_rx })
    }

    /// Sends the service's request `id` to `peer`; its answer (or failure)
    /// arrives on [`PeerLinkEvents::answers`].
    pub fn send(&mut self, peer: PeerId, id: OutboundId, frame: Vec<u8>) {
        let link = match self.links.get(&peer) {
            Some(link) => link,
            None => {
                let link = self.start(peer);
                self.links.entry(peer).or_insert(link)
            }
        };
        link.try_send(frame, Pending::tagged(id.0, &self.answers));
    }

    fn start(&self, peer: PeerId) -> SessionLink {
        let fallback = Fallback { to: self.fallback.clone(), wrap: Box::new(move |r| (peer, r)) };
        let to = LinkTo {
            peer,
            protocol: PEER_SESSION_PROTOCOL,
            in_flight_max: PEER_SESSION_REQUESTS_IN_FLIGHT_MAX,
        };
        SessionLink::start(self.control.clone(), to, QUEUED_PER_PEER, fallback)
    }
}
