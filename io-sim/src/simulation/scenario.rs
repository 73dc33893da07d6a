//! Named fault scenarios: scripted schedules for the situations that have
//! broken Raft implementations before, run alongside the random swarm.

use super::faults::{kill, leader, Clog, Outages};
use crate::operator::request_for;
use crate::world::{replica_id, World};
use kith_core::ids::NodeId;
use kith_core::raft::MembershipChange;
use kith_core::wire::replica_protocol::AdminResponse;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use std::collections::BTreeMap;
use std::time::Duration;

/// A scripted schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// The leader is killed three times while clients write.
    LeaderCrashUnderLoad,
    /// One follower is cut off for three seconds.
    MinorityPartition,
    /// The leader is cut off from the majority for three seconds.
    MajorityPartition,
    /// The leader can receive but not send: the others must elect anew and
    /// the old leader must not disrupt them forever (pre-vote, check-quorum).
    AsymmetricPartition,
    /// Every replica is restarted in turn.
    RollingRestarts,
    /// The leader crashes with its last write torn, three times.
    DiskTearOnLeader,
    /// A follower is down long enough for the log to be compacted past it,
    /// then must catch up from a snapshot.
    FarBehindSnapshot,
    /// A spare replica is added and promoted while a follower is partitioned.
    MembershipChangeDuringPartition,
}

impl Scenario {
    /// Every named scenario.
    pub const ALL: [Scenario; 8] = [
        Scenario::LeaderCrashUnderLoad,
        Scenario::MinorityPartition,
        Scenario::MajorityPartition,
        Scenario::AsymmetricPartition,
        Scenario::RollingRestarts,
        Scenario::DiskTearOnLeader,
        Scenario::FarBehindSnapshot,
        Scenario::MembershipChangeDuringPartition,
    ];

    /// The scenario's name on the command line (kebab-case).
    pub fn name(self) -> &'static str {
        match self {
            Scenario::LeaderCrashUnderLoad => "leader-crash-under-load",
            Scenario::MinorityPartition => "minority-partition",
            Scenario::MajorityPartition => "majority-partition",
            Scenario::AsymmetricPartition => "asymmetric-partition",
            Scenario::RollingRestarts => "rolling-restarts",
            Scenario::DiskTearOnLeader => "disk-tear-on-leader",
            Scenario::FarBehindSnapshot => "far-behind-snapshot",
            Scenario::MembershipChangeDuringPartition => "membership-change-during-partition",
        }
    }

    /// The scenario called `name`.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Spare (non-voting, empty) replicas the scenario needs.
    pub fn spares(self) -> u64 {
        if self == Scenario::MembershipChangeDuringPartition {
            1
        } else {
            0
        }
    }

    /// Applied entries between snapshots (small where compaction is the point).
    pub fn snapshot_threshold_entries(self) -> u64 {
        if self == Scenario::FarBehindSnapshot {
            16
        } else {
            128
        }
    }

    /// Whether crashes always tear the last write.
    pub fn always_tear(self) -> bool {
        self == Scenario::DiskTearOnLeader
    }
}

/// One scripted step.
#[derive(Clone, Copy, Debug)]
enum Step {
    CrashLeader { outage_ms: u64 },
    CrashFollower { outage_ms: u64 },
    RestartInTurn,
    IsolateLeader { for_ms: u64 },
    IsolateFollower { for_ms: u64 },
    LeaderMute { for_ms: u64 },
    AddSpareAsLearner,
    PromoteSpare,
}

/// The scenario's steps, by time since the start.
fn script(s: Scenario) -> Vec<(u64, Step)> {
    use Step::*;
    match s {
        Scenario::LeaderCrashUnderLoad => vec![
            (1500, CrashLeader { outage_ms: 300 }),
            (3500, CrashLeader { outage_ms: 30 }),
            (5500, CrashLeader { outage_ms: 1500 }),
        ],
        Scenario::MinorityPartition => vec![(1500, IsolateFollower { for_ms: 3000 })],
        Scenario::MajorityPartition => vec![(1500, IsolateLeader { for_ms: 3000 })],
        Scenario::AsymmetricPartition => vec![(1500, LeaderMute { for_ms: 4000 })],
        Scenario::RollingRestarts => (0..6).map(|i| (1000 + i * 1000, RestartInTurn)).collect(),
        Scenario::DiskTearOnLeader => vec![
            (1500, CrashLeader { outage_ms: 100 }),
            (3000, CrashLeader { outage_ms: 100 }),
            (4500, CrashLeader { outage_ms: 100 }),
        ],
        Scenario::FarBehindSnapshot => vec![(500, CrashFollower { outage_ms: 6000 })],
        Scenario::MembershipChangeDuringPartition => vec![
            (1500, IsolateFollower { for_ms: 4000 }),
            (2000, AddSpareAsLearner),
            (3500, PromoteSpare),
        ],
    }
}

/// Runs a scenario's script until `end`; returns the crashes injected.
pub(super) async fn run_script(
    scenario: Scenario,
    world: &World,
    handle: &Handle,
    net: &NetSim,
    nodes: &BTreeMap<NodeId, NodeHandle>,
    epoch: madsim::time::Instant,
    end: madsim::time::Instant,
) -> (u64, Vec<(NodeId, madsim::time::Instant)>) {
    let mut steps = script(scenario);
    steps.reverse();
    let mut outages = Outages::default();
    let mut crashes = 0;
    let mut turn = 0;
    while madsim::time::Instant::now() < end && world.lock().violation.is_none() {
        madsim::time::sleep(Duration::from_millis(20)).await;
        let now = madsim::time::Instant::now();
        outages.expire(world, handle, net, nodes);
        let Outages { down, clogs, .. } = &mut outages;
        while steps.last().is_some_and(|(at, _)| epoch + Duration::from_millis(*at) <= now) {
            let (_, step) = steps.pop().expect("checked");
            let voters: Vec<NodeId> = world.lock().voters.clone();
            let lead = leader(world);
            let follower = voters
                .iter()
                .copied()
                .find(|v| Some(*v) != lead && down.iter().all(|(d, _)| d != v));
            let cut_off =
                |who: NodeId, for_ms: u64, clogs: &mut Vec<(Clog, madsim::time::Instant)>| {
                    for other in nodes.keys().copied().filter(|o| *o != who) {
                        for clog in [Clog::Link(who, other), Clog::Link(other, who)] {
                            clog.apply(net, nodes);
                            clogs.push((clog, now + Duration::from_millis(for_ms)));
                        }
                    }
                };
            match step {
                Step::CrashLeader { outage_ms } | Step::CrashFollower { outage_ms } => {
                    let target =
                        if matches!(step, Step::CrashLeader { .. }) { lead } else { follower };
                    if let Some(id) = target.filter(|id| down.iter().all(|(d, _)| d != id)) {
                        kill(world, handle, nodes, id);
                        down.push((id, now + Duration::from_millis(outage_ms)));
                        crashes += 1;
                    }
                }
                Step::RestartInTurn => {
                    let id = voters[turn % voters.len()];
                    turn += 1;
                    kill(world, handle, nodes, id);
                    down.push((id, now + Duration::from_millis(200)));
                    crashes += 1;
                }
                Step::IsolateLeader { for_ms } => {
                    if let Some(id) = lead {
                        cut_off(id, for_ms, clogs);
                    }
                }
                Step::IsolateFollower { for_ms } => {
                    if let Some(id) = follower {
                        cut_off(id, for_ms, clogs);
                    }
                }
                Step::LeaderMute { for_ms } => {
                    if let Some(id) = lead {
                        for other in nodes.keys().copied().filter(|o| *o != id) {
                            let clog = Clog::Link(id, other);
                            clog.apply(net, nodes);
                            clogs.push((clog, now + Duration::from_millis(for_ms)));
                        }
                    }
                }
                Step::AddSpareAsLearner | Step::PromoteSpare => {
                    let spare = replica_id(voters.len() as u8 + 1);
                    let change = if matches!(step, Step::AddSpareAsLearner) {
                        MembershipChange::AddLearner(spare)
                    } else {
                        MembershipChange::Promote(spare)
                    };
                    propose_membership(world, change).await;
                }
            }
        }
    }
    (crashes, outages.end(world, handle, net, nodes))
}

/// Asks for a membership change as an operator's `kith cluster add` does:
/// an admin request to a replica (the leader if one is known), again after
/// a "retry" or silence, until the change is made or refused.
async fn propose_membership(world: &World, change: MembershipChange) {
    let Some(request) = request_for(&change) else { return };
    for attempt in 0..50usize {
        let (operator, serving) = {
            let w = world.lock();
            (w.operator.clone(), w.serving())
        };
        let to = leader(world).unwrap_or(serving[attempt % serving.len()]);
        if let Some(operator) = operator {
            // A refusal is final: here, a retry of a change an earlier,
            // unanswered request already made ("already a member").
            let answer = operator.ask(to, request.clone()).await;
            if let Some(AdminResponse::Changed(_) | AdminResponse::Refused(_)) = answer {
                return;
            }
        }
        madsim::time::sleep(Duration::from_millis(100)).await;
    }
}
