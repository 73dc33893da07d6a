//! The liveness phase and the final checks.

use super::faults::{heal, leader};
use super::{Controlled, SimReport};
use crate::client::{client_secret, Histories};
use crate::world::World;
use kith_core::ids::NodeId;
use kith_core::im::identity::Identity;
use kith_core::testing::invariant::{ClientSends, Reach, StoredMessage};
use kith_core::testing::violation::Violation;
use kith_core::time::Instant;
use madsim::net::NetSim;
use madsim::runtime::Handle;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[allow(clippy::too_many_arguments)]
pub(super) async fn liveness(
    world: &World,
    handle: &Handle,
    net: &NetSim,
    cluster: &mut Controlled<'_>,
    down: &[(NodeId, madsim::time::Instant)],
    active: &AtomicBool,
    histories: &Histories,
    report: &mut SimReport,
) {
    heal(net, cluster.nodes);
    net.update_config(|c| c.packet_loss_rate = 0.0);
    for (id, _) in down {
        handle.restart(cluster.nodes[id].id());
    }
    active.store(false, Ordering::Relaxed);
    let deadline = madsim::time::Instant::now() + Duration::from_secs(30);
    let mut catching_up: Option<CatchUp> = None;
    while catching_up.is_some() || madsim::time::Instant::now() < deadline {
        madsim::time::sleep(Duration::from_millis(50)).await;
        if world.lock().violation.is_some() {
            return;
        }
        // A replica found beyond repair when it restarted is replaced.
        cluster.rebuilds.drive(world, handle, cluster.nodes, cluster.epoch);
        let idle = histories.values().all(|h| h.lock().expect("single-threaded").idle);
        if idle && converged(world) {
            // Live subscribers get time to catch up while they move; one
            // that stops short is checked as it is (`changes reach
            // subscribers`).
            let now = madsim::time::Instant::now();
            let follows = world.lock().follows.clone();
            let c = catching_up.get_or_insert_with(|| CatchUp::new(now, follows.clone()));
            if follows != c.follows {
                (c.follows, c.moved_at) = (follows, now);
            }
            let stalled = now.duration_since(c.moved_at) > FOLLOWERS_STALL_MAX;
            let too_long = now.duration_since(c.since) > FOLLOWERS_CATCH_UP_MAX;
            let current = followers_current(world);
            if current {
                report.followers_caught_up_after = Some(now.duration_since(c.since));
            }
            if current || stalled || too_long {
                report.violation = check_final(world, histories).err();
                return;
            }
        }
    }
    let at = Instant::from_micros(cluster.epoch.elapsed().as_micros() as u64);
    let busy: Vec<usize> = histories
        .iter()
        .filter(|(_, h)| !h.lock().expect("single-threaded").idle)
        .map(|(i, _)| *i)
        .collect();
    report.violation = Some(Violation {
        invariant: "liveness",
        detail: format!(
            "no convergence 30 s after healing (leader {:?}, clients still busy {busy:?}); {}",
            leader(world),
            replica_views(world)
        ),
        at,
    });
}

/// How long live subscribers may go without moving once the cluster has
/// converged (a subscriber whose replica went silent moves on after
/// `live_stream::SILENCE_MAX`).
const FOLLOWERS_STALL_MAX: Duration = Duration::from_secs(10);

/// How long, at most, live subscribers that keep moving may take to catch
/// up. A hundred subscribers backfilling a dozen lobbies each move the
/// whole time and need about 30 s of simulated time (seed 707 with
/// `--clients 100 --seconds 60`): a fixed 10 s checked them half-way, and
/// reported the changes not sent yet as lost.
const FOLLOWERS_CATCH_UP_MAX: Duration = Duration::from_secs(120);

/// Where the live subscribers were, and since when they have not moved.
struct CatchUp {
    since: madsim::time::Instant,
    moved_at: madsim::time::Instant,
    follows: Follows,
}

/// Where each live subscriber is in each room (`SimWorld::follows`).
type Follows = std::collections::BTreeMap<(usize, kith_core::im::protocol::RoomId), (u64, u64)>;

impl CatchUp {
    fn new(now: madsim::time::Instant, follows: Follows) -> CatchUp {
        CatchUp { since: now, moved_at: now, follows }
    }
}

/// Whether every live subscriber has received each room it follows to the
/// end, and heard the number of its last change.
fn followers_current(world: &World) -> bool {
    let Some(leader) = leader(world) else { return false };
    let w = world.lock();
    let Some(service) = w.replicas.get(&leader).and_then(|s| s.service.clone()) else {
        return false;
    };
    let service = service.lock().expect("single-threaded");
    let machine = service.node().state_machine();
    w.follows.iter().all(|((i, room), (seq, change))| {
        let user = Identity::from_secret(client_secret(w.seed, *i)).user();
        machine.readable_up_to(room, user).is_none_or(|last| last == *seq)
            && machine.changes(room, *change, 1).is_ok_and(|later| later.is_empty())
    })
}

/// Each replica's role, indexes and configuration, or why it is not running.
fn replica_views(world: &World) -> String {
    let w = world.lock();
    let views: Vec<String> = w
        .replicas
        .iter()
        .map(|(id, slot)| match &slot.service {
            Some(node) => {
                let s = node.lock().expect("single-threaded").node().status();
                format!(
                    "n{id} {:?} term {} commit {} applied {} voters {:?} learners {:?}",
                    s.role, s.term, s.commit, s.applied, s.membership.voters, s.membership.learners
                )
            }
            None if slot.retired => format!("n{id} replaced"),
            None if slot.beyond_repair => format!("n{id} beyond repair"),
            None => format!("n{id} down"),
        })
        .collect();
    views.join("; ")
}

fn converged(world: &World) -> bool {
    let Some(leader) = leader(world) else { return false };
    let w = world.lock();
    let views: Vec<_> = w
        .replicas
        .values()
        .filter_map(|s| s.service.as_ref())
        .map(|n| {
            let n = n.lock().expect("single-threaded");
            (n.node().status(), n.node().digest())
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

/// Hands the converged state and every client's sends to the invariants.
fn check_final(world: &World, histories: &Histories) -> Result<(), Violation> {
    let leader = leader(world).expect("converged");
    let mut w = world.lock();
    let node = w.replicas[&leader].service.clone().expect("live");
    let stored =
        StoredMessage::all_in(node.lock().expect("single-threaded").node().state_machine())
            .map_err(|e| Violation {
                invariant: "history readable",
                detail: e.to_string(),
                at: Instant::ZERO,
            })?;
    let clients: Vec<ClientSends> = histories
        .iter()
        .map(|(&i, h)| {
            let h = h.lock().expect("single-threaded");
            ClientSends {
                user: Identity::from_secret(client_secret(w.seed, i)).user(),
                submitted: h.submitted.clone(),
                acked: h.acked.clone(),
            }
        })
        .collect();
    w.checker.on_settled(&stored, &clients)?;
    let machine = node.lock().expect("single-threaded");
    let mut reach = Vec::new();
    for (&i, h) in histories.iter() {
        let user = Identity::from_secret(client_secret(w.seed, i)).user();
        let told = h.lock().expect("single-threaded").blocked.clone();
        let r = Reach::of(machine.node().state_machine(), user, told).map_err(|e| Violation {
            invariant: "history readable",
            detail: e.to_string(),
            at: Instant::ZERO,
        })?;
        reach.push(r);
    }
    drop(machine);
    w.checker.on_reach_settled(&reach)?;
    if let Some(fetched) = w.files.retrieved.take() {
        let settled =
            kith_core::testing::file_observation::FileObservation::Settled { fetched: &fetched };
        w.checker.on_file(settled)?;
    }
    settle_presence(&mut w, histories)
}

/// What every replica shows of each client's presence, renewed after the
/// heal: replicas that started after a renewal was passed on are left out
/// (the table is not durable, and gossip is not replayed to a newcomer;
/// seed 114 had a replacement start 13 ms before a client heard back).
fn settle_presence(w: &mut crate::world::SimWorld, histories: &Histories) -> Result<(), Violation> {
    let renewed: Vec<(kith_core::im::identity::UserId, u64, madsim::time::Instant)> = histories
        .iter()
        .filter_map(|(&i, h)| {
            let (issued_at_ms, taken) = h.lock().expect("single-threaded").presence_renewed?;
            Some((Identity::from_secret(client_secret(w.seed, i)).user(), issued_at_ms, taken))
        })
        .collect();
    let Some(first) = renewed.iter().map(|(_, _, taken)| *taken).min() else { return Ok(()) };
    let announced: Vec<_> = renewed.iter().map(|(user, ms, _)| (*user, *ms)).collect();
    let mut seen = Vec::new();
    for (id, slot) in &w.replicas {
        let (Some(service), Some(started)) = (&slot.service, slot.started) else { continue };
        // The replica that took an announcement passed it on before its
        // client heard back: a network latency earlier, at most.
        if slot.retired || started + Duration::from_millis(100) > first {
            continue;
        }
        let service = service.lock().expect("single-threaded");
        for (user, _) in &announced {
            seen.push((*id, *user, service.presence(*user).last_seen_ms));
        }
    }
    w.checker.on_presence_settled(&announced, &seen)
}
