//! Runs seeded scenarios and reports each as one line.

use kith_core::im::ImMachine;
use kith_core::testing::checker::Violation;
use kith_core::testing::im_workload::ImWorkload;
use kith_core::testing::scenario::{
    run_scenario, run_scenario_with, ScenarioConfig, ScenarioReport,
};
use std::time::{Duration, Instant};

/// The outcome of one seed.
#[derive(Debug)]
pub struct SeedOutcome {
    /// The seed.
    pub seed: u64,
    /// The scenario's report, or the violation that stopped it.
    pub result: Result<ScenarioReport, Violation>,
    /// Simulated time covered.
    pub simulated: Duration,
    /// Wall-clock time taken.
    pub wall: Duration,
}

impl SeedOutcome {
    /// The one-line summary: seed, ok/FAIL, trace digest, simulated and wall
    /// seconds, and the speed ratio.
    pub fn line(&self) -> String {
        let (verdict, digest) = match &self.result {
            Ok(r) => ("ok", hex(&r.trace[..8])),
            Err(_) => ("FAIL", "-".to_string()),
        };
        let sim = self.simulated.as_secs_f64();
        let wall = self.wall.as_secs_f64().max(1e-9);
        format!(
            "seed {} {verdict} trace {digest} simulated {sim:.1}s wall {wall:.3}s speed {:.0}x",
            self.seed,
            sim / wall
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the simulated clients do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Signed chat clients: rooms, direct messages, invitations, kicks and
    /// live subscriptions, with the IM checkers.
    Chat,
    /// List appends and linearizable reads against the bare Raft node.
    List,
}

/// Runs one seed with `voters` replicas.
pub fn run_seed(seed: u64, voters: u64, workload: WorkloadKind) -> SeedOutcome {
    let config = ScenarioConfig::new(seed, voters);
    let started = Instant::now();
    let result = match workload {
        WorkloadKind::Chat => run_scenario_with::<ImMachine, _>(&config, ImWorkload::new(seed, 4)),
        WorkloadKind::List => run_scenario(&config),
    };
    let simulated = result.as_ref().map_or(Duration::ZERO, |r| r.simulated);
    SeedOutcome { seed, result, simulated, wall: started.elapsed() }
}
