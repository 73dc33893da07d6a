//! Runs seeded simulations and reports each as one line.

use kith_core::im::ImMachine;
use kith_core::testing::im_workload::ImWorkload;
use kith_core::testing::scenario::{run_scenario, run_scenario_with, ScenarioConfig};
use kith_core::testing::violation::Violation;
use kith_io_sim::simulation::{run, SimConfig};
use std::time::{Duration, Instant};

/// Which simulator runs the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// madsim processes, network, disks and clocks (kith-io-sim).
    Madsim,
    /// The core's in-memory harness (no runtime; fastest).
    Harness,
}

/// What the simulated clients do (harness engine).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Signed chat clients with the IM checkers.
    Chat,
    /// List appends and linearizable reads against the bare Raft node.
    List,
}

/// How to run one seed.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The simulator.
    pub engine: Engine,
    /// Harness workload.
    pub workload: WorkloadKind,
    /// Voting replicas.
    pub voters: u64,
    /// Fault phase length (madsim).
    pub fault_phase: Duration,
    /// Keep the event trace (madsim).
    pub trace: bool,
    /// Keep the Jepsen history (madsim).
    pub history: bool,
    /// A named scenario instead of random faults (madsim).
    pub scenario: Option<kith_io_sim::simulation::Scenario>,
    /// Chat clients and their pause between operations (ms range), instead
    /// of the simulator's defaults (madsim).
    pub load: Option<(usize, (u64, u64))>,
    /// History on the durable store (true) or in memory (false); drawn per
    /// seed when `None` (madsim).
    pub durable_history: Option<bool>,
}

/// The outcome of one seed.
#[derive(Debug)]
pub struct SeedOutcome {
    /// The seed.
    pub seed: u64,
    /// The fault parameters drawn from the seed.
    pub parameters: String,
    /// The first violation, if any.
    pub violation: Option<Violation>,
    /// Digest of the full event trace.
    pub trace_digest: [u8; 32],
    /// The trace lines, if kept.
    pub trace: Vec<String>,
    /// The Jepsen history, if kept.
    pub history: Vec<String>,
    /// Simulated time covered.
    pub simulated: Duration,
    /// Wall-clock time taken.
    pub wall: Duration,
    /// Messages acknowledged to clients.
    pub acked: u64,
    /// What the file workload did, when the seed drew it.
    pub files: Option<kith_io_sim::file_client::FileCounts>,
}

impl SeedOutcome {
    /// The one-line summary: seed, ok/FAIL, trace digest, simulated and wall
    /// seconds, and the speed ratio.
    pub fn line(&self) -> String {
        let verdict = if self.violation.is_none() { "ok" } else { "FAIL" };
        let sim = self.simulated.as_secs_f64();
        let wall = self.wall.as_secs_f64().max(1e-9);
        let files = self.files.map(|f| format!(" {f}")).unwrap_or_default();
        format!(
            "seed {} {verdict} trace {} simulated {sim:.1}s wall {wall:.3}s speed {:.0}x acked {}{files}",
            self.seed,
            hex(&self.trace_digest[..8]),
            sim / wall,
            self.acked
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs one seed.
pub fn run_seed(seed: u64, spec: &RunSpec) -> SeedOutcome {
    let started = Instant::now();
    match spec.engine {
        Engine::Madsim => {
            let mut config = SimConfig::new(seed, crate::invariants::all);
            config.voters = spec.voters;
            config.fault_phase = spec.fault_phase;
            config.keep_trace = spec.trace;
            config.keep_history = spec.history;
            config.scenario = spec.scenario;
            if let Some((clients, pause_ms)) = spec.load {
                config.clients = clients;
                config.client_pause_ms = pause_ms;
            }
            if spec.durable_history.is_some() {
                config.durable_history = spec.durable_history;
            }
            let r = run(&config);
            SeedOutcome {
                seed,
                parameters: r.parameters,
                violation: r.violation,
                trace_digest: r.trace_digest,
                trace: r.trace,
                history: r.history,
                simulated: r.simulated,
                wall: started.elapsed(),
                acked: r.acked,
                files: r.files,
            }
        }
        Engine::Harness => {
            let config = ScenarioConfig::new(seed, spec.voters, crate::invariants::all);
            let result = match spec.workload {
                WorkloadKind::Chat => {
                    run_scenario_with::<ImMachine, _>(&config, ImWorkload::new(seed, 4))
                }
                WorkloadKind::List => run_scenario(&config),
            };
            let (violation, trace_digest, simulated, acked) = match result {
                Ok(r) => (None, r.trace, r.simulated, r.workload.acked),
                Err(v) => (Some(v), [0; 32], Duration::ZERO, 0),
            };
            SeedOutcome {
                seed,
                parameters: format!("harness voters={} workload={:?}", spec.voters, spec.workload),
                violation,
                trace_digest,
                trace: Vec::new(),
                history: Vec::new(),
                simulated,
                wall: started.elapsed(),
                acked,
                files: None,
            }
        }
    }
}
