//! Faults the controller injects: crashes, network cuts that lift by
//! themselves, and healing.

use crate::operator::request_for;
use crate::world::World;
use kith_core::ids::NodeId;
use kith_core::raft::Role;
use kith_core::rng::SeededRng;
use kith_core::testing::scenario::churn_change;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use std::collections::BTreeMap;
use std::time::Duration;

pub(super) fn kill(
    world: &World,
    handle: &Handle,
    nodes: &BTreeMap<NodeId, NodeHandle>,
    id: NodeId,
) {
    handle.kill(nodes[&id].id());
    let mut w = world.lock();
    let w = &mut *w;
    let slot = w.replicas.get_mut(&id).expect("exists");
    slot.service = None;
    slot.disk.crash(&mut w.rng);
    slot.blobs.crash(&mut w.files.rng);
    if let Some(history) = &slot.history {
        history.crash();
    }
}

pub(super) fn leader(world: &World) -> Option<NodeId> {
    let w = world.lock();
    w.replicas
        .iter()
        .filter_map(|(id, s)| {
            s.service.as_ref().map(|n| (*id, n.lock().expect("single-threaded").node().status()))
        })
        .filter(|(_, s)| s.role == Role::Leader)
        .max_by_key(|(_, s)| s.term)
        .map(|(id, _)| id)
}

/// A network cut that lifts by itself after a while.
#[derive(Clone, Copy, Debug)]
pub(super) enum Clog {
    Node(NodeId),
    Link(NodeId, NodeId),
    /// The process is frozen (a long GC pause or a stopped VM): its timers
    /// stop, and its clock jumps when it resumes.
    Pause(NodeId),
}

impl Clog {
    pub(super) fn apply(self, net: &NetSim, nodes: &BTreeMap<NodeId, NodeHandle>) {
        match self {
            Clog::Node(n) => net.clog_node(nodes[&n].id()),
            Clog::Link(a, b) => net.clog_link(nodes[&a].id(), nodes[&b].id()),
            Clog::Pause(n) => Handle::current().pause(nodes[&n].id()),
        }
    }

    pub(super) fn lift(self, net: &NetSim, nodes: &BTreeMap<NodeId, NodeHandle>) {
        match self {
            Clog::Node(n) => net.unclog_node(nodes[&n].id()),
            Clog::Link(a, b) => net.unclog_link(nodes[&a].id(), nodes[&b].id()),
            Clog::Pause(n) => Handle::current().resume(nodes[&n].id()),
        }
    }
}

/// How long a killed replica stays down: an instant restart (a crash
/// inside an election), an ordinary outage, or a long one that forces
/// snapshot catch-up.
fn outage_ms(rng: &mut SeededRng) -> u64 {
    match rng.range(0, 10) {
        0..=2 => rng.range(1, 50),
        3..=8 => rng.range(50, 800),
        _ => rng.range(2000, 4000),
    }
}

/// A network cut among `ids`: one replica isolated, one link cut one way,
/// or a random two-way partition.
fn network_cut(ids: &[NodeId], rng: &mut SeededRng) -> Vec<Clog> {
    let pick = |rng: &mut SeededRng| ids[rng.range(0, ids.len() as u64) as usize];
    match rng.range(0, 3) {
        0 => vec![Clog::Node(pick(rng))],
        1 => {
            let (a, b) = (pick(rng), pick(rng));
            if a == b {
                vec![]
            } else {
                vec![Clog::Link(a, b)]
            }
        }
        _ => {
            let side: BTreeMap<NodeId, bool> =
                ids.iter().map(|id| (*id, rng.chance(0.5))).collect();
            ids.iter()
                .flat_map(|a| ids.iter().map(move |b| (*a, *b)))
                .filter(|(a, b)| side[a] != side[b])
                .map(|(a, b)| Clog::Link(a, b))
                .collect()
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn inject(
    world: &World,
    handle: &Handle,
    net: &NetSim,
    nodes: &BTreeMap<NodeId, NodeHandle>,
    rng: &mut SeededRng,
    down: &mut Vec<(NodeId, madsim::time::Instant)>,
    clogs: &mut Vec<(Clog, madsim::time::Instant)>,
    membership: Option<usize>,
) -> u64 {
    let ids: Vec<NodeId> = nodes.keys().copied().collect();
    let pick = |rng: &mut SeededRng| ids[rng.range(0, ids.len() as u64) as usize];
    let now = madsim::time::Instant::now();
    match rng.range(0, 10) {
        0..=2 => {
            let id = leader(world).filter(|_| rng.chance(0.5)).unwrap_or_else(|| pick(rng));
            let paused = clogs.iter().any(|(c, _)| matches!(c, Clog::Pause(p) if *p == id));
            if down.iter().all(|(d, _)| *d != id) && !paused {
                kill(world, handle, nodes, id);
                down.push((id, now + Duration::from_millis(outage_ms(rng))));
                return 1;
            }
        }
        3..=6 => {
            let cuts = network_cut(&ids, rng);
            let lifts_at = now + Duration::from_millis(rng.range(100, 1200));
            for cut in cuts {
                cut.apply(net, nodes);
                clogs.push((cut, lifts_at));
            }
        }
        7 => {
            let id = pick(rng);
            if down.iter().all(|(d, _)| *d != id)
                && clogs.iter().all(|(c, _)| !matches!(c, Clog::Pause(p) if *p == id))
            {
                let pause = Clog::Pause(id);
                pause.apply(net, nodes);
                clogs.push((pause, now + Duration::from_millis(rng.range(50, 1500))));
            }
        }
        8 => {
            // An operator moves leadership (e.g. before maintenance).
            if let Some(lead) = leader(world) {
                let to = pick(rng);
                let node = world.lock().replicas[&lead].service.clone();
                if let (Some(node), true) = (node, to != lead) {
                    node.lock().expect("single-threaded").transfer_leadership(to);
                }
            }
        }
        _ => {
            if let Some(initial_voters) = membership {
                change_membership(world, rng, initial_voters);
            }
        }
    }
    0
}

/// An operator's membership change (see `churn_change`), sent as an admin
/// request to a random replica: a follower forwards it to the leader.
fn change_membership(world: &World, rng: &mut SeededRng, initial_voters: usize) {
    let Some(lead) = leader(world) else { return };
    let w = world.lock();
    let (Some(node), Some(operator)) = (w.replicas[&lead].service.clone(), w.operator.clone())
    else {
        return;
    };
    let ids = w.serving();
    drop(w);
    let membership = node.lock().expect("single-threaded").node().membership().clone();
    let Some(change) = churn_change(&membership, &ids, initial_voters, rng) else { return };
    let Some(request) = request_for(&change) else { return };
    // Refused while another change is pending or leadership moved: an
    // operator would simply try again later, as the next draw does.
    let to = ids[rng.range(0, ids.len() as u64) as usize];
    operator.send(to, request);
}

/// The longest a swizzle-clog lasts.
pub(super) const SWIZZLE_MAX: Duration = Duration::from_millis(4000);

/// FoundationDB's swizzle-clog: clog a random subset of the replicas one by
/// one, hold, then unclog them in a different random order. Partitions
/// shift shape step by step, which finds bugs a clean cut does not.
pub(super) async fn swizzle_clog(
    net: &NetSim,
    nodes: &BTreeMap<NodeId, NodeHandle>,
    rng: &mut SeededRng,
) {
    let mut order: Vec<NodeId> = nodes.keys().copied().collect();
    shuffle(&mut order, rng);
    // At most five, so it ends within SWIZZLE_MAX (5 x 300 ms, twice, plus
    // a hold under 1 s).
    order.truncate((rng.range(1, order.len() as u64 + 1) as usize).min(5));
    let step = Duration::from_millis(rng.range(50, 300));
    for id in &order {
        net.clog_node(nodes[id].id());
        madsim::time::sleep(step).await;
    }
    madsim::time::sleep(Duration::from_millis(rng.range(100, 1000))).await;
    shuffle(&mut order, rng);
    for id in &order {
        net.unclog_node(nodes[id].id());
        madsim::time::sleep(step).await;
    }
}

fn shuffle(ids: &mut [NodeId], rng: &mut SeededRng) {
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.range(0, i as u64 + 1) as usize);
    }
}

pub(super) fn heal(net: &NetSim, nodes: &BTreeMap<NodeId, NodeHandle>) {
    for a in nodes.values() {
        net.unclog_node(a.id());
        for b in nodes.values() {
            net.unclog_link(a.id(), b.id());
        }
    }
}

/// Crashed replicas waiting to restart, cuts waiting to lift, and full
/// disks waiting for space.
#[derive(Debug, Default)]
pub(super) struct Outages {
    pub(super) down: Vec<(NodeId, madsim::time::Instant)>,
    pub(super) clogs: Vec<(Clog, madsim::time::Instant)>,
    pub(super) full_disks: Vec<(NodeId, madsim::time::Instant)>,
}

/// Fills replica `id`'s disk until `until`: its writes fail, and a node
/// must stop rather than acknowledge what it could not persist.
pub(super) fn fill_disk(
    world: &World,
    outages: &mut Outages,
    id: NodeId,
    until: madsim::time::Instant,
) {
    if outages.full_disks.iter().any(|(d, _)| *d == id) {
        return;
    }
    let mut w = world.lock();
    let slot = w.replicas.get_mut(&id).expect("exists");
    slot.disk.full = true;
    slot.blobs.full = true;
    drop(w);
    outages.full_disks.push((id, until));
}

/// Space is back: an operator restarts the replica if it stopped.
fn free_disk(
    world: &World,
    handle: &Handle,
    nodes: &BTreeMap<NodeId, NodeHandle>,
    id: NodeId,
    down: &mut Vec<(NodeId, madsim::time::Instant)>,
) {
    let halted = {
        let mut w = world.lock();
        let slot = w.replicas.get_mut(&id).expect("exists");
        slot.disk.full = false;
        slot.blobs.full = false;
        slot.service
            .as_ref()
            .is_some_and(|n| n.lock().expect("single-threaded").node().halted().is_some())
    };
    if halted && down.iter().all(|(d, _)| *d != id) {
        kill(world, handle, nodes, id);
        down.push((id, madsim::time::Instant::now()));
    }
}

impl Outages {
    /// Restarts replicas and lifts cuts whose time has come.
    pub(super) fn expire(
        &mut self,
        world: &World,
        handle: &Handle,
        net: &NetSim,
        nodes: &BTreeMap<NodeId, NodeHandle>,
    ) {
        let now = madsim::time::Instant::now();
        let (freed, full): (Vec<_>, Vec<_>) =
            self.full_disks.drain(..).partition(|(_, at)| *at <= now);
        self.full_disks = full;
        for (id, _) in freed {
            free_disk(world, handle, nodes, id, &mut self.down);
        }
        let (due, waiting): (Vec<_>, Vec<_>) = self.down.drain(..).partition(|(_, at)| *at <= now);
        self.down = waiting;
        for (id, _) in due {
            handle.restart(nodes[&id].id());
        }
        let (lifted, holding): (Vec<_>, Vec<_>) =
            self.clogs.drain(..).partition(|(_, at)| *at <= now);
        self.clogs = holding;
        for (clog, _) in lifted {
            clog.lift(net, nodes);
        }
    }

    /// Lifts every cut and frees every disk; returns the replicas still
    /// down.
    pub(super) fn end(
        mut self,
        world: &World,
        handle: &Handle,
        net: &NetSim,
        nodes: &BTreeMap<NodeId, NodeHandle>,
    ) -> Vec<(NodeId, madsim::time::Instant)> {
        for (clog, _) in self.clogs {
            clog.lift(net, nodes);
        }
        for (id, _) in std::mem::take(&mut self.full_disks) {
            free_disk(world, handle, nodes, id, &mut self.down);
        }
        self.down
    }
}

/// A bit rots in one replica's stored copy of a file, when two other
/// replicas keep intact copies that their logs record (the guarantee is a
/// majority's copies, and a damaged one is repaired from a recorded
/// holder; rotting the last is losing the file, which no replication
/// survives). Returns whether one rotted.
pub(super) fn rot_blob(world: &World, rng: &mut SeededRng) -> bool {
    let mut w = world.lock();
    let serving: Vec<NodeId> = w.serving();
    let copies: Vec<(NodeId, kith_core::files::FileId)> = serving
        .iter()
        .flat_map(|id| w.replicas[id].blobs.complete_files().into_iter().map(move |f| (*id, f)))
        .collect();
    if copies.is_empty() {
        return false;
    }
    let (id, file) = copies[rng.range(0, copies.len() as u64) as usize];
    // Intact, and where the log sends a repair: recorded as a holder.
    let recorded = |other: &NodeId| {
        w.replicas[other].service.as_ref().is_some_and(|s| {
            let s = s.lock().expect("single-threaded");
            let recorded = s.node().state_machine().file_holder_nodes(file).any(|h| h == *other);
            recorded
        })
    };
    // Two more, so that losing one more disk (a replica replaced) still
    // leaves a copy: the guarantee holds while a majority is sound.
    let intact_elsewhere = serving
        .iter()
        .filter(|other| **other != id)
        .filter(|other| w.replicas[other].blobs.is_intact(file) && recorded(other))
        .count()
        >= 2;
    let rotted = intact_elsewhere && w.replicas.get_mut(&id).expect("exists").blobs.rot(rng, file);
    w.files.rotted += u64::from(rotted);
    rotted
}
