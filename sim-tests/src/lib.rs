//! kith's simulation suites and the `kith-sim` seed runner.

pub mod runner;
