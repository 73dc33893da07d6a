//! Starting a replica process: recover (or bootstrap, or join) the
//! service from its disk, as the real node's start does, with the world's
//! seed, disk and clock.

use super::{fail, Clock, Driver, TICK};
use crate::fetches::Fetches;
use crate::live_stream::Streams;
use crate::operator::operator_user;
use crate::world::World;
use kith_core::config::Config;
use kith_core::durable::RecoveryError;
use kith_core::ids::NodeId;
use kith_core::im::identity::UserId;
use kith_core::im::ImMachine;
use kith_core::raft::{Node, OnEmptyDisk};
use kith_core::replica::{ReplicaService, ServiceConfig};
use kith_core::testing::cluster::SimMachine;
use kith_core::time::DriverClock;
use madsim::net::Endpoint;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// How a start attempt went.
pub(super) enum Start {
    Running(Box<Driver>),
    /// The disk could not be read this time; try again.
    Unreadable,
    /// Recorded as a violation.
    Failed,
    /// The replica must not run: its disk is beyond repair (an operator
    /// replaces it, see `simulation::rebuild`) or it was replaced.
    Stopped,
}

/// Recovers (or bootstraps, or joins) the service from its disk.
pub(super) fn start(
    world: &World,
    id: NodeId,
    epoch: madsim::time::Instant,
    endpoint: Arc<Endpoint>,
) -> Start {
    let mut w = world.lock();
    let slot = w.replicas.get_mut(&id).expect("replica exists");
    if slot.retired || slot.beyond_repair {
        return Start::Stopped;
    }
    if slot.disk.read_fails() {
        return Start::Unreadable;
    }
    let seed = w.seed ^ w.rng.next_u64();
    let voters = w.voters.clone();
    let snapshot_threshold = w.snapshot_threshold_entries;
    #[cfg(feature = "bug-switches")]
    let bugs = w.bugs;
    let slot = w.replicas.get_mut(&id).expect("replica exists");
    slot.incarnation += 1;
    let base_micros = epoch.elapsed().as_micros() as u64;
    let clock = Clock {
        origin: madsim::time::Instant::now(),
        map: DriverClock::new(base_micros, slot.skew_ppm),
    };
    let now = clock.now();
    let mut config = Config::new(id, seed);
    config.tick_interval = TICK;
    config.snapshot_threshold_entries = snapshot_threshold;
    // The chat state grows with history: digest it at fixed indexes only.
    config.digest_every_entries = 32;
    #[cfg(feature = "bug-switches")]
    {
        config.bugs = bugs;
    }
    let machine = ImMachine::boot(slot.history.as_ref());
    #[cfg(feature = "bug-switches")]
    let machine = machine.with_bugs(config.bugs);
    let on_empty = if slot.bootstrap { OnEmptyDisk::Bootstrap(&voters) } else { OnEmptyDisk::Join };
    let node = match slot.disk.recover() {
        // Rot at rest is found, never trusted: the replica stays down.
        // Damage the simulation did not inject is a bug.
        Err(RecoveryError::Corrupt { .. }) if slot.disk.corruptions > 0 => {
            slot.beyond_repair = true;
            return Start::Stopped;
        }
        Err(e) => Err(format!("recovery failed: {e}")),
        Ok(log) => Node::resume(config, &log, machine, now, on_empty).map_err(|e| e.to_string()),
    };
    let service = match node {
        Ok(node) => {
            let mut service_config = ServiceConfig::default();
            service_config.admins = vec![operator_user()];
            // Its own key, to say in the log which file content it holds.
            service_config.identity =
                crate::world::replica_slot(id).map(crate::world::replica_identity);
            #[cfg(feature = "bug-switches")]
            {
                service_config.bugs = bugs;
            }
            ReplicaService::new(node, service_config, now)
        }
        Err(detail) => {
            drop(w);
            fail(world, id, "restart", detail);
            return Start::Failed;
        }
    };
    let service = Arc::new(Mutex::new(service));
    slot.service = Some(service.clone());
    slot.started = Some(madsim::time::Instant::now());
    let incarnation = slot.incarnation;
    drop(w);
    Start::Running(Box::new(Driver {
        id,
        world: world.clone(),
        service,
        incarnation,
        endpoint,
        clock,
        askers: BTreeMap::new(),
        next_asker: 0,
        outbound: BTreeMap::new(),
        vouched: BTreeSet::new(),
        streams: Streams::new(),
        opening: BTreeMap::new(),
        fetches: Fetches::new(incarnation),
        me: crate::world::replica_slot(id)
            .map_or(UserId([0; 32]), |slot| crate::world::replica_identity(slot).user()),
    }))
}
