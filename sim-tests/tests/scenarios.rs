//! The named scenario suites under madsim, each over several seeds.

use kith_io_sim::simulation::{run, Scenario, SimConfig, SimReport};
use kith_io_sim::world::replica_id;
use std::time::Duration;

fn run_scenario(scenario: Scenario, seed: u64) -> SimReport {
    let mut c = SimConfig::new(seed, kith_sim_tests::invariants::all);
    c.scenario = Some(scenario);
    c.fault_phase = Duration::from_secs(8);
    let r = run(&c);
    if let Some(v) = &r.violation {
        panic!("{scenario:?} seed {seed}: {v}\nreproduce with: cargo run --release -p kith-sim-tests --bin kith-sim -- --seconds 8 --seed {seed} --scenario {}", scenario.name());
    }
    r
}

/// Messages acknowledged in 8 s that show the cluster kept making progress
/// (measured: 9 to 113 per seed; clients also spend some of their turns on
/// edits and reactions, which are not counted here).
const PROGRESS_ACKED_MIN: u64 = 5;

fn suite(scenario: Scenario) -> Vec<SimReport> {
    (0..5).map(|seed| run_scenario(scenario, seed)).collect()
}

#[test]
fn leader_crash_under_load() {
    for r in suite(Scenario::LeaderCrashUnderLoad) {
        assert!(r.crashes >= 2 && r.acked > PROGRESS_ACKED_MIN, "{r:?}");
    }
}

#[test]
fn minority_partition() {
    for r in suite(Scenario::MinorityPartition) {
        assert!(r.acked > PROGRESS_ACKED_MIN);
    }
}

#[test]
fn majority_partition() {
    for r in suite(Scenario::MajorityPartition) {
        assert!(r.acked > PROGRESS_ACKED_MIN);
    }
}

#[test]
fn asymmetric_partition_does_not_livelock() {
    for r in suite(Scenario::AsymmetricPartition) {
        assert!(r.acked > PROGRESS_ACKED_MIN);
    }
}

#[test]
fn rolling_restarts() {
    for r in suite(Scenario::RollingRestarts) {
        assert!(r.crashes == 6 && r.acked > PROGRESS_ACKED_MIN);
    }
}

#[test]
fn disk_tear_on_the_leader() {
    for r in suite(Scenario::DiskTearOnLeader) {
        assert!(r.crashes >= 2);
    }
}

#[test]
fn far_behind_replica_catches_up_by_snapshot() {
    for r in suite(Scenario::FarBehindSnapshot) {
        assert!(r.snapshots_installed >= 1, "no snapshot was installed: {r:?}");
    }
}

#[test]
fn membership_change_during_partition() {
    for r in suite(Scenario::MembershipChangeDuringPartition) {
        assert!(
            r.final_voters.contains(&replica_id(4)),
            "spare not promoted: {:?}",
            r.final_voters
        );
    }
}
