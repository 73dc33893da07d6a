//! An explicit schedule of faults and time, for the `cluster_ops` fuzz
//! target: where a seeded scenario draws its faults from the seed, here the
//! fuzzer chooses every crash, restart, partition, leadership transfer and
//! membership change, and how long the cluster runs between them, while
//! list-append clients write and read throughout. Every Raft invariant is
//! checked after every step; at the end the network heals, every replica
//! restarts, and the cluster must converge with a linearizable history.

use super::cluster::{Cluster, ClusterConfig};
use super::invariant::Invariants;
use super::list_machine::ListMachine;
use super::list_workload::ListWorkload;
use super::network::NetworkConfig;
use super::scenario::{change_membership, liveness_phase};
use super::violation::Violation;
use super::workload::{Workload, WorkloadStats};
use crate::ids::NodeId;
use crate::rng::SeededRng;
use crate::time::Instant;
use arbitrary::Arbitrary;
use std::time::Duration;

/// Steps one schedule may hold (bounds a fuzz execution's time).
pub const SCHEDULE_STEPS_MAX: usize = 48;

/// One thing that happens to the cluster.
#[derive(Clone, Debug, Arbitrary)]
pub enum FaultStep {
    /// Let the cluster (and its clients) run this many milliseconds.
    Run(u8),
    /// Kill a replica (its unsynced writes are lost, the last may tear).
    Crash(u8),
    /// Restart a crashed replica from its disk.
    Restart(u8),
    /// Cut a replica off from everyone.
    Isolate(u8),
    /// Drop everything from one replica to another (one way).
    Block(u8, u8),
    /// Repair the network.
    Heal,
    /// Ask the leader to hand over to a replica.
    Transfer(u8),
    /// Add, promote or remove a replica (drawn like the seeded scenarios).
    ChangeMembership(u8),
}

/// A whole schedule.
#[derive(Clone, Debug, Arbitrary)]
pub struct FaultSchedule {
    /// Five voters instead of three.
    pub five_voters: bool,
    /// Packet loss in percent (capped at 20).
    pub loss_percent: u8,
    /// The steps, in order (at most [`SCHEDULE_STEPS_MAX`] are used).
    pub steps: Vec<FaultStep>,
}

/// Runs `schedule` and returns what the clients got done; any broken
/// invariant, or a panic inside the cluster, is the error.
pub fn run_fault_schedule(
    schedule: &FaultSchedule,
    invariants: fn() -> Invariants,
) -> Result<WorkloadStats, Violation> {
    let caught =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(schedule, invariants)));
    caught.unwrap_or_else(|panic| Err(Violation::from_panic(panic.as_ref())))
}

fn run(
    schedule: &FaultSchedule,
    invariants: fn() -> Invariants,
) -> Result<WorkloadStats, Violation> {
    let voters = if schedule.five_voters { 5 } else { 3 };
    let mut config = ClusterConfig::new(11, voters, invariants);
    config.spares = 1;
    config.network = NetworkConfig {
        loss: f64::from(schedule.loss_percent % 21) / 100.0,
        duplicate: 0.02,
        delay_min: Duration::from_micros(200),
        delay_max: Duration::from_millis(10),
    };
    let mut cluster: Cluster<ListMachine> = Cluster::new(config)?;
    let mut workload = ListWorkload::new(3);
    let ids = cluster.ids();
    let pick = |n: u8| ids[usize::from(n) % ids.len()];
    for step in schedule.steps.iter().take(SCHEDULE_STEPS_MAX) {
        match step {
            FaultStep::Run(ms) => {
                let until = cluster.now() + Duration::from_millis(u64::from(*ms) * 4);
                while cluster.now() < until {
                    cluster.run_for(Duration::from_millis(2))?;
                    workload.act(&mut cluster)?;
                }
            }
            FaultStep::Crash(n) if cluster.is_live(pick(*n)) => cluster.crash(pick(*n)),
            FaultStep::Restart(n) if !cluster.is_live(pick(*n)) => cluster.restart(pick(*n))?,
            FaultStep::Isolate(n) => cluster.network.isolate(pick(*n), &ids),
            FaultStep::Block(a, b) if pick(*a) != pick(*b) => {
                cluster.network.block(pick(*a), pick(*b))
            }
            FaultStep::Heal => cluster.network.heal(),
            FaultStep::Transfer(n) => {
                if let Some(leader) = cluster.leader() {
                    cluster.transfer_leadership(leader, pick(*n));
                }
            }
            FaultStep::ChangeMembership(n) => {
                change_membership(&mut cluster, &mut SeededRng::new(u64::from(*n)))
            }
            _ => {}
        }
    }
    let down: Vec<(NodeId, Instant)> =
        ids.iter().filter(|id| !cluster.is_live(**id)).map(|id| (*id, Instant::ZERO)).collect();
    liveness_phase(&mut cluster, &mut workload, &down)?;
    Ok(workload.stats())
}
