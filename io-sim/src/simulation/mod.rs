//! One seeded simulation: replicas and chat clients as madsim processes,
//! faults drawn from the seed (loss, latency, one-way and two-way
//! partitions, isolation, kill -9 with short and long outages, pause), then
//! a liveness phase that heals everything and requires convergence, then
//! the final checks.

mod checks;
mod draw;
mod faults;
mod rebuild;
mod scenario;

use crate::client::{client_secret, run_client, ClientCtx, ClientHistory, Histories};
use crate::file_client::{run_file_client, FileRole};
use crate::history::{EventType, HistoryEvent};
use crate::operator::run_operator;
use crate::world::{client_ip, operator_ip, replica_id, World};
use checks::liveness;
use draw::Draw;
use faults::{inject, Outages};
use kith_core::ids::NodeId;
use kith_core::im::identity::Identity;
use kith_core::rng::SeededRng;
use kith_core::testing::disk::DiskConfig;
use kith_core::testing::invariant::Invariants;
use kith_core::testing::violation::Violation;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle, Runtime};
use rebuild::Rebuilds;
pub use scenario::Scenario;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What one simulation runs.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed; every fault parameter is drawn from it.
    pub seed: u64,
    /// Voting replicas.
    pub voters: u64,
    /// Chat clients.
    pub clients: usize,
    /// Length of the fault phase.
    pub fault_phase: Duration,
    /// Keep a readable line per event.
    pub keep_trace: bool,
    /// Inject faults (off: a calm run, for baselines and debugging).
    pub faults: bool,
    /// Collect the client history as Jepsen list-append JSON lines.
    pub keep_history: bool,
    /// A named, scripted schedule instead of random faults.
    pub scenario: Option<Scenario>,
    /// Each client's pause between operations (ms range); sets the load.
    pub client_pause_ms: (u64, u64),
    /// Keep history on a durable store (as the real node does) or in memory;
    /// `None` draws it per seed.
    pub durable_history: Option<bool>,
    /// Builds the invariant checkers every replica step is fed to
    /// (`kith_sim_tests::invariants::all`).
    pub invariants: fn() -> Invariants,
    /// Test-only rule breakers.
    #[cfg(feature = "bug-switches")]
    pub bugs: kith_core::bugs::BugSwitches,
}

/// Chat clients of a default run.
pub const CLIENTS: usize = 4;
/// Each client's pause between operations in a default run (ms range).
pub const CLIENT_PAUSE_MS: (u64, u64) = (1, 30);

impl SimConfig {
    /// Defaults: 3 voters, 4 clients, 10 simulated seconds of faults,
    /// checked by `invariants`.
    pub fn new(seed: u64, invariants: fn() -> Invariants) -> SimConfig {
        SimConfig {
            seed,
            voters: 3,
            clients: CLIENTS,
            fault_phase: Duration::from_secs(10),
            keep_trace: false,
            faults: true,
            keep_history: false,
            scenario: None,
            client_pause_ms: CLIENT_PAUSE_MS,
            durable_history: None,
            invariants,
            #[cfg(feature = "bug-switches")]
            bugs: kith_core::bugs::BugSwitches::default(),
        }
    }
}

/// What a simulation did.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    /// The fault parameters drawn from the seed.
    pub parameters: String,
    /// Digest of every replica event.
    pub trace_digest: [u8; 32],
    /// The full trace, if kept.
    pub trace: Vec<String>,
    /// Simulated time covered.
    pub simulated: Duration,
    /// Messages acknowledged to clients.
    pub acked: u64,
    /// Commands with a definite result.
    pub completed: u64,
    /// Linearizable reads checked.
    pub reads: u64,
    /// Replica crashes injected.
    pub crashes: u64,
    /// The first violation, if any.
    pub violation: Option<Violation>,
    /// The client history (Jepsen list-append JSONL), if kept.
    pub history: Vec<String>,
    /// Snapshots installed from a leader, over all replicas at the end.
    pub snapshots_installed: u64,
    /// The leader's voters at the end.
    pub final_voters: Vec<NodeId>,
    /// Writes refused by full disks, over all replicas.
    pub writes_refused: u64,
    /// Restarts that could not read their disk, over all replicas.
    pub reads_failed: u64,
    /// Bits rotted at rest on stopped replicas' disks.
    pub corruptions: u64,
    /// Replicas found beyond repair and replaced by new, empty members.
    pub replaced: u64,
    /// Client commands replicas forwarded to their leader.
    pub forwards: u64,
    /// Changes to entries (edits, reactions, deletions) live subscribers received.
    pub updates_delivered: u64,
    /// Membership changes made by the operator's admin requests.
    pub admin_changes: u64,
    /// Gossip messages (presence, typing) replicas published.
    pub gossip: u64,
    /// Room entries live subscribers received.
    pub delivered: u64,
    /// Swizzle-clogs carried out.
    pub swizzles: u64,
    /// What the file workload did, when the seed drew it.
    pub files: Option<crate::file_client::FileCounts>,
    /// How long the live subscribers took to catch up once the healed
    /// cluster converged (None: they did not, and were checked as they were).
    pub followers_caught_up_after: Option<Duration>,
}

/// Runs one simulation to its end. A panic anywhere in the simulation
/// (raft-rs's own assertions included) is reported as a violation.
pub fn run(config: &SimConfig) -> SimReport {
    let config = config.clone();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let runtime = Runtime::with_seed_and_config(config.seed, madsim::Config::default());
        let config = config.clone();
        runtime.block_on(async move { simulate(config).await })
    }));
    caught.unwrap_or_else(|panic| SimReport {
        violation: Some(Violation::from_panic(panic.as_ref())),
        ..SimReport::default()
    })
}

async fn simulate(config: SimConfig) -> SimReport {
    let mut rng = SeededRng::new(config.seed ^ 0xfa17_5eed);
    let drawn = Draw::new(&config, &mut rng);
    let mut report = SimReport { parameters: drawn.describe(&config), ..SimReport::default() };
    let net = NetSim::current();
    drawn.configure(&net);
    let handle = Handle::current();
    let epoch = madsim::time::Instant::now();
    let (world, spares) = build_world(&config, &drawn, epoch);
    let mut nodes: BTreeMap<NodeId, NodeHandle> = (1..=config.voters + spares)
        .map(|slot| replica_id(slot as u8))
        .map(|id| (id, rebuild::spawn_replica(&handle, &world, id, epoch)))
        .collect();
    let operator = world.clone();
    let operator = handle
        .create_node()
        .name("operator")
        .ip(operator_ip())
        .init(move || run_operator(operator.clone()))
        .build();
    let active = Arc::new(AtomicBool::new(true));
    let (mut histories, mut clients) = spawn_clients(&config, &world, &handle, epoch, &active);
    if drawn.files.is_some() {
        clients.extend(spawn_file_clients(
            &config,
            &world,
            &handle,
            epoch,
            &active,
            &mut histories,
        ));
    }
    let end = epoch + config.fault_phase;
    let mut rebuilds = Rebuilds::default();
    let (crashes, down) = match config.scenario {
        Some(scenario) => {
            scenario::run_script(scenario, &world, &handle, &net, &nodes, epoch, end).await
        }
        None if config.faults => {
            let mut cluster =
                Controlled { nodes: &mut nodes, rebuilds: &mut rebuilds, epoch, swizzles: 0 };
            let outcome =
                random_faults(&world, &handle, &net, &mut cluster, &mut rng, &drawn, end).await;
            report.swizzles = cluster.swizzles;
            outcome
        }
        None => {
            madsim::time::sleep_until(end).await;
            (0, Vec::new())
        }
    };
    report.crashes = crashes;
    let mut cluster = Controlled { nodes: &mut nodes, rebuilds: &mut rebuilds, epoch, swizzles: 0 };
    liveness(&world, &handle, &net, &mut cluster, &down, &active, &histories, &mut report).await;
    if config.keep_history && report.violation.is_none() {
        final_reads(&config, &world, &handle, epoch, &active, &mut histories).await;
    }
    report.replaced = rebuilds.completed;
    {
        let w = world.lock();
        (report.forwards, report.gossip, report.delivered) = (w.forwards, w.gossip, w.delivered);
        report.admin_changes = w.admin_changes;
        report.updates_delivered = w.updates_delivered;
        report.files = drawn.files.is_some().then(|| w.files.counts());
    }
    finish(&mut report, &world, &histories, &config, epoch);
    // madsim drops a runtime without dropping its tasks, and each task
    // holds the world: stop every process and let the executor drop them,
    // or a sweep keeps every seed's world (about 20 MB a seed at 60 s, so
    // 1,000 seeds ran out of memory).
    for process in nodes.values().chain(&clients).chain([&operator]) {
        handle.kill(process.id());
    }
    madsim::time::sleep(Duration::from_millis(1)).await;
    report
}

/// The world a run starts from: `config.voters` replicas and the spares
/// the run needs, with their disks and stores as drawn.
fn build_world(config: &SimConfig, drawn: &Draw, epoch: madsim::time::Instant) -> (World, u64) {
    let spares = config.scenario.map_or(u64::from(drawn.membership), Scenario::spares);
    let mut disk = DiskConfig::default();
    if config.scenario.is_some_and(Scenario::always_tear) {
        disk.tear_on_crash = 1.0;
    }
    let world = World::new(config.seed, config.voters, spares, disk, (config.invariants)());
    {
        let mut w = world.lock();
        if drawn.durable_history {
            for slot in w.replicas.values_mut() {
                slot.history = Some(kith_core::testing::sim_history::SimHistory::default());
            }
        }
        w.keep_trace = config.keep_trace;
        w.epoch = Some(epoch);
        w.duplicate = drawn.duplicate;
        w.snapshot_threshold_entries = drawn.snapshot_threshold_entries;
        if let Some((corrupt, _)) = &drawn.files {
            w.files.corrupt = *corrupt;
        }
        #[cfg(feature = "bug-switches")]
        {
            w.bugs = config.bugs;
        }
    }
    (world, spares)
}

/// Starts `config.clients` chat clients, each a madsim node of its own.
fn spawn_clients(
    config: &SimConfig,
    world: &World,
    handle: &Handle,
    epoch: madsim::time::Instant,
    active: &Arc<AtomicBool>,
) -> (Histories, Vec<NodeHandle>) {
    let mut histories = BTreeMap::new();
    let processes = (0..config.clients)
        .map(|i| {
            let ctx = client_ctx(config, world, epoch, active, &mut histories, i);
            let node = handle.create_node().name(format!("client-{i}")).ip(client_ip(i));
            node.init(move || run_client(ctx.clone())).build()
        })
        .collect();
    (histories, processes)
}

/// Starts the file workload's three clients (`file_client`): indexes
/// after the chat clients and the final reader's.
fn spawn_file_clients(
    config: &SimConfig,
    world: &World,
    handle: &Handle,
    epoch: madsim::time::Instant,
    active: &Arc<AtomicBool>,
    histories: &mut Histories,
) -> Vec<NodeHandle> {
    let roles = [FileRole::Owner, FileRole::Member, FileRole::Outsider];
    roles
        .into_iter()
        .enumerate()
        .map(|(k, role)| {
            let i = config.clients + 1 + k;
            let ctx = client_ctx(config, world, epoch, active, histories, i);
            let node = handle.create_node().name(format!("filer-{k}")).ip(client_ip(i));
            node.init(move || run_file_client(ctx.clone(), role)).build()
        })
        .collect()
}

/// Client `i`'s handles, its history recorded in `histories`.
fn client_ctx(
    config: &SimConfig,
    world: &World,
    epoch: madsim::time::Instant,
    active: &Arc<AtomicBool>,
    histories: &mut Histories,
    i: usize,
) -> ClientCtx {
    let history = Arc::new(Mutex::new(ClientHistory::default()));
    histories.insert(i, history.clone());
    ClientCtx {
        world: world.clone(),
        index: i,
        identity: Identity::from_secret(client_secret(config.seed, i)),
        history,
        active: active.clone(),
        seed: config.seed ^ ((i as u64 + 1) * 0x9e37_79b9),
        clients: config.clients,
        epoch,
        pause_ms: config.client_pause_ms,
    }
}

/// Jepsen's final reads, once the cluster has converged: a reader process
/// (one more client) reads every room through each running replica, so the
/// exported history verifies every acknowledged append on its own.
async fn final_reads(
    config: &SimConfig,
    world: &World,
    handle: &Handle,
    epoch: madsim::time::Instant,
    active: &Arc<AtomicBool>,
    histories: &mut Histories,
) {
    let index = config.clients;
    let (replicas, generations) = {
        let w = world.lock();
        let running = w.replicas.iter().filter(|(_, s)| s.service.is_some() && !s.retired);
        (running.map(|(id, _)| *id).collect::<Vec<_>>(), w.lobby.current())
    };
    // One more process, reading as client 0 (a member of every lobby).
    let ctx = ClientCtx {
        identity: Identity::from_secret(client_secret(config.seed, 0)),
        seed: config.seed ^ 0xf1a1_4ead,
        ..client_ctx(config, world, epoch, active, histories, index)
    };
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    let reader = handle
        .create_node()
        .name("final-reader")
        .ip(client_ip(index))
        .init(move || {
            crate::client::run_final_reads(ctx.clone(), replicas.clone(), generations, done.clone())
        })
        .build();
    let deadline = madsim::time::Instant::now() + Duration::from_secs(120);
    while !finished.load(Ordering::Relaxed) && madsim::time::Instant::now() < deadline {
        madsim::time::sleep(Duration::from_millis(100)).await;
    }
    handle.kill(reader.id());
}

/// Fills in what the run left: the trace, the disks' and replicas'
/// counters, the final configuration and the client histories.
fn finish(
    report: &mut SimReport,
    world: &World,
    histories: &Histories,
    config: &SimConfig,
    epoch: madsim::time::Instant,
) {
    let mut w = world.lock();
    report.trace_digest = *w.trace.finalize().as_bytes();
    report.trace = std::mem::take(&mut w.trace_lines);
    report.simulated = epoch.elapsed();
    if report.violation.is_none() {
        report.violation = w.violation.clone();
    }
    for slot in w.replicas.values() {
        report.writes_refused += slot.disk.refused;
        report.reads_failed += slot.disk.failed_reads;
        report.corruptions += slot.disk.corruptions;
        if let Some(node) = &slot.service {
            report.snapshots_installed +=
                node.lock().expect("single-threaded").node().metrics().snapshots_installed;
        }
    }
    drop(w);
    if let Some(id) = faults::leader(world) {
        let node = world.lock().replicas[&id].service.clone();
        if let Some(node) = node {
            report.final_voters =
                node.lock().expect("single-threaded").node().status().membership.voters;
        }
    }
    let mut events = Vec::new();
    for (i, h) in histories {
        let mut h = h.lock().expect("single-threaded");
        report.acked += h.acked.len() as u64;
        report.completed += h.completed;
        report.reads += h.reads;
        events.append(&mut h.events);
        if let Some(mops) = h.open.take() {
            let time_nanos = epoch.elapsed().as_nanos() as u64;
            events.push(HistoryEvent { process: *i, kind: EventType::Info, time_nanos, mops });
        }
    }
    if config.keep_history {
        events.sort_by_key(|e| e.time_nanos);
        report.history = events.iter().enumerate().map(|(i, e)| e.to_json(i)).collect();
    }
}

/// Random faults drawn from the seed until `end`; returns the crashes and
/// the replicas still down.
async fn random_faults(
    world: &World,
    handle: &Handle,
    net: &NetSim,
    cluster: &mut Controlled<'_>,
    rng: &mut SeededRng,
    faults: &Draw,
    end: madsim::time::Instant,
) -> (u64, Vec<(NodeId, madsim::time::Instant)>) {
    let mut outages = Outages::default();
    let mut crashes = 0;
    let mut disk_faults = faults.disk_faults.clone();
    let mut blob_faults = faults.files.as_ref().map(|(_, stream)| stream.clone());
    let mut swizzle = faults.swizzle.clone();
    while madsim::time::Instant::now() < end && world.lock().violation.is_none() {
        let gap = rng.range(faults.mean_gap_ms / 2, faults.mean_gap_ms * 3 / 2);
        madsim::time::sleep(Duration::from_millis(gap)).await;
        cluster.rebuilds.drive(world, handle, cluster.nodes, cluster.epoch);
        let nodes = &*cluster.nodes;
        outages.expire(world, handle, net, nodes);
        if let Some(stream) = disk_faults.as_mut() {
            // A bit rots on a stopped replica's disk, found when it starts.
            if !outages.down.is_empty() && stream.chance(0.3) {
                let (id, _) = outages.down[stream.range(0, outages.down.len() as u64) as usize];
                cluster.rebuilds.rot(world, id, stream);
            }
            let ids: Vec<NodeId> = nodes.keys().copied().collect();
            if stream.chance(0.15) {
                let id = ids[stream.range(0, ids.len() as u64) as usize];
                let outage = Duration::from_millis(stream.range(50, 1500));
                faults::fill_disk(world, &mut outages, id, madsim::time::Instant::now() + outage);
            }
            if stream.chance(0.1) {
                // Its next restarts fail to read the disk.
                let id = ids[stream.range(0, ids.len() as u64) as usize];
                let errors = stream.range(1, 4) as u32;
                world.lock().replicas.get_mut(&id).expect("exists").disk.read_errors += errors;
            }
        }
        if let Some(stream) = blob_faults.as_mut() {
            if stream.chance(0.3) {
                faults::rot_blob(world, stream);
            }
        }
        if let Some(stream) = swizzle.as_mut() {
            let room = madsim::time::Instant::now() + faults::SWIZZLE_MAX < end;
            if stream.chance(0.2) && room {
                cluster.swizzles += 1;
                faults::swizzle_clog(net, nodes, stream).await;
            }
        }
        // An operator does not reshape the cluster while replacing a machine.
        let membership =
            (faults.membership && !cluster.rebuilds.busy()).then_some(world.lock().voters.len());
        crashes += inject(
            world,
            handle,
            net,
            nodes,
            rng,
            &mut outages.down,
            &mut outages.clogs,
            membership,
        );
    }
    (crashes, outages.end(world, handle, net, cluster.nodes))
}

/// The replica processes the controller drives, and the replacement of
/// those whose disks are beyond repair.
struct Controlled<'a> {
    nodes: &'a mut BTreeMap<NodeId, NodeHandle>,
    rebuilds: &'a mut Rebuilds,
    epoch: madsim::time::Instant,
    /// Swizzle-clogs carried out.
    swizzles: u64,
}
