//! Corruption at rest and what an operator does about it.
//!
//! A bit rots on a stopped replica's disk; recovery finds it and refuses to
//! start (data that was durable is gone, so the replica's votes and
//! acknowledgements can no longer be vouched for). The operator then
//! replaces the machine: the old member is removed through Raft and a new,
//! empty one (a new id, as a fresh data directory gets a new key in the
//! real node) is added as a learner, catches up, and is promoted, each step
//! an admin request from the operator's process. Reusing
//! the old id with an empty disk would be unsafe: it could vote twice in a
//! term it had already voted in.
//!
//! The fault atlas: rot strikes only while no replica is beyond repair or
//! being replaced, and only where the voters left intact still form a
//! quorum of the leader's settled configuration. Every committed entry then
//! keeps a good copy on a quorum, and the cluster can always carry out the
//! replacement. A replacement is done when the new replica is a voter and
//! holds every file the leader's log refers to (until then its disk is not
//! yet the copy it stands for; its own log may be behind).

use super::faults::leader;
use crate::operator::request_for;
use crate::replica::run_replica;
use crate::world::{replica_ip, World};
use kith_core::ids::NodeId;
use kith_core::raft::MembershipChange;
use kith_core::rng::SeededRng;
use madsim::runtime::{Handle, NodeHandle};
use std::collections::BTreeMap;

/// The replacement under way, if any, and how many finished.
#[derive(Debug, Default)]
pub(super) struct Rebuilds {
    active: Option<Rebuild>,
    pub(super) completed: u64,
}

#[derive(Debug)]
struct Rebuild {
    old: NodeId,
    new: Option<NodeId>,
}

/// Starts replica `id` as a madsim process at its address.
pub(super) fn spawn_replica(
    handle: &Handle,
    world: &World,
    id: NodeId,
    epoch: madsim::time::Instant,
) -> NodeHandle {
    let w = world.clone();
    handle
        .create_node()
        .name(format!("replica-{id}"))
        .ip(replica_ip(id))
        .init(move || run_replica(w.clone(), id, epoch))
        .build()
}

impl Rebuilds {
    /// Whether a replacement is under way (membership churn waits for it).
    pub(super) fn busy(&self) -> bool {
        self.active.is_some()
    }

    /// Rots one bit on the disk of `id` (which is down) if the atlas
    /// allows; returns whether it did.
    pub(super) fn rot(&self, world: &World, id: NodeId, rng: &mut SeededRng) -> bool {
        if self.busy() || !atlas_allows(world, id) {
            return false;
        }
        world.lock().replicas.get_mut(&id).expect("exists").disk.corrupt_at_rest(rng)
    }

    /// Takes the next step of the replacement, starting one when a replica
    /// is found beyond repair. Called on every controller turn; each step
    /// is retried until the leader's configuration shows it done.
    pub(super) fn drive(
        &mut self,
        world: &World,
        handle: &Handle,
        nodes: &mut BTreeMap<NodeId, NodeHandle>,
        epoch: madsim::time::Instant,
    ) {
        if self.active.is_none() {
            let mut w = world.lock();
            let Some((&old, slot)) =
                w.replicas.iter_mut().find(|(_, s)| s.beyond_repair && !s.retired)
            else {
                return;
            };
            slot.retired = true;
            self.active = Some(Rebuild { old, new: None });
        }
        let Some(lead) = leader(world) else { return };
        let Some(node) = world.lock().replicas[&lead].service.clone() else { return };
        let rebuild = self.active.as_mut().expect("set above");
        let membership = node.lock().expect("single-threaded").node().membership().clone();
        if membership.is_joint() {
            return;
        }
        let change = if membership.contains(rebuild.old) {
            MembershipChange::Remove(rebuild.old)
        } else {
            let new = *rebuild.new.get_or_insert_with(|| {
                let id = world.lock().replace(rebuild.old);
                nodes.insert(id, spawn_replica(handle, world, id, epoch));
                id
            });
            if !membership.contains(new) {
                MembershipChange::AddLearner(new)
            } else if membership.learners.contains(&new) {
                MembershipChange::Promote(new)
            } else if !holds_every_file(world, new, &node) {
                // Its copies of the files are part of the machine, as its
                // log is: the operator waits for them too.
                return;
            } else {
                self.active = None;
                self.completed += 1;
                return;
            }
        };
        // Refused while another change is pending or leadership moved; the
        // next turn asks again.
        let operator = world.lock().operator.clone();
        if let (Some(operator), Some(request)) = (operator, request_for(&change)) {
            operator.send(lead, request);
        }
    }
}

/// Whether replica `id` holds an intact copy of every content the
/// leader's log refers to. The leader's, not its own: a new replica's log
/// may be behind, and one that has not applied a file message yet holds
/// "every file its log refers to" without that file (seed 3394: the
/// replacement was taken as done, the next replica's disk rotted and was
/// replaced too, and a file whose third copy had rotted was lost).
fn holds_every_file(
    world: &World,
    id: NodeId,
    leader: &std::sync::Arc<std::sync::Mutex<kith_core::replica::ReplicaService>>,
) -> bool {
    let w = world.lock();
    let slot = &w.replicas[&id];
    if slot.service.is_none() {
        return false;
    }
    let leader = leader.lock().expect("single-threaded");
    let mut referenced = leader.node().state_machine().referenced_files_after(None);
    referenced.all(|file| slot.blobs.is_intact(file))
}

/// No replica is (or is about to be found) beyond repair, and losing `id` leaves a quorum of the
/// leader's settled configuration intact.
fn atlas_allows(world: &World, id: NodeId) -> bool {
    // A rotted disk is found only when its replica next starts.
    if world.lock().replicas.values().any(|s| s.disk.corruptions > 0 && !s.retired) {
        return false;
    }
    let Some(lead) = leader(world) else { return false };
    let Some(node) = world.lock().replicas[&lead].service.clone() else { return false };
    let node = node.lock().expect("single-threaded");
    let m = node.node().membership();
    if m.is_joint() {
        return false;
    }
    let voters = m.voters.len();
    let intact = voters - usize::from(m.voters.contains(&id));
    intact > voters / 2
}
