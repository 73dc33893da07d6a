//! A seeded scenario: a cluster, a list-append workload, a fault phase
//! whose faults are drawn from the seed, then a liveness phase in which the
//! network heals, every replica restarts, and the cluster must converge.

use super::cluster::{Cluster, ClusterConfig};
use super::invariant::Invariants;
use super::list_machine::ListMachine;
use super::list_workload::ListWorkload;
use super::network::NetworkConfig;
use super::violation::Violation;
use super::workload::{Workload, WorkloadStats};
use crate::ids::NodeId;
use crate::raft::{Membership, MembershipChange};
use crate::rng::SeededRng;
use crate::testing::cluster::SimMachine;
use crate::time::Instant;
use std::time::Duration;

/// What a scenario runs.
#[derive(Clone, Debug)]
pub struct ScenarioConfig {
    /// The seed; everything else random is drawn from it.
    pub seed: u64,
    /// Initial voters (3 or 5).
    pub voters: u64,
    /// Length of the fault phase.
    pub fault_phase: Duration,
    /// Concurrent clients.
    pub clients: u64,
    /// Whether membership changes are among the faults.
    pub membership_changes: bool,
    /// Whether replicas keep history on a durable store (see
    /// [`ClusterConfig::durable_history`]).
    pub durable_history: bool,
    /// Builds the invariant checkers (see [`ClusterConfig::invariants`]).
    pub invariants: fn() -> Invariants,
    /// Test-only rule breakers.
    #[cfg(feature = "bug-switches")]
    pub bugs: crate::bugs::BugSwitches,
}

impl ScenarioConfig {
    /// Defaults for `seed` with `voters` replicas, checked by `invariants`.
    pub fn new(seed: u64, voters: u64, invariants: fn() -> Invariants) -> ScenarioConfig {
        ScenarioConfig {
            seed,
            voters,
            invariants,
            fault_phase: Duration::from_secs(3),
            clients: 3,
            membership_changes: true,
            durable_history: false,
            #[cfg(feature = "bug-switches")]
            bugs: crate::bugs::BugSwitches::default(),
        }
    }

    /// The command that replays this list-append scenario on the harness.
    pub fn reproduction(&self) -> String {
        format!(
            "cargo run --release -p kith-sim-tests --bin kith-sim -- --engine harness --workload list --seed {} --voters {}",
            self.seed, self.voters
        )
    }
}

/// What a passing scenario did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioReport {
    /// The workload's totals.
    pub workload: WorkloadStats,
    /// Highest committed index seen.
    pub committed: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Digest of the whole event trace (equal for equal seeds).
    pub trace: [u8; 32],
    /// Simulated time the scenario covered.
    pub simulated: Duration,
}

/// Runs one list-append scenario (the Raft half under faults).
pub fn run_scenario(config: &ScenarioConfig) -> Result<ScenarioReport, Violation> {
    run_scenario_with::<ListMachine, _>(config, ListWorkload::new(config.clients))
}

/// Runs one scenario with `workload`; a panic anywhere in the cluster
/// (raft-rs's own assertions included) is reported as a violation, not a
/// crash of the run.
pub fn run_scenario_with<S: SimMachine, W: Workload<S>>(
    config: &ScenarioConfig,
    workload: W,
) -> Result<ScenarioReport, Violation> {
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_scenario_inner::<S, W>(config, workload)
    }));
    caught.unwrap_or_else(|panic| Err(Violation::from_panic(panic.as_ref())))
}

fn run_scenario_inner<S: SimMachine, W: Workload<S>>(
    config: &ScenarioConfig,
    mut workload: W,
) -> Result<ScenarioReport, Violation> {
    let mut faults = SeededRng::new(config.seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut cluster_config = ClusterConfig::new(config.seed, config.voters, config.invariants);
    cluster_config.spares = if config.membership_changes { 1 } else { 0 };
    cluster_config.durable_history = config.durable_history;
    cluster_config.network = NetworkConfig {
        loss: faults.range(0, 15) as f64 / 100.0,
        duplicate: faults.range(0, 5) as f64 / 100.0,
        delay_min: Duration::from_micros(faults.range(100, 2000)),
        delay_max: Duration::from_millis(faults.range(2, 30)),
    };
    #[cfg(feature = "bug-switches")]
    {
        cluster_config.bugs = config.bugs;
    }
    let mut cluster: Cluster<S> = Cluster::new(cluster_config)?;
    let mut crashes = 0;
    let mut down: Vec<(NodeId, Instant)> = Vec::new();
    let mut next_fault = Instant::from_millis(faults.range(200, 600));
    let end = Instant::ZERO + config.fault_phase;
    while cluster.now() < end {
        cluster.run_for(Duration::from_millis(2))?;
        workload.act(&mut cluster)?;
        let now = cluster.now();
        let (due, waiting): (Vec<_>, Vec<_>) = down.into_iter().partition(|(_, at)| *at <= now);
        down = waiting;
        for (id, _) in due {
            cluster.restart(id)?;
        }
        if now >= next_fault {
            crashes += inject_fault(&mut cluster, &mut faults, &mut down, config);
            next_fault = now + Duration::from_millis(faults.range(50, 400));
        }
    }
    liveness_phase(&mut cluster, &mut workload, &down)?;
    let committed = cluster.node(NodeId(1)).map_or(0, |n| n.status().commit.get());
    Ok(ScenarioReport {
        workload: workload.stats(),
        committed,
        crashes,
        trace: *cluster.trace_digest().as_bytes(),
        simulated: cluster.now().saturating_since(Instant::ZERO),
    })
}

fn inject_fault<S: SimMachine>(
    cluster: &mut Cluster<S>,
    rng: &mut SeededRng,
    down: &mut Vec<(NodeId, Instant)>,
    config: &ScenarioConfig,
) -> u64 {
    let ids = cluster.ids();
    let pick = |rng: &mut SeededRng| ids[rng.range(0, ids.len() as u64) as usize];
    let now = cluster.now();
    match rng.range(0, 10) {
        0..=2 => {
            let id = cluster.leader().filter(|_| rng.chance(0.5)).unwrap_or_else(|| pick(rng));
            if cluster.is_live(id) {
                cluster.crash(id);
                // Outages: instant restarts (a crash in the middle of an
                // election), ordinary ones, and long ones that force
                // snapshot catch-up.
                let outage = match rng.range(0, 10) {
                    0..=2 => rng.range(1, 20),
                    3..=7 => rng.range(20, 400),
                    _ => rng.range(1000, 2500),
                };
                down.push((id, now + Duration::from_millis(outage)));
                return 1;
            }
        }
        3 => cluster.network.isolate(pick(rng), &ids),
        4 => {
            let (a, b) = (pick(rng), pick(rng));
            if a != b {
                cluster.network.block(a, b);
            }
        }
        5 => {
            for &id in &ids {
                if rng.chance(0.5) {
                    cluster.network.isolate(id, &ids);
                }
            }
        }
        6 | 7 => cluster.network.heal(),
        8 if config.membership_changes => change_membership(cluster, rng),
        _ => {
            if let Some(leader) = cluster.leader() {
                let to = pick(rng);
                cluster.transfer_leadership(leader, to);
            }
        }
    }
    0
}

pub(super) fn change_membership<S: SimMachine>(cluster: &mut Cluster<S>, rng: &mut SeededRng) {
    let Some(leader) = cluster.leader() else { return };
    let Some(node) = cluster.node(leader) else { return };
    let Some(change) = churn_change(node.membership(), &cluster.ids(), 3, rng) else { return };
    let _ = cluster.change_membership(leader, &change);
}

/// The next membership change an operator churning the cluster makes:
/// add a replica of `ids` that is not a member as a learner, promote a
/// learner, or, above `min_voters`, remove a random voter (directly or
/// through joint consensus). `None` when there is nothing to do.
pub fn churn_change(
    membership: &Membership,
    ids: &[NodeId],
    min_voters: usize,
    rng: &mut SeededRng,
) -> Option<MembershipChange> {
    let outsider = ids.iter().copied().find(|id| !membership.contains(*id));
    Some(match (outsider, membership.learners.first()) {
        (Some(id), _) => MembershipChange::AddLearner(id),
        (None, Some(&learner)) => MembershipChange::Promote(learner),
        (None, None) if membership.voters.len() > min_voters => {
            let victim = membership.voters[rng.range(0, membership.voters.len() as u64) as usize];
            if rng.chance(0.5) {
                MembershipChange::Remove(victim)
            } else {
                MembershipChange::Joint { add_voters: vec![], remove: vec![victim] }
            }
        }
        _ => return None,
    })
}

/// Heal everything, restart everyone, and require convergence in bounded time.
pub(super) fn liveness_phase<S: SimMachine, W: Workload<S>>(
    cluster: &mut Cluster<S>,
    workload: &mut W,
    down: &[(NodeId, Instant)],
) -> Result<(), Violation> {
    cluster.network.heal();
    cluster.network.config.loss = 0.0;
    for (id, _) in down {
        cluster.restart(*id)?;
    }
    workload.finish();
    let deadline = cluster.now() + Duration::from_secs(20);
    let mut barrier = None;
    while cluster.now() < deadline {
        cluster.run_for(Duration::from_millis(5))?;
        workload.act(cluster)?;
        let Some(leader) = cluster.leader() else { continue };
        // A barrier write proves the healed cluster makes progress; it is
        // resubmitted if a leader change drops it.
        let stale = barrier.is_none_or(|at| cluster.now() >= at + Duration::from_millis(500));
        if stale && workload.is_quiet() && workload.submit_barrier(cluster, leader) {
            barrier = Some(cluster.now());
        }
        if barrier.is_some() && converged(cluster, |m| workload.barrier_applied(m)) {
            return workload.check_final(cluster, leader);
        }
    }
    Err(Violation {
        invariant: "liveness",
        detail: format!(
            "no convergence 20 s after healing (leader {:?}, clients quiet: {}, barrier: {barrier:?}); {}",
            cluster.leader(),
            workload.is_quiet(),
            describe(cluster)
        ),
        at: cluster.now(),
    })
}

/// Every member of the leader's configuration has applied the same prefix.
/// Replicas removed from the group may lag forever; that is expected.
fn converged<S: SimMachine>(cluster: &Cluster<S>, barrier_applied: impl Fn(&S) -> bool) -> bool {
    let Some(leader) = cluster.leader().and_then(|id| cluster.node(id)) else { return false };
    let membership = leader.status().membership;
    let statuses: Vec<_> =
        cluster.ids().iter().filter_map(|id| cluster.node(*id)).map(|n| (n.status(), n)).collect();
    let members: Vec<_> = statuses.iter().filter(|(s, _)| membership.contains(s.id)).collect();
    let Some((first, first_node)) = members.first() else { return false };
    barrier_applied(first_node.state_machine())
        && members.iter().all(|(s, n)| {
            s.applied == first.applied
                && s.commit == first.commit
                && n.digest() == first_node.digest()
        })
}

fn describe<S: SimMachine>(cluster: &Cluster<S>) -> String {
    let parts: Vec<String> = cluster
        .ids()
        .iter()
        .map(|id| match cluster.node(*id) {
            None => format!("{id}: down"),
            Some(n) => {
                let s = n.status();
                format!(
                    "{id}: {:?} term {} leader {:?} commit {} applied {} last {} snap {} voters {:?} learners {:?} out {:?} {:?}",
                    s.role, s.term, s.leader, s.commit, s.applied, s.last_index, s.snapshot_index,
                    s.membership.voters, s.membership.learners, s.membership.voters_outgoing, n.metrics()
                )
            }
        })
        .collect();
    parts.join("; ")
}
