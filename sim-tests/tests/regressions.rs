//! Seeds that once failed, kept so the bug they found stays fixed.

use kith_io_sim::simulation::{run, SimConfig};

/// Each: (seed, what it found).
const SEEDS: &[(u64, &str)] = &[(
    1302,
    "a follower installing a snapshot campaigned before raft-rs counted the \
     snapshot persisted, read entries after its old applied index that the \
     snapshot had replaced, and raft-rs panicked (fixed in node/ready.rs)",
)];

#[test]
fn once_failing_seeds_pass() {
    for (seed, found) in SEEDS {
        let report = run(&SimConfig::new(*seed, kith_sim_tests::invariants::all));
        assert!(report.violation.is_none(), "seed {seed} ({found}): {:?}", report.violation);
    }
}
