//! Seeded fault scenarios on the in-memory cluster harness.

use kith_core::testing::scenario::{run_scenario, ScenarioConfig};
use kith_sim_tests::invariants::all;
use std::time::Instant as WallInstant;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn run_seeds(voters: u64, seeds: std::ops::Range<u64>) {
    let started = WallInstant::now();
    let count = seeds.end - seeds.start;
    let mut acked = 0;
    for seed in seeds {
        let config = ScenarioConfig::new(seed, voters, all);
        match run_scenario(&config) {
            Ok(report) => acked += report.workload.acked,
            Err(v) => panic!(
                "seed {seed} ({voters} voters): {v}\nreproduce with: {}",
                config.reproduction()
            ),
        }
    }
    println!(
        "{count} scenarios of {voters} voters passed: {acked} acknowledged appends in {:?}",
        started.elapsed()
    );
}

#[test]
fn three_voter_scenarios() {
    let n = env_u64("KITH_SEEDS", 1000);
    run_seeds(3, 0..n);
}

#[test]
fn five_voter_scenarios() {
    let n = env_u64("KITH_SEEDS", 1000);
    run_seeds(5, 10_000..10_000 + n);
}

/// Replays one seed: `KITH_SEED=N KITH_VOTERS=3 cargo test ... replay_one_seed`.
#[test]
fn replay_one_seed() {
    let config = ScenarioConfig::new(env_u64("KITH_SEED", 7), env_u64("KITH_VOTERS", 3), all);
    match run_scenario(&config) {
        Ok(report) => println!("seed {} ok: {report:?}", config.seed),
        Err(v) => panic!("seed {}: {v}", config.seed),
    }
}

#[test]
fn same_seed_same_trace() {
    for seed in [1, 2, 3, 42] {
        let a = run_scenario(&ScenarioConfig::new(seed, 3, all)).expect("passes");
        let b = run_scenario(&ScenarioConfig::new(seed, 3, all)).expect("passes");
        assert_eq!(a, b, "seed {seed} did not replay exactly");
    }
    let a = run_scenario(&ScenarioConfig::new(1, 3, all)).expect("passes");
    let b = run_scenario(&ScenarioConfig::new(2, 3, all)).expect("passes");
    assert_ne!(a.trace, b.trace, "different seeds gave the same trace");
}

#[test]
fn a_schedule_of_crashes_and_partitions_converges() {
    use kith_core::testing::fault_schedule::{run_fault_schedule, FaultSchedule, FaultStep};
    let schedule = FaultSchedule {
        five_voters: false,
        loss_percent: 5,
        steps: vec![
            FaultStep::Run(100),
            FaultStep::Crash(0),
            FaultStep::Run(50),
            FaultStep::Isolate(1),
            FaultStep::Run(50),
            FaultStep::Restart(0),
            FaultStep::Heal,
            FaultStep::ChangeMembership(3),
            FaultStep::Run(100),
            FaultStep::Transfer(2),
            FaultStep::Run(100),
        ],
    };
    let stats = run_fault_schedule(&schedule, all).unwrap();
    assert!(stats.acked > 50 && stats.reads > 0, "clients worked throughout: {stats:?}");
}
