//! Start-up: open the disk, recover or create the node, build the swarm.

use super::{askers::Askers, clock::Clock, frame_stream, live, metrics, MetricsSnapshot, Replica};
use crate::key_file::{KeyFile, KeyFileError};
use crate::net::behaviour::{
    build_swarm, SwarmError, SwarmOptions, RAFT_PROTOCOL, SNAPSHOT_PROTOCOL,
};
use crate::net::directory::Directory;
use crate::net::read_budget::HeldFrame;
use crate::peer_ids::{node_id_of, user_of};
use crate::storage::{
    BlobError, BlobStore, DiskWriter, HistoryDb, SegmentLog, StorageError, WriteReport,
};
use kith_core::config::Config;
use kith_core::im::ImMachine;
use kith_core::raft::{Node, OnEmptyDisk, StartError};
use kith_core::replica::{GossipTopic, ReplicaService, ServiceConfig};
use libp2p::{gossipsub, Multiaddr, PeerId};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How a replica with an empty disk starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartMode {
    /// Only resume from disk; refuse to start empty.
    Resume,
    /// Start a new cluster with this replica as its only voter.
    Bootstrap,
    /// Wait to be added to the cluster reachable at these addresses.
    Join(Vec<Multiaddr>),
}

/// How to run one replica.
#[derive(Clone, Debug)]
pub struct ReplicaOptions {
    /// The data directory (made by `kith init`).
    pub data_dir: PathBuf,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// What to do when the disk is empty.
    pub mode: StartMode,
    /// PeerIds allowed to change membership.
    pub admins: Vec<PeerId>,
    /// Swarm options.
    pub swarm: SwarmOptions,
    /// Raft tick.
    pub tick_interval: Duration,
    /// Entries between snapshots.
    pub snapshot_threshold_entries: u64,
    /// Serve Prometheus metrics here.
    pub metrics: Option<SocketAddr>,
}

impl ReplicaOptions {
    /// Defaults for `data_dir`.
    pub fn new(data_dir: PathBuf) -> ReplicaOptions {
        ReplicaOptions {
            data_dir,
            listen: Vec::new(),
            mode: StartMode::Resume,
            admins: Vec::new(),
            swarm: SwarmOptions::default(),
            tick_interval: Duration::from_millis(50),
            snapshot_threshold_entries: 10_000,
            metrics: None,
        }
    }
}

/// Why a replica stopped or could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The node key.
    #[error("{0} (run `kith init --dir DIR` first)")]
    Key(#[from] KeyFileError),
    /// The disk.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// libp2p.
    #[error(transparent)]
    Swarm(#[from] SwarmError),
    /// An address could not be listened on.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The history database.
    #[error(
        "{0} (if the file is damaged, replace the replica as a new member: `kith cluster \
         remove` it, move the data directory away, start empty with --join, `kith cluster add` it)"
    )]
    History(#[from] kith_core::im::history::HistoryError),
    /// The disk is empty and no start mode says what to do.
    #[error(
        "{0} holds no replica state: pass --bootstrap to start a new cluster, or --join ADDR \
         to join an existing one"
    )]
    Empty(PathBuf),
    /// The blob store.
    #[error(transparent)]
    Blobs(#[from] BlobError),
    /// The node refused to start or stopped.
    #[error("the replica stopped: {0}")]
    Halted(String),
    /// The metrics endpoint.
    #[error("metrics endpoint {addr}: {reason}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// A replica ready to run, and the channels its run loop waits on.
pub(super) struct Started {
    pub replica: Replica,
    pub disk_reports: mpsc::UnboundedReceiver<WriteReport>,
    pub live_requests: mpsc::Receiver<live::LiveRequest>,
    pub streamed: Streamed,
    pub chunk_requests: mpsc::Receiver<crate::files::chunk_stream::ChunkStream>,
    pub session_requests: mpsc::Receiver<super::sessions::SessionRequest>,
    pub peer_links: super::peer_links::PeerLinkEvents,
    pub file_reports: mpsc::Receiver<super::files::FileReport>,
}

/// Frames arriving on the peer streams (`frame_stream`), by protocol.
pub(super) struct Streamed {
    pub raft: mpsc::Receiver<(PeerId, HeldFrame)>,
    pub snapshots: mpsc::Receiver<(PeerId, HeldFrame)>,
}

/// Opens everything and returns the replica ready to run.
pub(super) async fn start(options: &ReplicaOptions) -> Result<Started, ReplicaError> {
    let key = KeyFile::load(&options.data_dir.join("node.key"))?;
    let peer_id = key.peer_id();
    let id = node_id_of(&peer_id);
    let (log, recovered) = SegmentLog::open(&options.data_dir)?;
    if recovered.torn_tail_bytes > 0 {
        tracing::warn!(bytes = recovered.torn_tail_bytes, "recovered from a torn write");
    }
    let clock = Clock::start();
    let now = clock.now();
    // The seed only spreads election timeouts; the PeerId-derived id is
    // distinct per replica, and the clock varies it across restarts. It is
    // logged so an incident can be replayed in the harness.
    let seed = id.get() ^ now.as_micros();
    let mut config = Config::new(id, seed);
    config.tick_interval = options.tick_interval;
    config.snapshot_threshold_entries = options.snapshot_threshold_entries;
    let history = HistoryDb::open(&options.data_dir.join("history.redb"))?;
    let machine = ImMachine::with_history(Box::new(history));
    let on_empty = match options.mode {
        StartMode::Resume => OnEmptyDisk::Refuse,
        StartMode::Bootstrap => OnEmptyDisk::Bootstrap(std::slice::from_ref(&id)),
        StartMode::Join(_) => OnEmptyDisk::Join,
    };
    let node = Node::resume(config, &recovered, machine, now, on_empty).map_err(|e| match e {
        StartError::NothingOnDisk => ReplicaError::Empty(options.data_dir.clone()),
        e => ReplicaError::Halted(e.to_string()),
    })?;
    let (disk, disk_reports) = DiskWriter::start(log);
    let mut swarm = build_swarm(key.keypair(), &options.swarm)?;
    for addr in &options.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| ReplicaError::Listen { addr: addr.clone(), reason: e.to_string() })?;
    }
    for topic in GossipTopic::ALL {
        let _ =
            swarm.behaviour_mut().gossipsub.subscribe(&gossipsub::IdentTopic::new(topic.name()));
    }
    let mut directory = Directory::load(&options.data_dir.join("peers"));
    directory.insert(peer_id, &[]);
    for (_, peer) in directory.peers().collect::<Vec<_>>() {
        if peer != peer_id {
            for addr in directory.addrs(node_id_of(&peer)).to_vec() {
                swarm.add_peer_address(peer, addr);
            }
        }
    }
    let join_targets = match &options.mode {
        StartMode::Join(addrs) => addrs.clone(),
        _ => Vec::new(),
    };
    for addr in &join_targets {
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(%addr, error = %e, "cannot dial the join address");
        }
    }
    // A join address that names its PeerId makes that peer trusted from
    // the start, whichever side connects first.
    let join_peers: BTreeSet<PeerId> =
        join_targets.iter().filter_map(crate::peer_ids::named_peer).collect();
    let live_requests = live::accept(swarm.behaviour().stream.new_control());
    let chunk_requests = crate::files::chunk_stream::accept(swarm.behaviour().stream.new_control());
    let session_requests = super::sessions::accept(swarm.behaviour().stream.new_control());
    let blobs = BlobStore::open(options.data_dir.join("blobs"))?;
    let (file_reports_tx, file_reports) = super::files::reports();
    let control = || swarm.behaviour().stream.new_control();
    let streamed = Streamed {
        raft: frame_stream::accept(control(), RAFT_PROTOCOL, super::RAFT_FRAMES_RECEIVED_QUEUED),
        snapshots: frame_stream::accept(
            control(),
            SNAPSHOT_PROTOCOL,
            super::CHUNKS_RECEIVED_QUEUED,
        ),
    };
    let raft = frame_stream::FrameSenders::new(
        control(),
        RAFT_PROTOCOL,
        super::RAFT_FRAMES_QUEUED_PER_PEER,
    );
    let snapshots = frame_stream::FrameSenders::new(
        control(),
        SNAPSHOT_PROTOCOL,
        super::CHUNKS_QUEUED_PER_PEER,
    );
    let (peer_links, peer_link_events) = super::peer_links::PeerLinks::new(control());
    let status = node.status();
    tracing::info!(
        %peer_id, node_id = %id, applied = %status.applied, term = %status.term, seed,
        "replica started"
    );
    let admins = options
        .admins
        .iter()
        .filter_map(|peer| {
            let user = user_of(peer);
            if user.is_none() {
                tracing::warn!(%peer, "ignoring an admin whose key is not ed25519");
            }
            user
        })
        .collect();
    let mut config = ServiceConfig::default();
    config.admins = admins;
    config.join_targets = join_peers.iter().map(node_id_of).collect();
    // Its own key, to say in the log which file content it holds.
    config.identity = Some(key.identity());
    let service = ReplicaService::new(node, config, now);
    let mut replica = Replica {
        service,
        swarm,
        disk,
        directory,
        join_targets,
        join_peers,
        clock,
        askers: Askers::default(),
        outbound: BTreeMap::new(),
        live: live::LiveSubscribers::default(),
        raft,
        snapshots,
        peer_links,
        metrics: metrics::Metrics::default(),
        faults: super::peer_faults::PeerFaults::new(std::time::Instant::now()),
        shared_metrics: Arc::new(Mutex::new(MetricsSnapshot::default())),
        blobs,
        fetches: BTreeMap::new(),
        removals: BTreeMap::new(),
        file_reports: file_reports_tx,
    };
    replica.vouch_directory();
    Ok(Started {
        replica,
        disk_reports,
        live_requests,
        streamed,
        chunk_requests,
        session_requests,
        peer_links: peer_link_events,
        file_reports,
    })
}
