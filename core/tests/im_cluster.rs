//! Chat clients on the in-memory cluster under seeded faults: signed
//! commands retried with the same id, live subscriptions across replica
//! crashes, and the IM checks (no acknowledged message lost, none
//! duplicated, no phantom, per-client order, nothing delivered to a removed
//! member, gap-free delivery).

use kith_core::im::ImMachine;
use kith_core::testing::im_workload::ImWorkload;
use kith_core::testing::scenario::{run_scenario_with, ScenarioConfig};
use kith_sim_tests::invariants::all;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn run(voters: u64, seeds: std::ops::Range<u64>) {
    run_with(voters, seeds, false);
}

fn run_with(voters: u64, seeds: std::ops::Range<u64>, durable_history: bool) {
    let mut delivered = 0;
    let mut acked = 0;
    for seed in seeds {
        let mut config = ScenarioConfig::new(seed, voters, all);
        config.durable_history = durable_history;
        match run_scenario_with::<ImMachine, _>(&config, ImWorkload::new(seed, 4)) {
            Ok(r) => {
                acked += r.workload.acked;
                delivered += r.workload.reads;
            }
            Err(v) => panic!(
                "IM seed {seed} ({voters} voters): {v}\nreproduce with: KITH_SEED={seed} KITH_VOTERS={voters} KITH_DURABLE_HISTORY={} cargo test -p kith-core --test im_cluster replay -- --nocapture",
                u8::from(durable_history)
            ),
        }
    }
    assert!(acked > 0 && delivered > 0);
    println!("{voters} voters: {acked} commands acknowledged, {delivered} entries delivered live");
}

#[test]
fn three_voter_chat_scenarios() {
    run(3, 0..env_u64("KITH_IM_SEEDS", 150));
}

#[test]
fn five_voter_chat_scenarios() {
    run(5, 50_000..50_000 + env_u64("KITH_IM_SEEDS", 150));
}

/// History on a durable store that loses what it had not committed at each
/// crash: recovery resumes from the store's commit (which may be ahead of
/// the log's snapshot), far-behind replicas get a self-contained snapshot
/// built on request, and the IM checks and digests must still agree.
#[test]
fn durable_history_chat_scenarios() {
    run_with(3, 100_000..100_000 + env_u64("KITH_IM_SEEDS", 150) / 2, true);
}

#[test]
fn replay() {
    let seed = env_u64("KITH_SEED", 3);
    let voters = env_u64("KITH_VOTERS", 3);
    let mut config = ScenarioConfig::new(seed, voters, all);
    config.durable_history = env_u64("KITH_DURABLE_HISTORY", 0) == 1;
    let report = run_scenario_with::<ImMachine, _>(&config, ImWorkload::new(seed, 4));
    println!("{report:?}");
    assert!(report.is_ok());
}
