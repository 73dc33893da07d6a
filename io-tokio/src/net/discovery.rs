//! Finding replicas on the local network with no address configured.
//!
//! A replica run with `--mdns` answers multicast DNS queries with the
//! addresses it listens on (those of the interface the query came in on:
//! libp2p's mDNS ignores loopback, so a replica must listen on a LAN
//! address or `0.0.0.0` to be found). Anything on the network can answer
//! mDNS, so an answer is only a candidate: it is dialed, and kept only if
//! identify shows a kith process that serves the client protocol and it
//! answers a cluster status. A network may hold several clusters: the
//! replicas found are grouped by the membership they report, so a client
//! never mixes two clusters' replicas in one session.

use super::behaviour::{
    build_swarm, Behaviour, BehaviourEvent, SwarmOptions, CLIENT_PROTOCOL, IDENTIFY_VERSION,
};
use super::read_budget::HeldFrame;
use crate::peer_ids::node_id_of;
use futures::StreamExt;
use kith_core::ids::NodeId;
use kith_core::wire::replica_protocol::{self, AdminRequest, AdminResponse};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, mdns, Multiaddr, PeerId, Swarm};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Peers a search dials at most: a network full of mDNS answers costs a
/// bounded number of connections.
const CANDIDATES_MAX: usize = 16;
/// Addresses kept per candidate.
const ADDRS_PER_CANDIDATE_MAX: usize = 8;
/// After the first replica confirms, how long others may still confirm
/// (so a client gets the whole cluster to fail over to, not one replica).
const STRAGGLERS_WAIT: Duration = Duration::from_millis(700);

/// Why a search could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The swarm (or its mDNS sockets) could not be set up.
    #[error("starting mDNS discovery: {0}")]
    Start(String),
}

/// One cluster's replicas as found on the network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoundCluster {
    /// Each replica at the address it was reached at, ending in
    /// `/p2p/PEERID`, in the order they answered.
    pub replicas: Vec<Multiaddr>,
    /// The members the replicas reported.
    members: BTreeSet<NodeId>,
}

/// The clusters whose replicas answered on the local network within
/// `wait` (sooner once one has answered). Empty when none did.
pub async fn discover_clusters(wait: Duration) -> Result<Vec<FoundCluster>, DiscoveryError> {
    let options = SwarmOptions { mdns: true, ..SwarmOptions::default() };
    let key = libp2p::identity::Keypair::generate_ed25519();
    let swarm = build_swarm(key, &options).map_err(|e| DiscoveryError::Start(e.to_string()))?;
    let mut search = Search {
        swarm,
        heard: BTreeMap::new(),
        reached: BTreeMap::new(),
        asked: BTreeMap::new(),
        clusters: Vec::new(),
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut until = deadline;
    loop {
        let event = tokio::select! {
            event = search.swarm.select_next_some() => event,
            () = tokio::time::sleep_until(until) => break,
        };
        if search.on_event(event) {
            until = deadline.min(tokio::time::Instant::now() + STRAGGLERS_WAIT);
        }
    }
    Ok(search.clusters)
}

/// A search in progress.
struct Search {
    swarm: Swarm<Behaviour>,
    /// Candidates and the addresses mDNS gave for them.
    heard: BTreeMap<PeerId, Vec<Multiaddr>>,
    /// Where each dialed candidate was reached.
    reached: BTreeMap<PeerId, Multiaddr>,
    /// Status requests sent to kith replicas.
    asked: BTreeMap<OutboundRequestId, PeerId>,
    clusters: Vec<FoundCluster>,
}

impl Search {
    /// Takes one swarm event; true when a replica was confirmed.
    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) -> bool {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(list))) => {
                self.on_heard(list);
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                let at = endpoint.get_remote_address().clone();
                self.reached.entry(peer_id).or_insert(at);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                let kith = info.protocol_version == IDENTIFY_VERSION
                    && info.protocols.contains(&CLIENT_PROTOCOL);
                if kith
                    && self.heard.contains_key(&peer_id)
                    && !self.asked.values().any(|p| *p == peer_id)
                {
                    let frame = HeldFrame::new(replica_protocol::encode(&AdminRequest::Status));
                    let id = self.swarm.behaviour_mut().admin.send_request(&peer_id, frame);
                    self.asked.insert(id, peer_id);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Admin(request_response::Event::Message {
                message: request_response::Message::Response { request_id, response },
                ..
            })) => {
                let status = replica_protocol::decode::<AdminResponse>(&response);
                if let (Some(&peer), Ok(AdminResponse::Status(status))) =
                    (self.asked.get(&request_id), status)
                {
                    let members = status.members.iter().map(|m| m.id).collect();
                    return self.confirm(peer, members);
                }
            }
            _ => {}
        }
        false
    }

    /// Candidates mDNS named: each new one is dialed once, at all the
    /// addresses it gave at once.
    fn on_heard(&mut self, list: Vec<(PeerId, Multiaddr)>) {
        let mut fresh = Vec::new();
        for (peer, addr) in list {
            if self.heard.len() >= CANDIDATES_MAX && !self.heard.contains_key(&peer) {
                continue;
            }
            let addrs = self.heard.entry(peer).or_default();
            if addrs.is_empty() {
                fresh.push(peer);
            }
            if addrs.len() < ADDRS_PER_CANDIDATE_MAX && !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        for peer in fresh {
            let addrs = self.heard[&peer].clone();
            let _ = self.swarm.dial(DialOpts::peer_id(peer).addresses(addrs).build());
        }
    }

    /// A replica that answered a status, filed with every cluster it is a
    /// member of or that counts it as one (merged into one: a replica still
    /// joining may know no members yet, while its leader knows it).
    fn confirm(&mut self, peer: PeerId, mut members: BTreeSet<NodeId>) -> bool {
        let Some(addr) = self.reached.get(&peer) else { return false };
        let mut addr = addr.clone();
        if !matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
            addr.push(Protocol::P2p(peer));
        }
        tracing::info!(%peer, %addr, "found a replica by mDNS");
        members.insert(node_id_of(&peer));
        file_replica(&mut self.clusters, addr, members);
        true
    }
}

/// Files a replica (at `addr`, counting `members`, itself among them) with
/// every cluster that shares a member with it, merged into one (a replica
/// still joining may know no members yet, while its leader knows it).
/// Clusters stay pairwise disjoint.
fn file_replica(clusters: &mut Vec<FoundCluster>, addr: Multiaddr, members: BTreeSet<NodeId>) {
    let mut merged = FoundCluster { replicas: Vec::new(), members };
    let mut kept = Vec::new();
    for cluster in std::mem::take(clusters) {
        if cluster.members.is_disjoint(&merged.members) {
            kept.push(cluster);
        } else {
            merged.replicas.extend(cluster.replicas);
            merged.members.extend(cluster.members);
        }
    }
    merged.replicas.push(addr);
    kept.push(merged);
    *clusters = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> NodeId {
        NodeId(n)
    }

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/192.0.2.2/tcp/{port}").parse().unwrap()
    }

    #[test]
    fn a_joiner_that_knows_no_members_is_filed_with_its_leader() {
        let mut clusters = Vec::new();
        file_replica(&mut clusters, addr(1), [id(1)].into());
        file_replica(&mut clusters, addr(3), [id(3)].into());
        assert_eq!(clusters.len(), 2, "nothing ties them yet");
        file_replica(&mut clusters, addr(2), [id(1), id(2), id(3)].into());
        assert_eq!(clusters.len(), 1);
        assert_eq!(clusters[0].replicas, vec![addr(1), addr(3), addr(2)]);
    }

    #[test]
    fn two_clusters_stay_two() {
        let mut clusters = Vec::new();
        file_replica(&mut clusters, addr(1), [id(1), id(2)].into());
        file_replica(&mut clusters, addr(7), [id(7)].into());
        file_replica(&mut clusters, addr(2), [id(1), id(2)].into());
        assert_eq!(clusters.len(), 2);
        let sizes: Vec<usize> = clusters.iter().map(|c| c.replicas.len()).collect();
        assert_eq!(sizes, vec![1, 2]);
    }
}
