//! `kith-sim`: run seeded cluster simulations and replay failing seeds.
//!
//! `kith-sim --seed 42` runs one seed; `kith-sim --seeds 500 --from 1000`
//! runs many with a progress display and a summary, one seed per core at a
//! time (`--jobs`; each seed is still one deterministic, single-threaded
//! simulation, so a seed's outcome does not depend on it). Every run prints the
//! fault parameters drawn from its seed and ends with one line (seed,
//! ok/FAIL, trace digest, simulated and wall seconds, speed); a failure
//! exits non-zero and prints the command that reproduces it.

use clap::{Parser, ValueEnum};
use kith_io_sim::simulation::Scenario;
use kith_sim_tests::runner::SeedOutcome;
use kith_sim_tests::runner::{run_seed, Engine, RunSpec, WorkloadKind};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum EngineArg {
    Madsim,
    Harness,
}

/// Parses a scenario name (the list is `Scenario::ALL`).
fn scenario(name: &str) -> Result<Scenario, String> {
    Scenario::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
        format!("unknown scenario; one of: {}", names.join(", "))
    })
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum WorkloadArg {
    Chat,
    List,
}

#[derive(Parser, Debug)]
#[command(name = "kith-sim", version, about = "Run seeded kith cluster simulations")]
struct Args {
    /// Run exactly this seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run this many consecutive seeds.
    #[arg(long)]
    seeds: Option<u64>,
    /// First seed of a `--seeds` run.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Seeds simulated side by side in a `--seeds` run (default: one per
    /// core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    jobs: Option<u64>,
    /// Voting replicas per cluster.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=7))]
    voters: u64,
    /// The simulator: madsim (processes, network, disks, clocks) or the
    /// core's in-memory harness.
    #[arg(long, value_enum, default_value_t = EngineArg::Madsim)]
    engine: EngineArg,
    /// Harness only: chat clients or list appends.
    #[arg(long, value_enum, default_value_t = WorkloadArg::Chat)]
    workload: WorkloadArg,
    /// Simulated seconds of faults before the liveness phase (madsim).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// Run a named scenario instead of random faults (madsim):
    /// leader-crash-under-load, minority-partition, majority-partition,
    /// asymmetric-partition, rolling-restarts, disk-tear-on-leader,
    /// far-behind-snapshot, membership-change-during-partition.
    #[arg(long, value_parser = scenario)]
    scenario: Option<Scenario>,
    /// Chat clients (madsim; default: the simulator's).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1000))]
    clients: Option<u64>,
    /// Each client's pause between operations, in ms, as MIN-MAX (madsim;
    /// with --clients; default: the simulator's).
    #[arg(long, requires = "clients", value_parser = pause_range)]
    pause_ms: Option<(u64, u64)>,
    /// Keep history on the durable store as the real node does (on) or in
    /// memory (off) (madsim; default: drawn per seed).
    #[arg(long, value_parser = ["on", "off"])]
    durable_history: Option<String>,
    /// Print the full event trace (madsim, with --seed).
    #[arg(long, requires = "seed")]
    trace: bool,
    /// Write the client history as Jepsen list-append JSONL (madsim, with --seed).
    #[arg(long, value_name = "FILE", requires = "seed")]
    history: Option<std::path::PathBuf>,
}

fn pause_range(text: &str) -> Result<(u64, u64), String> {
    let (min, max) = text.split_once('-').ok_or("expected MIN-MAX, e.g. 30-50")?;
    let min: u64 = min.trim().parse().map_err(|_| format!("{min:?} is not a number"))?;
    let max: u64 = max.trim().parse().map_err(|_| format!("{max:?} is not a number"))?;
    if min == 0 || min > max || max > 60_000 {
        return Err("expected 1 <= MIN <= MAX <= 60000".into());
    }
    Ok((min, max))
}

fn reproduce(args: &Args, seed: u64) -> String {
    let mut cmd = format!(
        "cargo run --release -p kith-sim-tests --bin kith-sim -- --seed {seed} --voters {}",
        args.voters
    );
    match args.engine {
        EngineArg::Madsim => {
            cmd.push_str(&format!(" --seconds {}", args.seconds));
            if let Some(clients) = args.clients {
                cmd.push_str(&format!(" --clients {clients}"));
            }
            if let Some((min, max)) = args.pause_ms {
                cmd.push_str(&format!(" --pause-ms {min}-{max}"));
            }
            if let Some(d) = &args.durable_history {
                cmd.push_str(&format!(" --durable-history {d}"));
            }
            if let Some(s) = args.scenario {
                cmd.push_str(&format!(" --scenario {}", s.name()));
            }
        }
        EngineArg::Harness => cmd.push_str(&format!(
            " --engine harness --workload {}",
            match args.workload {
                WorkloadArg::Chat => "chat",
                WorkloadArg::List => "list",
            }
        )),
    }
    cmd
}

/// Prints a line; a closed stdout (e.g. piped into `head`) ends the run quietly.
macro_rules! say {
    ($($arg:tt)*) => {
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            return ExitCode::SUCCESS;
        }
    };
}

fn main() -> ExitCode {
    let args = Args::parse();
    let spec = RunSpec {
        engine: match args.engine {
            EngineArg::Madsim => Engine::Madsim,
            EngineArg::Harness => Engine::Harness,
        },
        workload: match args.workload {
            WorkloadArg::Chat => WorkloadKind::Chat,
            WorkloadArg::List => WorkloadKind::List,
        },
        voters: args.voters,
        fault_phase: Duration::from_secs(args.seconds),
        trace: args.trace,
        history: args.history.is_some(),
        scenario: args.scenario,
        load: args.clients.map(|c| {
            (c as usize, args.pause_ms.unwrap_or(kith_io_sim::simulation::CLIENT_PAUSE_MS))
        }),
        durable_history: args.durable_history.as_deref().map(|d| d == "on"),
    };
    let (from, count) = match (args.seed, args.seeds) {
        (Some(seed), _) => (seed, 1),
        (None, Some(n)) => (args.from, n),
        (None, None) => (args.from, 1),
    };
    let jobs = match args.jobs {
        Some(jobs) => jobs as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let started = Instant::now();
    let (sender, outcomes) = mpsc::channel();
    let next = AtomicU64::new(0);
    let workers = jobs.min(usize::try_from(count).unwrap_or(usize::MAX)).max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let sender = sender.clone();
            let (spec, next) = (&spec, &next);
            let worker = std::thread::Builder::new().stack_size(SIMULATION_STACK_BYTES);
            worker
                .spawn_scoped(scope, move || simulate(spec, from, count, next, &sender))
                .expect("a worker thread starts");
        }
        drop(sender);
        report(&args, count, from, outcomes, started)
    })
}

/// Stack for each seed's thread: as much as the main thread has.
const SIMULATION_STACK_BYTES: usize = 8 << 20;

/// Runs seeds `from + k` for each `k` taken from `next`, until `count`.
fn simulate(
    spec: &RunSpec,
    from: u64,
    count: u64,
    next: &AtomicU64,
    outcomes: &mpsc::Sender<SeedOutcome>,
) {
    loop {
        let k = next.fetch_add(1, Ordering::Relaxed);
        if k >= count {
            return;
        }
        if outcomes.send(run_seed(from.saturating_add(k), spec)).is_err() {
            return; // the report stopped (stdout closed)
        }
    }
}

/// Prints each outcome as it arrives, then the summary.
fn report(
    args: &Args,
    count: u64,
    from: u64,
    outcomes: mpsc::Receiver<SeedOutcome>,
    started: Instant,
) -> ExitCode {
    let mut failures = Vec::new();
    let mut simulated = 0.0;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let seed = outcome.seed;
        simulated += outcome.simulated.as_secs_f64();
        if count == 1 || outcome.violation.is_some() {
            say!("seed {seed}: {}", outcome.parameters);
        }
        for line in &outcome.trace {
            say!("{line}");
        }
        if let Some(path) = &args.history {
            let text: String = outcome.history.iter().map(|l| format!("{l}\n")).collect();
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("kith-sim: cannot write history to {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
        if let Some(v) = &outcome.violation {
            say!("{}", outcome.line());
            say!("  {v}");
            say!("  reproduce with: {}", reproduce(args, seed));
            failures.push(seed);
        } else if count == 1 {
            say!("{}", outcome.line());
        }
        let done = i as u64 + 1;
        if count > 1 && (done.is_multiple_of(25) || done == count) {
            eprint!(
                "\r[{done}/{count}] {} failed, {:.1}s",
                failures.len(),
                started.elapsed().as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        }
    }
    if count > 1 {
        eprintln!();
        failures.sort_unstable();
        let wall = started.elapsed().as_secs_f64().max(1e-9);
        say!(
            "{count} seeds from {from}: {} ok, {} FAIL; simulated {simulated:.0}s in {wall:.1}s ({:.0}x over all seeds run side by side, {:.0} seeds/min)",
            count - failures.len() as u64,
            failures.len(),
            simulated / wall,
            count as f64 * 60.0 / wall
        );
        if !failures.is_empty() {
            say!("failing seeds: {failures:?}");
        }
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
