//! One seeded simulation: replicas and chat clients as madsim processes,
//! faults drawn from the seed (loss, latency, one-way and two-way
//! partitions, isolation, kill -9 with short and long outages, pause), then
//! a liveness phase that heals everything and requires convergence, then
//! the final checks.

use crate::client::{client_secret, run_client, ClientCtx, ClientHistory};
use crate::history::{EventType, HistoryEvent};
use crate::replica::run_replica;
use crate::world::{client_ip, replica_ip, World};
use kith_core::ids::NodeId;
use kith_core::im::identity::Identity;
use kith_core::im::protocol::{EntryKind, RoomId};
use kith_core::node::Role;
use kith_core::rng::SeededRng;
use kith_core::testing::checker::Violation;
use kith_core::testing::disk::DiskConfig;
use kith_core::time::Instant;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle, Runtime};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

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
}

impl SimConfig {
    /// Defaults: 3 voters, 4 clients, 10 simulated seconds of faults.
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            voters: 3,
            clients: 4,
            fault_phase: Duration::from_secs(10),
            keep_trace: false,
            faults: true,
            keep_history: false,
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
}

struct Faults {
    loss: f64,
    latency_ms: (u64, u64),
    mean_gap_ms: u64,
}

/// Runs one simulation to its end.
pub fn run(config: &SimConfig) -> SimReport {
    let runtime = Runtime::with_seed_and_config(config.seed, madsim::Config::default());
    let config = config.clone();
    runtime.block_on(async move { simulate(config).await })
}

async fn simulate(config: SimConfig) -> SimReport {
    let mut rng = SeededRng::new(config.seed ^ 0xfa17_5eed);
    let faults = Faults {
        loss: if config.faults { rng.range(0, 20) as f64 / 100.0 } else { 0.0 },
        latency_ms: {
            let lo = rng.range(1, 5);
            (lo, lo + rng.range(1, 40))
        },
        mean_gap_ms: rng.range(300, 1000),
    };
    let mut report = SimReport {
        parameters: format!(
            "voters={} clients={} loss={:.2} latency={}..{}ms fault_gap~{}ms fault_phase={}s",
            config.voters,
            config.clients,
            faults.loss,
            faults.latency_ms.0,
            faults.latency_ms.1,
            faults.mean_gap_ms,
            config.fault_phase.as_secs()
        ),
        ..SimReport::default()
    };
    let net = NetSim::current();
    net.update_config(|c| {
        c.packet_loss_rate = faults.loss;
        c.send_latency =
            Duration::from_millis(faults.latency_ms.0)..Duration::from_millis(faults.latency_ms.1);
    });
    let handle = Handle::current();
    let epoch = madsim::time::Instant::now();
    let world = World::new(config.seed, config.voters, 0, DiskConfig::default());
    world.lock().keep_trace = config.keep_trace;
    let ids: Vec<NodeId> = (1..=config.voters).map(NodeId).collect();
    let mut nodes: BTreeMap<NodeId, NodeHandle> = BTreeMap::new();
    for &id in &ids {
        let w = world.clone();
        let node = handle
            .create_node()
            .name(format!("replica-{id}"))
            .ip(replica_ip(id))
            .init(move || run_replica(w.clone(), id, epoch))
            .build();
        nodes.insert(id, node);
    }
    let active = Arc::new(AtomicBool::new(true));
    let mut histories: BTreeMap<usize, Arc<Mutex<ClientHistory>>> = BTreeMap::new();
    for i in 0..config.clients {
        let history = Arc::new(Mutex::new(ClientHistory::default()));
        histories.insert(i, history.clone());
        let ctx = ClientCtx {
            world: world.clone(),
            index: i,
            identity: Identity::from_secret(client_secret(config.seed, i)),
            replicas: ids.clone(),
            history,
            active: active.clone(),
            seed: config.seed ^ ((i as u64 + 1) * 0x9e37_79b9),
            clients: config.clients,
            epoch,
        };
        handle
            .create_node()
            .name(format!("client-{i}"))
            .ip(client_ip(i))
            .init(move || run_client(ctx.clone()))
            .build();
    }
    let mut down: Vec<(NodeId, madsim::time::Instant)> = Vec::new();
    let mut clogs: Vec<(Clog, madsim::time::Instant)> = Vec::new();
    let end = epoch + config.fault_phase;
    while madsim::time::Instant::now() < end && world.lock().violation.is_none() {
        madsim::time::sleep(Duration::from_millis(
            rng.range(faults.mean_gap_ms / 2, faults.mean_gap_ms * 3 / 2),
        ))
        .await;
        let now = madsim::time::Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = down.into_iter().partition(|(_, at)| *at <= now);
        down = waiting;
        for (id, _) in due {
            handle.restart(nodes[&id].id());
        }
        let (lifted, holding): (Vec<_>, Vec<_>) = clogs.into_iter().partition(|(_, at)| *at <= now);
        clogs = holding;
        for (clog, _) in lifted {
            clog.lift(&net, &nodes);
        }
        if config.faults {
            report.crashes +=
                inject(&world, &handle, &net, &nodes, &mut rng, &mut down, &mut clogs);
        }
    }
    liveness(&world, &handle, &net, &nodes, &down, &active, &histories, &mut report, epoch).await;
    let mut w = world.lock();
    report.trace_digest = *w.trace.finalize().as_bytes();
    report.trace = std::mem::take(&mut w.trace_lines);
    report.simulated = epoch.elapsed();
    if report.violation.is_none() {
        report.violation = w.violation.clone();
    }
    drop(w);
    let mut events = Vec::new();
    for (i, h) in &histories {
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
    report
}

fn kill(world: &World, handle: &Handle, nodes: &BTreeMap<NodeId, NodeHandle>, id: NodeId) {
    handle.kill(nodes[&id].id());
    let mut w = world.lock();
    let w = &mut *w;
    let slot = w.replicas.get_mut(&id).expect("exists");
    slot.node = None;
    slot.disk.crash(&mut w.rng);
}

fn leader(world: &World) -> Option<NodeId> {
    let w = world.lock();
    w.replicas
        .iter()
        .filter_map(|(id, s)| {
            s.node.as_ref().map(|n| (*id, n.lock().expect("single-threaded").status()))
        })
        .filter(|(_, s)| s.role == Role::Leader)
        .max_by_key(|(_, s)| s.term)
        .map(|(id, _)| id)
}

/// A network cut that lifts by itself after a while.
#[derive(Clone, Copy, Debug)]
enum Clog {
    Node(NodeId),
    Link(NodeId, NodeId),
}

impl Clog {
    fn apply(self, net: &NetSim, nodes: &BTreeMap<NodeId, NodeHandle>) {
        match self {
            Clog::Node(n) => net.clog_node(nodes[&n].id()),
            Clog::Link(a, b) => net.clog_link(nodes[&a].id(), nodes[&b].id()),
        }
    }

    fn lift(self, net: &NetSim, nodes: &BTreeMap<NodeId, NodeHandle>) {
        match self {
            Clog::Node(n) => net.unclog_node(nodes[&n].id()),
            Clog::Link(a, b) => net.unclog_link(nodes[&a].id(), nodes[&b].id()),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn inject(
    world: &World,
    handle: &Handle,
    net: &NetSim,
    nodes: &BTreeMap<NodeId, NodeHandle>,
    rng: &mut SeededRng,
    down: &mut Vec<(NodeId, madsim::time::Instant)>,
    clogs: &mut Vec<(Clog, madsim::time::Instant)>,
) -> u64 {
    let ids: Vec<NodeId> = nodes.keys().copied().collect();
    let pick = |rng: &mut SeededRng| ids[rng.range(0, ids.len() as u64) as usize];
    let now = madsim::time::Instant::now();
    match rng.range(0, 10) {
        0..=2 => {
            let id = leader(world).filter(|_| rng.chance(0.5)).unwrap_or_else(|| pick(rng));
            if down.iter().all(|(d, _)| *d != id) {
                kill(world, handle, nodes, id);
                // Instant restarts (a crash inside an election), ordinary
                // outages, and long ones that force snapshot catch-up.
                let outage = match rng.range(0, 10) {
                    0..=2 => rng.range(1, 50),
                    3..=8 => rng.range(50, 800),
                    _ => rng.range(2000, 4000),
                };
                down.push((id, now + Duration::from_millis(outage)));
                return 1;
            }
        }
        3..=6 => {
            let cuts = match rng.range(0, 3) {
                // Isolate one replica.
                0 => vec![Clog::Node(pick(rng))],
                // A one-way cut.
                1 => {
                    let (a, b) = (pick(rng), pick(rng));
                    if a == b {
                        vec![]
                    } else {
                        vec![Clog::Link(a, b)]
                    }
                }
                // A random two-way partition.
                _ => {
                    let side: BTreeMap<NodeId, bool> =
                        ids.iter().map(|id| (*id, rng.chance(0.5))).collect();
                    ids.iter()
                        .flat_map(|a| ids.iter().map(move |b| (*a, *b)))
                        .filter(|(a, b)| side[a] != side[b])
                        .map(|(a, b)| Clog::Link(a, b))
                        .collect()
                }
            };
            let lifts_at = now + Duration::from_millis(rng.range(100, 1200));
            for cut in cuts {
                cut.apply(net, nodes);
                clogs.push((cut, lifts_at));
            }
        }
        _ => {}
    }
    0
}

fn heal(net: &NetSim, nodes: &BTreeMap<NodeId, NodeHandle>) {
    for a in nodes.values() {
        net.unclog_node(a.id());
        for b in nodes.values() {
            net.unclog_link(a.id(), b.id());
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn liveness(
    world: &World,
    handle: &Handle,
    net: &NetSim,
    nodes: &BTreeMap<NodeId, NodeHandle>,
    down: &[(NodeId, madsim::time::Instant)],
    active: &AtomicBool,
    histories: &BTreeMap<usize, Arc<Mutex<ClientHistory>>>,
    report: &mut SimReport,
    epoch: madsim::time::Instant,
) {
    heal(net, nodes);
    net.update_config(|c| c.packet_loss_rate = 0.0);
    for (id, _) in down {
        handle.restart(nodes[id].id());
    }
    active.store(false, Ordering::Relaxed);
    let deadline = madsim::time::Instant::now() + Duration::from_secs(30);
    while madsim::time::Instant::now() < deadline {
        madsim::time::sleep(Duration::from_millis(50)).await;
        if world.lock().violation.is_some() {
            return;
        }
        let idle = histories.values().all(|h| h.lock().expect("single-threaded").idle);
        if idle && converged(world) {
            report.violation = check_final(world, histories).err();
            return;
        }
    }
    let at = Instant::from_micros(epoch.elapsed().as_micros() as u64);
    report.violation = Some(Violation {
        invariant: "liveness",
        detail: format!("no convergence 30 s after healing (leader {:?})", leader(world)),
        at,
    });
}

fn converged(world: &World) -> bool {
    let Some(leader) = leader(world) else { return false };
    let w = world.lock();
    let views: Vec<_> = w
        .replicas
        .values()
        .filter_map(|s| s.node.as_ref())
        .map(|n| {
            let n = n.lock().expect("single-threaded");
            (n.status(), n.digest())
        })
        .collect();
    let Some((lead, lead_digest)) = views.iter().find(|(s, _)| s.id == leader) else {
        return false;
    };
    views.len() == w.replicas.len()
        && views
            .iter()
            .all(|(s, d)| s.applied == lead.commit && s.commit == lead.commit && d == lead_digest)
}

fn check_final(
    world: &World,
    histories: &BTreeMap<usize, Arc<Mutex<ClientHistory>>>,
) -> Result<(), Violation> {
    let leader = leader(world).expect("converged");
    let w = world.lock();
    let node = w.replicas[&leader].node.as_ref().expect("live").lock().expect("single-threaded");
    let fail = |invariant, detail| Err(Violation { invariant, detail, at: Instant::ZERO });
    let mut submitted: BTreeMap<Uuid, usize> = BTreeMap::new();
    for (i, h) in histories {
        for id in &h.lock().expect("single-threaded").submitted {
            submitted.insert(*id, *i);
        }
    }
    let mut found: BTreeMap<Uuid, (RoomId, u64)> = BTreeMap::new();
    for (room, entry) in node.state_machine().all_entries() {
        let EntryKind::Message(m) = &entry.kind else { continue };
        if !submitted.contains_key(&m.msg_id) {
            return fail("no phantom message", format!("{room} seq {} was never sent", entry.seq));
        }
        if found.insert(m.msg_id, (room.clone(), entry.seq)).is_some() {
            return fail("no duplicate", format!("message {} stored twice", m.msg_id));
        }
    }
    for (i, h) in histories {
        let h = h.lock().expect("single-threaded");
        let mut last: BTreeMap<&RoomId, u64> = BTreeMap::new();
        for (id, room, seq) in &h.acked {
            if found.get(id) != Some(&(room.clone(), *seq)) {
                return fail(
                    "no acknowledged message lost",
                    format!("client {i}: {id} acked at {room} seq {seq}"),
                );
            }
            if last.insert(room, *seq).is_some_and(|prev| prev >= *seq) {
                return fail(
                    "client order",
                    format!("client {i}: {room} seq {seq} after a later send"),
                );
            }
        }
    }
    Ok(())
}
