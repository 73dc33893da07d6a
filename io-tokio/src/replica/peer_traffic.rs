//! Swarm events, and the replica-to-replica protocol.

use super::askers::Channel;
use super::peer_faults::PeerFault;
use super::{Outbound, Replica};
use crate::net::behaviour::{BehaviourEvent, IDENTIFY_VERSION, STRANGER_GOSSIP_SCORE};
use crate::net::read_budget::HeldFrame;
use crate::peer_ids::node_id_of;
use kith_core::replica::ServiceInput;
use kith_core::wire::replica_protocol::{self, PeerRequest, PeerResponse};
use libp2p::request_response::{Event, Message};
use libp2p::swarm::{ListenError, SwarmEvent};
use libp2p::{gossipsub, identify, mdns, PeerId};

impl Replica {
    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Peer(e)) => self.on_peer_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Client(e)) => self.on_client_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Admin(e)) => self.on_admin_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, &message_id, &message.topic, message.data),
            // With --mdns: peers heard on the local network can be dialed
            // (a member whose address changed is found there too).
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found.into_iter().take(64) {
                    self.swarm.add_peer_address(peer, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => self.on_identified(peer_id, info),
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                let me = *self.swarm.local_peer_id();
                self.directory.insert(me, std::slice::from_ref(&address));
                // A relay hands its addresses out in reservations (and libp2p
                // refuses a reservation without any): a relay server vouches
                // for the addresses it listens on.
                let relayed = address.iter().any(|p| p == libp2p::multiaddr::Protocol::P2pCircuit);
                if self.swarm.behaviour().relay_server.is_enabled() && !relayed {
                    self.swarm.add_external_address(address);
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                let dialed = endpoint.get_remote_address();
                if endpoint.is_dialer()
                    && self.join_targets.iter().any(|t| same_transport_addr(t, dialed))
                    && self.join_peers.insert(peer_id)
                {
                    self.input(ServiceInput::JoinTargetReached { id: node_id_of(&peer_id) });
                }
                if self.directory.knows(&peer_id) || self.join_peers.contains(&peer_id) {
                    self.input(ServiceInput::PeerConnected { peer: node_id_of(&peer_id) });
                    self.send_hello(peer_id);
                } else {
                    // Not a replica (yet): kept out of the gossip mesh.
                    let gossip = &mut self.swarm.behaviour_mut().gossipsub;
                    gossip.set_application_score(&peer_id, STRANGER_GOSSIP_SCORE);
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                self.on_disconnected(peer_id)
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error: ListenError::Denied { .. },
                ..
            } => {
                let source =
                    send_back_addr.iter().next().map_or_else(String::new, |p| p.to_string());
                self.faults.note(PeerFault::ConnectionRefused, source);
            }
            _ => {}
        }
    }

    fn on_identified(&mut self, peer: PeerId, info: identify::Info) {
        if speaks_another_kith(&info.protocol_version) {
            // Frames of another version would only be refused one by one.
            tracing::warn!(
                %peer, theirs = %info.protocol_version, ours = IDENTIFY_VERSION,
                "disconnecting a peer that speaks another kith protocol version"
            );
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        if self.service.trusts_directory_of(node_id_of(&peer)) {
            let addrs: Vec<_> = info.listen_addrs.into_iter().take(8).collect();
            if self.directory.insert(peer, &addrs) {
                self.directory.save();
                self.vouch_directory();
            }
        }
    }

    fn on_disconnected(&mut self, peer: PeerId) {
        self.input(ServiceInput::PeerDisconnected { peer: node_id_of(&peer) });
    }

    /// While this replica has no configuration yet, keeps dialing the join
    /// addresses (the target may have started after us).
    pub(super) fn redial_join_targets(&mut self) {
        let connected = self.join_peers.iter().any(|p| self.swarm.is_connected(p));
        if !self.service.is_joining() || connected {
            return;
        }
        for addr in self.join_targets.clone() {
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::debug!(%addr, error = %e, "cannot dial the join address");
            }
        }
    }

    pub(super) fn send_hellos(&mut self) {
        let peers: Vec<PeerId> = self
            .directory
            .peers()
            .filter(|(id, _)| self.service.trusts_directory_of(*id))
            .map(|(_, p)| p)
            .chain(self.join_peers.iter().copied())
            .filter(|p| p != self.swarm.local_peer_id())
            .collect();
        for peer in peers {
            self.send_hello(peer);
        }
    }

    fn send_hello(&mut self, peer: PeerId) {
        let hello = replica_protocol::encode(&PeerRequest::Hello(self.directory.records()));
        self.send_peer(peer, hello, Outbound::Hello);
    }

    /// Sends a request to another replica, dialing the addresses we know
    /// for it when not connected. libp2p's request-response forgets an
    /// address after one failed dial, so a replica that was down when first
    /// dialed (every replica but the last, after a whole-cluster restart)
    /// would otherwise never be dialed again.
    pub(super) fn send_peer(&mut self, peer: PeerId, frame: Vec<u8>, what: Outbound) {
        let mut addrs = self.directory.addrs(node_id_of(&peer)).to_vec();
        if addrs.is_empty() {
            let names_peer = |a: &&libp2p::Multiaddr| crate::peer_ids::named_peer(a) == Some(peer);
            addrs = self.join_targets.iter().filter(names_peer).cloned().collect();
        }
        let id = self.swarm.behaviour_mut().peer.send_request_with_addresses(
            &peer,
            HeldFrame::new(frame),
            addrs,
        );
        self.outbound.insert(id, what);
    }

    fn on_peer_event(&mut self, event: Event<HeldFrame, Vec<u8>>) {
        match event {
            Event::Message { peer, message: Message::Request { request, channel, .. }, .. } => {
                self.on_peer_request(peer, request, channel)
            }
            Event::Message {
                peer, message: Message::Response { request_id, response }, ..
            } => {
                if let Some(what) = self.outbound.remove(&request_id) {
                    self.on_peer_response(peer, what, response);
                }
            }
            Event::OutboundFailure { peer, request_id, error, .. } => {
                tracing::debug!(%peer, %error, "peer request failed");
                if let Some(what) = self.outbound.remove(&request_id) {
                    self.on_peer_failure(what);
                }
            }
            event => self.note_inbound_failure(&event),
        }
    }

    fn on_peer_request(
        &mut self,
        peer: PeerId,
        frame: HeldFrame,
        channel: libp2p::request_response::ResponseChannel<Vec<u8>>,
    ) {
        let asker = self.askers.name(Channel::Peer(channel));
        let from = node_id_of(&peer);
        // The frame holds its part of the read budget until the service took it.
        let (frame, _held) = frame.into_parts();
        self.input(ServiceInput::PeerRequested { asker, from, frame: frame.into() });
    }

    /// A frame from a `/kith/raft/1` or `/kith/snapshot/1` stream.
    pub(super) fn on_streamed_frame(&mut self, peer: PeerId, frame: HeldFrame) {
        // The frame holds its part of the read budget until the service took it.
        let (frame, _held) = frame.into_parts();
        let frame = frame.into();
        self.input(ServiceInput::RaftFrameReceived { from: node_id_of(&peer), frame });
    }

    fn on_peer_response(&mut self, peer: PeerId, what: Outbound, frame: Vec<u8>) {
        match what {
            Outbound::Linked(answer) => answer.send(Ok(frame)),
            Outbound::Hello => {
                let Ok(PeerResponse::Hello(records)) = replica_protocol::decode(&frame) else {
                    return;
                };
                if self.service.trusts_directory_of(node_id_of(&peer))
                    && self.directory.merge(&records)
                {
                    self.directory.save();
                    self.add_directory_addresses();
                    self.vouch_directory();
                }
            }
        }
    }

    fn on_peer_failure(&mut self, what: Outbound) {
        match what {
            Outbound::Linked(answer) => answer.send(Err("peer request failed".into())),
            Outbound::Hello => {}
        }
    }

    /// The answer to one of the service's requests to another replica, or
    /// why there is none (it may have reached the peer all the same).
    pub(super) fn on_linked_answer(
        &mut self,
        request: kith_core::replica::OutboundId,
        answer: Result<Vec<u8>, String>,
    ) {
        self.input(match answer {
            Ok(frame) => ServiceInput::PeerAnswered { request, frame: frame.into() },
            Err(reason) => {
                tracing::debug!(%reason, "peer request failed");
                ServiceInput::PeerRequestFailed { request, sent: true }
            }
        });
    }

    pub(super) fn add_directory_addresses(&mut self) {
        let me = *self.swarm.local_peer_id();
        let known: Vec<_> = self
            .directory
            .peers()
            .filter(|(_, p)| *p != me)
            .flat_map(|(id, p)| self.directory.addrs(id).iter().map(move |a| (p, a.clone())))
            .collect();
        for (peer, addr) in known {
            self.swarm.add_peer_address(peer, addr);
        }
    }
}

/// Whether a peer's identify version names another kith protocol. Clients
/// of other stacks (docs/clients) announce their own identify strings and
/// are judged by their frames instead.
fn speaks_another_kith(version: &str) -> bool {
    version.starts_with("kith/") && version != IDENTIFY_VERSION
}

/// Whether two addresses name the same transport endpoint (ignoring a
/// trailing `/p2p/...`).
fn same_transport_addr(a: &libp2p::Multiaddr, b: &libp2p::Multiaddr) -> bool {
    let strip = |m: &libp2p::Multiaddr| {
        m.iter()
            .filter(|p| !matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
            .collect::<libp2p::Multiaddr>()
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_other_kith_versions_are_refused() {
        assert!(!speaks_another_kith(IDENTIFY_VERSION));
        assert!(speaks_another_kith("kith/2"));
        assert!(speaks_another_kith("kith/0"));
        // py-libp2p's and js-libp2p's defaults: judged by their frames.
        assert!(!speaks_another_kith("ipfs/0.1.0"));
        assert!(!speaks_another_kith(""));
    }
}
