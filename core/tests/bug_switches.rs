//! Each test breaks one rule on purpose and requires the harness to catch
//! it within a bounded number of seeds: proof that the checkers can fail.

use kith_core::bugs::BugSwitches;
use kith_core::testing::scenario::{run_scenario, ScenarioConfig};
use kith_sim_tests::invariants::all;

const SEED_BUDGET: u64 = 1000;

fn caught_within_budget(bugs: BugSwitches, voters: u64) -> (u64, String) {
    for seed in 0..SEED_BUDGET {
        let mut config = ScenarioConfig::new(seed, voters, all);
        config.bugs = bugs;
        if let Err(v) = run_scenario(&config) {
            println!("{bugs:?} caught at seed {seed}: {v}");
            return (seed, v.invariant.to_string());
        }
    }
    panic!("{bugs:?} went unnoticed for {SEED_BUDGET} seeds");
}

#[test]
fn acknowledging_before_persist_is_caught() {
    caught_within_budget(BugSwitches { ack_before_persist: true, ..BugSwitches::default() }, 3);
}

#[test]
fn stale_local_reads_are_caught() {
    let (_, invariant) = caught_within_budget(
        BugSwitches { serve_reads_locally: true, ..BugSwitches::default() },
        3,
    );
    assert_eq!(invariant, "linearizable read");
}
