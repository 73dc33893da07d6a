//! The liveness phase and the final checks.

use super::faults::{heal, leader};
use super::SimReport;
use crate::client::ClientHistory;
use crate::world::World;
use kith_core::ids::NodeId;
use kith_core::im::protocol::{EntryKind, RoomId};
use kith_core::testing::checker::Violation;
use kith_core::time::Instant;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

#[allow(clippy::too_many_arguments)]
pub(super) async fn liveness(
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
    // Every member of the leader's (settled) configuration is up and has
    // applied the same state; replicas outside it may lag forever.
    let m = &lead.membership;
    let members: Vec<_> = views.iter().filter(|(s, _)| m.contains(s.id)).collect();
    !m.is_joint()
        && members.len() == m.voters.len() + m.learners.len()
        && members
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
    let entries = node.state_machine().all_entries().map_err(|e| Violation {
        invariant: "history readable",
        detail: e.to_string(),
        at: Instant::ZERO,
    })?;
    for (room, entry) in entries {
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
