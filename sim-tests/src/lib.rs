//! kith's simulation suites, the invariants every simulation checks, and
//! the `kith-sim` seed runner.

pub mod invariants;
pub mod raw_raft;
#[cfg(feature = "madsim")]
pub mod runner;
