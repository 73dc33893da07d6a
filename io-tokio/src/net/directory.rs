//! The replica directory: which PeerId (and addresses) each Raft id has.
//!
//! Records are self-certifying (the Raft id is a hash of the PeerId), so
//! the directory can be learned from any replica and merged freely. It is
//! saved in the data directory so a restarted replica can dial its peers.

use crate::peer_ids::node_id_of;
use kith_core::ids::NodeId;
use kith_core::limits;
use kith_core::wire::replica_protocol::ReplicaRecord;
use libp2p::{Multiaddr, PeerId};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Addresses kept per replica.
const ADDRS_PER_REPLICA_MAX: usize = 8;
/// Replicas remembered (members plus a few that are joining or leaving).
const REPLICAS_MAX: usize = 4 * limits::PEERS_MAX;

/// Known replicas.
#[derive(Debug)]
pub struct Directory {
    path: PathBuf,
    replicas: BTreeMap<NodeId, (PeerId, Vec<Multiaddr>)>,
}

impl Directory {
    /// Loads the directory saved at `path` (empty when there is none or it
    /// does not decode: it is only a cache of dialing hints).
    pub fn load(path: &Path) -> Directory {
        let mut dir = Directory { path: path.to_path_buf(), replicas: BTreeMap::new() };
        if let Ok(bytes) = std::fs::read(path) {
            match kith_core::wire::replica_protocol::decode::<Vec<ReplicaRecord>>(&bytes) {
                Ok(records) => {
                    dir.merge(&records);
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "ignoring the saved peer list")
                }
            }
        }
        dir
    }

    /// Adds or updates one replica; returns whether anything changed.
    pub fn insert(&mut self, peer: PeerId, addrs: &[Multiaddr]) -> bool {
        let id = node_id_of(&peer);
        if !self.replicas.contains_key(&id) && self.replicas.len() >= REPLICAS_MAX {
            return false;
        }
        let entry = self.replicas.entry(id).or_insert_with(|| (peer, Vec::new()));
        let before = entry.1.len();
        for a in addrs {
            if !entry.1.contains(a) && entry.1.len() < ADDRS_PER_REPLICA_MAX {
                entry.1.push(a.clone());
            }
        }
        before != entry.1.len() || before == 0
    }

    /// Merges records learned from a peer; returns whether anything changed.
    pub fn merge(&mut self, records: &[ReplicaRecord]) -> bool {
        let mut changed = false;
        for r in records.iter().take(REPLICAS_MAX) {
            let Ok(peer) = PeerId::from_bytes(&r.peer) else { continue };
            let addrs: Vec<Multiaddr> = r
                .addrs
                .iter()
                .take(ADDRS_PER_REPLICA_MAX)
                .filter_map(|a| Multiaddr::try_from(a.clone()).ok())
                .collect();
            changed |= self.insert(peer, &addrs);
        }
        changed
    }

    /// Every record, for a Hello.
    pub fn records(&self) -> Vec<ReplicaRecord> {
        self.replicas
            .values()
            .map(|(p, a)| ReplicaRecord {
                peer: p.to_bytes(),
                addrs: a.iter().map(|a| a.to_vec()).collect(),
            })
            .collect()
    }

    /// The PeerId of replica `id`.
    pub fn peer(&self, id: NodeId) -> Option<PeerId> {
        self.replicas.get(&id).map(|(p, _)| *p)
    }

    /// The addresses of replica `id`.
    pub fn addrs(&self, id: NodeId) -> &[Multiaddr] {
        self.replicas.get(&id).map_or(&[], |(_, a)| a.as_slice())
    }

    /// Whether `peer` is a known replica.
    pub fn knows(&self, peer: &PeerId) -> bool {
        self.replicas.get(&node_id_of(peer)).is_some_and(|(p, _)| p == peer)
    }

    /// Every known replica.
    pub fn peers(&self) -> impl Iterator<Item = (NodeId, PeerId)> + '_ {
        self.replicas.iter().map(|(id, (p, _))| (*id, *p))
    }

    /// Writes the directory (atomically: temporary file, then rename).
    pub fn save(&self) {
        let bytes = kith_core::wire::replica_protocol::encode(&self.records());
        let tmp = self.path.with_extension("tmp");
        let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = result {
            tracing::warn!(file = %self.path.display(), error = %e, "could not save the peer list");
        }
    }
}
