//! Swarm events, and the replica-to-replica protocol.

use super::askers::{answer, answer_admin, AdminAsker, Asker};
use super::{Outbound, Replica};
use crate::net::behaviour::BehaviourEvent;
use crate::peer_ids::node_id_of;
use kith_core::im::client_protocol::ClientResponse;
use kith_core::im::replica_protocol::{self, PeerRequest, PeerResponse};
use kith_core::node::Input;
use libp2p::request_response::{Event, Message, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, identify, PeerId};

impl Replica {
    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Peer(e)) => self.on_peer_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Client(e)) => self.on_client_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Admin(e)) => self.on_admin_event(e),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                message,
                ..
            })) => self.on_gossip(&message.topic, &message.data),
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
                {
                    self.join_peers.insert(peer_id);
                }
                if self.directory.knows(&peer_id) || self.join_peers.contains(&peer_id) {
                    self.send_hello(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                self.on_disconnected(peer_id)
            }
            _ => {}
        }
    }

    fn on_identified(&mut self, peer: PeerId, info: identify::Info) {
        if self.is_member(&peer) || self.join_peers.contains(&peer) {
            let addrs: Vec<_> = info.listen_addrs.into_iter().take(8).collect();
            if self.directory.insert(peer, &addrs) {
                self.directory.save();
            }
        }
    }

    fn on_disconnected(&mut self, peer: PeerId) {
        if self.is_member(&peer) {
            let now = self.now();
            self.node.handle_input(now, Input::PeerUnreachable { peer: node_id_of(&peer) });
        }
    }

    /// Whether `peer` is a voter or learner of the current configuration.
    pub(super) fn is_member(&self, peer: &PeerId) -> bool {
        self.node.membership().contains(node_id_of(peer))
    }

    /// Raft traffic is taken from members, and from the replicas members
    /// told this one about (its directory): a replica that has not applied
    /// an addition yet must still follow the added replica if it leads,
    /// or it never catches up to learn of the addition. A replica that has
    /// not learned any configuration (it is joining) also takes it from
    /// its join targets. Strangers are refused; a removed replica known to
    /// the directory gets past this gate, and the node gives it nothing
    /// to act on (`Node::removed`), as the simulator checks.
    fn may_send_raft(&self, peer: &PeerId) -> bool {
        let membership = self.node.membership();
        membership.contains(node_id_of(peer))
            || self.directory.knows(peer)
            || (membership.is_empty() && self.join_peers.contains(peer))
    }

    /// While this replica has no configuration yet, keeps dialing the join
    /// addresses (the target may have started after us).
    pub(super) fn redial_join_targets(&mut self) {
        let connected = self.join_peers.iter().any(|p| self.swarm.is_connected(p));
        if !self.node.membership().is_empty() || connected {
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
            .filter(|(id, _)| self.node.membership().contains(*id))
            .map(|(_, p)| p)
            .chain(self.join_peers.iter().copied())
            .filter(|p| p != self.swarm.local_peer_id())
            .collect();
        for peer in peers {
            self.send_hello(peer);
        }
    }

    fn send_hello(&mut self, peer: PeerId) {
        let hello = PeerRequest::Hello(self.directory.records());
        self.send_peer(peer, &hello, Outbound::Hello);
    }

    /// Sends a request to another replica, dialing the addresses we know
    /// for it when not connected. libp2p's request-response forgets an
    /// address after one failed dial, so a replica that was down when first
    /// dialed (every replica but the last, after a whole-cluster restart)
    /// would otherwise never be dialed again.
    pub(super) fn send_peer(&mut self, peer: PeerId, request: &PeerRequest, what: Outbound) {
        let mut addrs = self.directory.addrs(node_id_of(&peer)).to_vec();
        if addrs.is_empty() {
            let names_peer = |a: &&libp2p::Multiaddr| crate::peer_ids::named_peer(a) == Some(peer);
            addrs = self.join_targets.iter().filter(names_peer).cloned().collect();
        }
        let frame = replica_protocol::encode(request);
        let id = self.swarm.behaviour_mut().peer.send_request_with_addresses(&peer, frame, addrs);
        self.outbound.insert(id, what);
    }

    fn on_peer_event(&mut self, event: Event<Vec<u8>, Vec<u8>>) {
        match event {
            Event::Message { peer, message: Message::Request { request, channel, .. }, .. } => {
                self.on_peer_request(peer, &request, channel)
            }
            Event::Message {
                peer, message: Message::Response { request_id, response }, ..
            } => {
                if let Some(what) = self.outbound.remove(&request_id) {
                    self.on_peer_response(peer, what, &response);
                }
            }
            Event::OutboundFailure { peer, request_id, error, .. } => {
                tracing::debug!(%peer, %error, "peer request failed");
                if let Some(what) = self.outbound.remove(&request_id) {
                    self.on_peer_failure(what);
                }
            }
            _ => {}
        }
    }

    fn on_peer_request(&mut self, peer: PeerId, bytes: &[u8], channel: ResponseChannel<Vec<u8>>) {
        let request = match replica_protocol::decode::<PeerRequest>(bytes) {
            Ok(r) => r,
            Err(e) => return self.refuse_peer(peer, channel, format!("malformed frame: {e}")),
        };
        match request {
            PeerRequest::Raft(frame) => {
                if self.take_raft_frame(peer, frame, "Raft traffic") {
                    self.respond_peer(channel, &PeerResponse::Ack);
                } else {
                    self.refuse_peer(peer, channel, "not a member of this cluster".into());
                }
            }
            PeerRequest::Hello(records) => {
                // Only members' records are taken from an arbitrary peer;
                // records are self-certifying, so a member cannot forge one.
                let membership = self.node.membership();
                let members: Vec<_> = records
                    .into_iter()
                    .filter(|r| {
                        PeerId::from_bytes(&r.peer)
                            .is_ok_and(|p| membership.contains(node_id_of(&p)))
                    })
                    .collect();
                if self.directory.merge(&members) {
                    self.directory.save();
                }
                let ours = PeerResponse::Hello(self.directory.records());
                self.respond_peer(channel, &ours);
            }
            PeerRequest::Forward(command) if self.is_member(&peer) => {
                self.submit(command, Asker::Replica(channel), None);
            }
            PeerRequest::Admin(request) if self.is_member(&peer) => {
                self.admin(request, AdminAsker::Replica(channel));
            }
            _ => self.refuse_peer(peer, channel, "not a member of this cluster".into()),
        }
    }

    /// A snapshot chunk from a `/kith/snapshot/1` stream: taken on the same
    /// terms as Raft traffic.
    pub(super) fn on_snapshot_chunk(&mut self, peer: PeerId, frame: bytes::Bytes) {
        tracing::debug!(%peer, bytes = frame.len(), "snapshot chunk received");
        self.take_raft_frame(peer, frame, "a snapshot stream");
    }

    /// Hands a Raft frame (`what` says how it came) to the node if `peer`
    /// may send one; counts and logs a refusal otherwise.
    fn take_raft_frame(&mut self, peer: PeerId, frame: bytes::Bytes, what: &str) -> bool {
        if !self.may_send_raft(&peer) {
            self.metrics.raft_frames_refused += 1;
            tracing::warn!(%peer, "refused {what} from a peer outside the cluster");
            return false;
        }
        let now = self.now();
        self.node.handle_input(now, Input::Received { from: node_id_of(&peer), bytes: frame });
        true
    }

    fn respond_peer(&mut self, channel: ResponseChannel<Vec<u8>>, response: &PeerResponse) {
        let frame = replica_protocol::encode(response);
        let _ = self.swarm.behaviour_mut().peer.send_response(channel, frame);
    }

    fn refuse_peer(&mut self, peer: PeerId, channel: ResponseChannel<Vec<u8>>, why: String) {
        tracing::debug!(%peer, %why, "peer request refused");
        self.respond_peer(channel, &PeerResponse::Refused(why));
    }

    fn on_peer_response(&mut self, peer: PeerId, what: Outbound, bytes: &[u8]) {
        let response = replica_protocol::decode::<PeerResponse>(bytes);
        match (what, response) {
            (Outbound::Raft(p), _) => self.raft_done(p),
            (Outbound::Forward(asker), Ok(PeerResponse::Forwarded(r))) => {
                self.forwards -= 1;
                answer(&mut self.swarm, asker, r)
            }
            (Outbound::Admin(asker), Ok(PeerResponse::Admin(r))) => {
                answer_admin(&mut self.swarm, asker, r)
            }
            (Outbound::Hello, Ok(PeerResponse::Hello(records))) => {
                if (self.is_member(&peer) || self.join_peers.contains(&peer))
                    && self.directory.merge(&records)
                {
                    self.directory.save();
                    self.add_directory_addresses();
                }
            }
            (what, _) => self.on_peer_failure(what),
        }
    }

    fn on_peer_failure(&mut self, what: Outbound) {
        match what {
            Outbound::Raft(p) => self.raft_done(p),
            // The leader may have applied it: the client retries with the
            // same command id, which is idempotent.
            Outbound::Forward(asker) => {
                self.forwards -= 1;
                answer(&mut self.swarm, asker, ClientResponse::Retry { maybe_applied: true })
            }
            Outbound::Admin(asker) => {
                let retry = kith_core::im::replica_protocol::AdminResponse::Retry(
                    "the leader did not answer".into(),
                );
                answer_admin(&mut self.swarm, asker, retry)
            }
            Outbound::Hello => {}
        }
    }

    fn raft_done(&mut self, peer: PeerId) {
        if let Some(n) = self.raft_in_flight.get_mut(&peer) {
            *n = n.saturating_sub(1);
        }
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
            self.swarm.add_peer_address(peer, addr.clone());
            self.swarm.behaviour_mut().kad.add_address(&peer, addr);
        }
    }
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
