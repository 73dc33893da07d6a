//! What outlives any one replica process in a simulation: each replica's
//! disk, the invariant checker, the trace, and a window onto live nodes so
//! the controller can find the leader and read final states.

use bytes::Bytes;
use kith_core::ids::NodeId;
use kith_core::im::identity::Identity;
use kith_core::replica::ReplicaService;
use kith_core::rng::SeededRng;
use kith_core::testing::blob_disk::SimBlobStore;
use kith_core::testing::disk::{DiskConfig, SimDisk};
use kith_core::testing::invariant::Invariants;
use kith_core::testing::sim_history::SimHistory;
use kith_core::testing::violation::Violation;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The UDP-like port every replica listens on.
pub const REPLICA_PORT: u16 = 7000;
/// Message tag for replica-to-replica frames.
pub const TAG_PEER: u64 = 1;
/// Message tag for client requests and responses.
pub const TAG_CLIENT: u64 = 2;
/// Message tag for replica-to-replica requests and their answers
/// (forwarded commands and admin requests).
pub const TAG_PEER_RPC: u64 = 3;
/// Message tag for gossip between replicas (presence, typing).
pub const TAG_GOSSIP: u64 = 4;
/// Message tag for live subscriptions (`live_stream`).
pub const TAG_LIVE: u64 = 5;

/// Receives every datagram with `tag` at `endpoint` into a channel, in a
/// task of its own: madsim's `recv_from` is not cancellation safe, so a
/// loop must not `select!` on it directly.
pub fn receive(
    endpoint: Arc<madsim::net::Endpoint>,
    tag: u64,
) -> tokio::sync::mpsc::Receiver<Bytes> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    madsim::task::spawn(async move {
        let mut buf = vec![0u8; kith_core::limits::FRAME_BYTES_MAX + 64];
        while let Ok((len, _)) = endpoint.recv_from(tag, &mut buf).await {
            if tx.send(Bytes::copy_from_slice(&buf[..len])).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// Message tag for operators' admin requests and their answers.
pub const TAG_ADMIN: u64 = 6;
/// Message tag for chunk requests and answers (`chunk_wire`).
pub const TAG_CHUNKS: u64 = 7;

/// A simulated replica's key: derived from its slot, so the same slot is
/// the same replica in every run. Replica slots are numbered 1-254 (the
/// address is 10.0.0.slot).
pub fn replica_identity(slot: u8) -> Identity {
    Identity::from_secret(blake3::derive_key("kith io-sim replica key", &[slot]))
}

/// A simulated replica's PeerId bytes: its ed25519 key's, as the real
/// node's. The Raft id follows from the PeerId as the real node's does
/// (`NodeId::of_peer`), so an operator's admin request names a replica
/// exactly as it does in production, and the replica can sign, as itself,
/// what the log says it holds.
pub fn replica_peer(slot: u8) -> Vec<u8> {
    replica_identity(slot).user().peer_id_bytes().to_vec()
}

/// The Raft id of the replica in `slot`.
pub fn replica_id(slot: u8) -> NodeId {
    // Deriving a key is a scalar multiplication (tens of µs), and every
    // frame a replica receives names its sender by address: derive each
    // slot's id once per process.
    static IDS: OnceLock<Vec<NodeId>> = OnceLock::new();
    IDS.get_or_init(|| (0..=u8::MAX).map(|slot| NodeId::of_peer(&replica_peer(slot))).collect())
        [usize::from(slot)]
}

/// The slot of replica `id`, if it is a simulated replica's.
pub fn replica_slot(id: NodeId) -> Option<u8> {
    static SLOTS: OnceLock<BTreeMap<NodeId, u8>> = OnceLock::new();
    SLOTS.get_or_init(|| (1..=254).map(|slot| (replica_id(slot), slot)).collect()).get(&id).copied()
}

/// The simulated address of replica `id` (10.0.0.0, where nobody listens,
/// for an id no simulated replica has).
pub fn replica_ip(id: NodeId) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, replica_slot(id).unwrap_or(0)))
}

/// The socket address of replica `id`.
pub fn replica_addr(id: NodeId) -> SocketAddr {
    SocketAddr::new(replica_ip(id), REPLICA_PORT)
}

/// The replica at `addr`, if it is one.
pub fn replica_at(addr: SocketAddr) -> Option<NodeId> {
    match addr.ip() {
        IpAddr::V4(v4) if v4.octets()[..3] == [10, 0, 0] && v4.octets()[3] != 0 => {
            Some(replica_id(v4.octets()[3]))
        }
        _ => None,
    }
}

/// The simulated address of the operator.
pub fn operator_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 2, 1))
}

/// The simulated address of client `i`.
pub fn client_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 1, i as u8 + 1))
}

/// One replica's lasting state.
#[derive(Debug)]
pub struct ReplicaSlot {
    /// Its disk, which survives kill and restart.
    pub disk: SimDisk,
    /// Bumped by every start.
    pub incarnation: u64,
    /// When its current incarnation started.
    pub started: Option<madsim::time::Instant>,
    /// The running replica service, while its process lives.
    pub service: Option<Arc<Mutex<ReplicaService>>>,
    /// Clock skew of this replica, in parts per million.
    pub skew_ppm: i64,
    /// Whether it is in the initial voter set.
    pub bootstrap: bool,
    /// Its durable history store, when the run keeps history on one (it
    /// survives kill and restart; what it had not committed does not).
    pub history: Option<SimHistory>,
    /// Its disk rotted and recovery refused it: it must not run again.
    pub beyond_repair: bool,
    /// Replaced by a new, empty replica; its process never starts again.
    pub retired: bool,
    /// Its file content store, which survives kill and restart (what was
    /// not synced does not).
    pub blobs: SimBlobStore,
}

impl ReplicaSlot {
    fn new(rng: &mut SeededRng, disk: DiskConfig, bootstrap: bool) -> ReplicaSlot {
        ReplicaSlot {
            blobs: SimBlobStore::new(disk.clone()),
            disk: SimDisk::new(disk),
            incarnation: 0,
            started: None,
            service: None,
            skew_ppm: rng.range(0, 2001) as i64 - 1000,
            bootstrap,
            history: None,
            beyond_repair: false,
            retired: false,
        }
    }
}

/// The shared world of one simulation.
#[derive(Debug)]
pub struct SimWorld {
    /// Seed of the run.
    pub seed: u64,
    /// Per-replica lasting state.
    pub replicas: BTreeMap<NodeId, ReplicaSlot>,
    /// Initial voters.
    pub voters: Vec<NodeId>,
    /// Drives disk latencies and crash tears.
    pub rng: SeededRng,
    /// The invariant checkers, fed by every replica.
    pub checker: Invariants,
    /// The first violation seen.
    pub violation: Option<Violation>,
    /// Digest of everything every replica did.
    pub trace: blake3::Hasher,
    /// When set, replicas append a line per event to `trace_lines`.
    pub keep_trace: bool,
    /// The full trace, if kept.
    pub trace_lines: Vec<String>,
    /// Probability that a frame between replicas is delivered twice.
    pub duplicate: f64,
    /// Applied entries between snapshots on every replica.
    pub snapshot_threshold_entries: u64,
    /// When the simulation began (set by the controller).
    pub epoch: Option<madsim::time::Instant>,
    /// Every message id sent, and the integer it stands for in histories.
    pub values: BTreeMap<uuid::Uuid, u64>,
    /// Client commands replicas forwarded to their leader (all runs).
    pub forwards: u64,
    /// Changes (edits, reactions, deletions) live subscribers received.
    pub updates_delivered: u64,
    /// Membership changes the operator's admin requests made.
    pub admin_changes: u64,
    /// Gossip messages replicas published (all runs).
    pub gossip: u64,
    /// Room entries live subscribers received (all runs).
    pub delivered: u64,
    /// Which lobby the clients write to.
    pub lobby: crate::lobby::LobbySchedule,
    /// The highest log index any replica has applied in this run (crashed
    /// ones included): whatever a client was told is applied is at or
    /// below it.
    pub applied_high: kith_core::ids::LogIndex,
    /// Where each live subscriber is in each room it follows (until the
    /// room ends for it): the last entry received and the last change
    /// number heard.
    pub follows: BTreeMap<(usize, kith_core::im::protocol::RoomId), (u64, u64)>,
    /// Where the controller hands the operator its admin requests, once
    /// the operator's process runs.
    pub operator: Option<crate::operator::handle::Operator>,
    /// The file workload's shared state (`file_client`).
    pub files: crate::file_client::FileWorld,
    /// Test-only rule breakers every replica runs with.
    #[cfg(feature = "bug-switches")]
    pub bugs: kith_core::bugs::BugSwitches,
}

/// A handle to the world, shared by replicas, clients and the controller.
#[derive(Clone, Debug)]
pub struct World(Arc<Mutex<SimWorld>>);

impl World {
    /// A world of `voters` bootstrap replicas and `spares` empty ones.
    pub fn new(
        seed: u64,
        voters: u64,
        spares: u64,
        disk: DiskConfig,
        checker: Invariants,
    ) -> World {
        let mut rng = SeededRng::new(seed ^ 0x5eed_d15c);
        assert!(voters + spares < 255, "replica addresses are 10.0.0.1-254");
        let replicas = (1..=voters + spares)
            .map(|i| (replica_id(i as u8), ReplicaSlot::new(&mut rng, disk.clone(), i <= voters)))
            .collect();
        World(Arc::new(Mutex::new(SimWorld {
            seed,
            replicas,
            voters: (1..=voters).map(|i| replica_id(i as u8)).collect(),
            operator: None,
            rng,
            checker,
            violation: None,
            trace: blake3::Hasher::new(),
            keep_trace: false,
            trace_lines: Vec::new(),
            duplicate: 0.0,
            snapshot_threshold_entries: 128,
            epoch: None,
            values: BTreeMap::new(),
            forwards: 0,
            admin_changes: 0,
            updates_delivered: 0,
            gossip: 0,
            delivered: 0,
            lobby: crate::lobby::LobbySchedule::default(),
            applied_high: kith_core::ids::LogIndex(0),
            follows: BTreeMap::new(),
            files: crate::file_client::FileWorld::new(seed),
            #[cfg(feature = "bug-switches")]
            bugs: kith_core::bugs::BugSwitches::default(),
        })))
    }

    /// Locks the world. The simulation is single-threaded; nothing holds
    /// the lock across an await.
    pub fn lock(&self) -> MutexGuard<'_, SimWorld> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SimWorld {
    /// Records the first violation, stamped with the simulated time.
    pub fn fail(&mut self, mut v: Violation) {
        if v.at == kith_core::time::Instant::ZERO {
            let elapsed = self.epoch.map_or(0, |e| e.elapsed().as_micros() as u64);
            v.at = kith_core::time::Instant::from_micros(elapsed);
        }
        if self.violation.is_none() {
            self.violation = Some(v);
        }
    }

    /// Every replica not replaced: the operator's current list.
    pub fn serving(&self) -> Vec<NodeId> {
        self.replicas.iter().filter(|(_, s)| !s.retired).map(|(id, _)| *id).collect()
    }

    /// A new machine with an empty disk, standing in for `old`: the next
    /// free slot (its id and address follow from it), a history store if
    /// `old` had one.
    pub fn replace(&mut self, old: NodeId) -> NodeId {
        let slot = self.replicas.len() + 1;
        assert!(slot < 255, "replica addresses are 10.0.0.1-254");
        let id = replica_id(slot as u8);
        let old = &self.replicas[&old];
        let (disk, durable) = (old.disk.config.clone(), old.history.is_some());
        let mut slot = ReplicaSlot::new(&mut self.rng, disk, false);
        if durable {
            slot.history = Some(SimHistory::default());
        }
        self.replicas.insert(id, slot);
        id
    }

    /// Adds an event to the trace.
    pub fn trace(&mut self, at_micros: u64, node: NodeId, what: &str, bytes: &Bytes) {
        self.trace.update(&at_micros.to_le_bytes());
        self.trace.update(&node.get().to_le_bytes());
        self.trace.update(what.as_bytes());
        self.trace.update(bytes);
        if self.keep_trace {
            let digest = blake3::hash(bytes);
            self.trace_lines.push(format!(
                "{at_micros:>12} n{node} {what} {} bytes {}",
                bytes.len(),
                &digest.to_hex()[..12]
            ));
        }
    }
}
