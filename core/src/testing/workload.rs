//! What clients do to a cluster during a scenario, and what they check at
//! the end. The scenario driver is generic over it, so the Raft half (list
//! appends) and the IM state machine run under the same faults.

use super::cluster::Cluster;
use super::violation::Violation;
use crate::ids::NodeId;
use crate::testing::cluster::SimMachine;

/// Totals of one workload run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadStats {
    /// Operations acknowledged.
    pub acked: u64,
    /// Operations whose outcome stayed unknown.
    pub indeterminate: u64,
    /// Reads checked.
    pub reads: u64,
}

/// Clients and their checks.
pub trait Workload<S: SimMachine> {
    /// Lets clients act at the cluster's current time (and consume events).
    fn act(&mut self, cluster: &mut Cluster<S>) -> Result<(), Violation>;
    /// Stops starting new operations (retries of started ones continue).
    fn finish(&mut self);
    /// Whether no operation is outstanding.
    fn is_quiet(&self) -> bool;
    /// Submits a write at `leader` that proves progress; `true` if accepted.
    fn submit_barrier(&mut self, cluster: &mut Cluster<S>, leader: NodeId) -> bool;
    /// Whether a barrier write is applied in `machine`.
    fn barrier_applied(&self, machine: &S) -> bool;
    /// Checks the converged final state (`leader`'s, equal on every member).
    fn check_final(&mut self, cluster: &mut Cluster<S>, leader: NodeId) -> Result<(), Violation>;
    /// Totals so far.
    fn stats(&self) -> WorkloadStats;
}
