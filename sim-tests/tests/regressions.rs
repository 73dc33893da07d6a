//! Seeds that once failed, kept so the bug they found stays fixed.

use kith_io_sim::simulation::{run, SimConfig};
use std::time::Duration;

/// Each: (seed, simulated seconds of faults, what it found).
const SEEDS: &[(u64, u64, &str)] = &[
    (
        1302,
        10,
        "a follower installing a snapshot campaigned before raft-rs counted the \
         snapshot persisted, read entries after its old applied index that the \
         snapshot had replaced, and raft-rs panicked (fixed in node/ready.rs)",
    ),
    (
        32,
        60,
        "every original replica was found beyond repair and replaced, and the \
         clients, which only knew the originals, could never finish (fixed in \
         io-sim/src/client.rs: clients follow the operator's current list)",
    ),
];

#[test]
fn once_failing_seeds_pass() {
    for (seed, seconds, found) in SEEDS {
        let mut config = SimConfig::new(*seed, kith_sim_tests::invariants::all);
        config.fault_phase = Duration::from_secs(*seconds);
        let report = run(&config);
        assert!(report.violation.is_none(), "seed {seed} ({found}): {:?}", report.violation);
    }
}
