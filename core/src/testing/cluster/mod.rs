//! N replicas wired through the emulated network and simulated disks, run
//! in simulated time with no async runtime: as fast as the CPU allows.

mod faults;
mod host;
mod service_host;
mod sim_machine;
mod step;

pub use host::{Fact, Host, HostContext, HostOutput};
pub use service_host::ServiceHost;
pub use sim_machine::SimMachine;

use super::disk::{DiskConfig, SimDisk};
use super::invariant::{ClientSends, Invariants, StoredMessage};
use super::network::{Channel, Network, NetworkConfig, Packet};
use super::violation::Violation;
use crate::config::Config;
use crate::ids::NodeId;
use crate::ids::{ProposalId, ReadId};
use crate::raft::{MembershipChange, Node, ReadError, Role, SubmitError};
use crate::rng::SeededRng;
use crate::testing::sim_history::SimHistory;
use crate::time::Instant;
use std::collections::BTreeMap;
use std::time::Duration;

/// How the cluster is built.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Seed for every random choice in the cluster.
    pub seed: u64,
    /// Initial voters (ids 1..=voters).
    pub voters: u64,
    /// Extra replicas started empty, to be added by membership changes.
    pub spares: u64,
    /// Network faults.
    pub network: NetworkConfig,
    /// Disk faults.
    pub disk: DiskConfig,
    /// Raft tick length.
    pub tick_interval: Duration,
    /// Applied entries between snapshots.
    pub snapshot_threshold_entries: u64,
    /// Whether state machines keep their history on a durable store that
    /// survives crashes (instead of in memory, rebuilt from the log).
    pub durable_history: bool,
    /// Builds the invariant checkers the cluster feeds every step
    /// (`kith_sim_tests::invariants::all` for the full set).
    pub invariants: fn() -> Invariants,
    /// Test-only rule breakers.
    #[cfg(feature = "bug-switches")]
    pub bugs: crate::bugs::BugSwitches,
}

impl ClusterConfig {
    /// A fault-free cluster of `voters` replicas, checked by `invariants`.
    pub fn new(seed: u64, voters: u64, invariants: fn() -> Invariants) -> ClusterConfig {
        ClusterConfig {
            seed,
            voters,
            invariants,
            spares: 0,
            network: NetworkConfig::default(),
            disk: DiskConfig::default(),
            tick_interval: Duration::from_millis(10),
            snapshot_threshold_entries: 64,
            durable_history: false,
            #[cfg(feature = "bug-switches")]
            bugs: crate::bugs::BugSwitches::default(),
        }
    }
}

/// An output the cluster did not consume itself, tagged with its source.
#[derive(Debug)]
pub struct Event<S: SimMachine> {
    /// The replica.
    pub node: NodeId,
    /// Its incarnation (bumped by every restart).
    pub incarnation: u64,
    /// What it said.
    pub output: <S::Host as Host>::Event,
}

struct Replica<S: SimMachine> {
    host: Option<S::Host>,
    disk: SimDisk,
    history: Option<SimHistory>,
    incarnation: u64,
}

/// The in-memory cluster.
pub struct Cluster<S: SimMachine> {
    config: ClusterConfig,
    replicas: BTreeMap<NodeId, Replica<S>>,
    /// The emulated network (tests change its faults and partitions).
    pub network: Network,
    rng: SeededRng,
    now: Instant,
    checker: Invariants,
    trace: blake3::Hasher,
    events: Vec<Event<S>>,
    pending_violation: Option<Violation>,
}

impl<S: SimMachine> Cluster<S> {
    /// Boots `config.voters` replicas as a new cluster plus `config.spares` empty ones.
    pub fn new(config: ClusterConfig) -> Result<Cluster<S>, Violation> {
        let mut rng = SeededRng::new(config.seed);
        let network = Network::new(rng.next_u64(), config.network.clone());
        let mut cluster = Cluster {
            replicas: BTreeMap::new(),
            network,
            rng,
            now: Instant::ZERO,
            checker: (config.invariants)(),
            trace: blake3::Hasher::new(),
            events: Vec::new(),
            pending_violation: None,
            config,
        };
        let voters: Vec<NodeId> = (1..=cluster.config.voters).map(NodeId).collect();
        for i in 1..=cluster.config.voters + cluster.config.spares {
            let id = NodeId(i);
            let node_config = cluster.node_config(id);
            let history = cluster.config.durable_history.then(SimHistory::default);
            let machine = S::boot(history.as_ref());
            let node = if i <= cluster.config.voters {
                Node::bootstrap(node_config, &voters, machine, Instant::ZERO)
            } else {
                Node::join(node_config, machine, Instant::ZERO)
            }
            .map_err(|e| cluster.violation("start", format!("node {id}: {e}")))?;
            let disk = SimDisk::new(cluster.config.disk.clone());
            let host = cluster.host_of(node, 1);
            let replica = Replica { host: Some(host), disk, history, incarnation: 1 };
            cluster.replicas.insert(id, replica);
            cluster.drain(id)?;
        }
        Ok(cluster)
    }

    fn node_config(&mut self, id: NodeId) -> Config {
        let mut c = Config::new(id, self.rng.next_u64());
        c.tick_interval = self.config.tick_interval;
        c.snapshot_threshold_entries = self.config.snapshot_threshold_entries;
        #[cfg(feature = "bug-switches")]
        {
            c.bugs = self.config.bugs;
        }
        c
    }

    /// Starts incarnation `incarnation` of a replica around `node`.
    fn host_of(&self, node: Node<S>, incarnation: u64) -> S::Host {
        let replicas: Vec<NodeId> = self.config_ids();
        let context = HostContext {
            incarnation,
            replicas: &replicas,
            #[cfg(feature = "bug-switches")]
            bugs: self.config.bugs,
        };
        S::Host::start(node, self.now, context)
    }

    /// Every replica the harness runs, started or not.
    fn config_ids(&self) -> Vec<NodeId> {
        (1..=self.config.voters + self.config.spares).map(NodeId).collect()
    }

    fn violation(&self, invariant: &'static str, detail: String) -> Violation {
        Violation { invariant, detail, at: self.now }
    }

    /// Current simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Every replica id, live or not.
    pub fn ids(&self) -> Vec<NodeId> {
        self.replicas.keys().copied().collect()
    }

    /// The live replica `id`.
    pub fn node(&self, id: NodeId) -> Option<&Node<S>> {
        self.host(id).map(|h| h.node())
    }

    /// The live replica `id`'s host.
    pub fn host(&self, id: NodeId) -> Option<&S::Host> {
        self.replicas.get(&id).and_then(|r| r.host.as_ref())
    }

    /// Lets `f` act on the live replica `id` at the current time, then
    /// carries out what it said; None if `id` is down.
    pub fn with_host<R>(
        &mut self,
        id: NodeId,
        f: impl FnOnce(&mut S::Host, Instant) -> R,
    ) -> Option<R> {
        let now = self.now;
        let result = f(self.live_mut(id)?, now);
        self.drain_or_record(id);
        Some(result)
    }

    /// Reports the converged chat state to the invariants.
    pub fn settle(
        &mut self,
        stored: &[StoredMessage],
        clients: &[ClientSends],
    ) -> Result<(), Violation> {
        self.checker.set_now(self.now);
        self.checker.on_settled(stored, clients)
    }

    /// The incarnation of replica `id`.
    pub fn incarnation(&self, id: NodeId) -> u64 {
        self.replicas.get(&id).map_or(0, |r| r.incarnation)
    }

    /// The live replica that leads the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.replicas
            .values()
            .filter_map(|r| r.host.as_ref().map(|h| h.node()))
            .filter(|n| n.status().role == Role::Leader)
            .max_by_key(|n| n.status().term)
            .map(|n| n.id())
    }

    /// The cluster's random generator (for workloads and fault schedules).
    pub fn rng(&mut self) -> &mut SeededRng {
        &mut self.rng
    }

    /// A digest of every event so far: equal for equal seeds.
    pub fn trace_digest(&self) -> blake3::Hash {
        self.trace.finalize()
    }

    /// Takes the outputs that tests and workloads consume.
    pub fn take_events(&mut self) -> Vec<Event<S>> {
        std::mem::take(&mut self.events)
    }

    /// Proposes a membership change at replica `id`.
    pub fn change_membership(
        &mut self,
        id: NodeId,
        change: &MembershipChange,
    ) -> Result<ProposalId, SubmitError> {
        let now = self.now;
        let host = self.live_mut(id).ok_or(SubmitError::Halted)?;
        let result = host.change_membership(now, change);
        self.drain_or_record(id);
        result
    }

    /// Hands `bytes` to replica `to` as if peer `from` had sent them (for
    /// fuzzing with forged and malformed frames).
    pub fn inject_frame(&mut self, from: NodeId, to: NodeId, bytes: bytes::Bytes) {
        let now = self.now;
        if let Some(host) = self.live_mut(to) {
            host.receive(now, Packet { from, to, channel: Channel::Raft, bytes });
            self.drain_or_record(to);
        }
    }

    /// Asks replica `id` (a leader) to hand leadership to `to`.
    pub fn transfer_leadership(&mut self, id: NodeId, to: NodeId) {
        let now = self.now;
        if let Some(host) = self.live_mut(id) {
            host.transfer_leadership(now, to);
            self.drain_or_record(id);
        }
    }

    fn live_mut(&mut self, id: NodeId) -> Option<&mut S::Host> {
        self.replicas.get_mut(&id).and_then(|r| r.host.as_mut())
    }

    fn drain_or_record(&mut self, id: NodeId) {
        if let Err(v) = self.drain(id) {
            self.pending_violation.get_or_insert(v);
        }
    }
}

/// Requests straight to a bare node (the chat workload goes through the
/// replica service instead).
impl<S: SimMachine<Host = Node<S>>> Cluster<S> {
    /// Submits `command` at replica `id`.
    pub fn submit(&mut self, id: NodeId, command: &S::Command) -> Result<ProposalId, SubmitError> {
        let now = self.now;
        let node = self.live_mut(id).ok_or(SubmitError::Halted)?;
        let result = node.submit(now, command);
        self.drain_or_record(id);
        result
    }

    /// Starts a linearizable read at replica `id`.
    pub fn read(&mut self, id: NodeId, query: S::Query) -> Result<ReadId, ReadError> {
        let now = self.now;
        let node = self.live_mut(id).ok_or(ReadError::Halted)?;
        let result = node.read(now, query);
        self.drain_or_record(id);
        result
    }
}
