//! `kith-sim`: run seeded cluster simulations and replay failing seeds.
//!
//! `kith-sim --seed 42` runs one seed; `kith-sim --seeds 500 --from 1000`
//! runs many. Every run ends with one line per seed (seed, ok/FAIL, trace
//! digest, simulated and wall seconds, speed); a failure exits non-zero and
//! prints the command that reproduces it.

use clap::Parser;
use kith_sim_tests::runner::{run_seed, WorkloadKind};
use std::process::ExitCode;
use std::time::Instant;

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
    /// Voting replicas per cluster (3 or 5).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=7))]
    voters: u64,
    /// What the clients do: `chat` (signed IM clients) or `list` (list appends).
    #[arg(long, default_value = "chat", value_parser = ["chat", "list"])]
    workload: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (from, count) = match (args.seed, args.seeds) {
        (Some(seed), _) => (seed, 1),
        (None, Some(n)) => (args.from, n),
        (None, None) => (args.from, 1),
    };
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut simulated = 0.0;
    for (i, seed) in (from..from.saturating_add(count)).enumerate() {
        let kind = if args.workload == "list" { WorkloadKind::List } else { WorkloadKind::Chat };
        let outcome = run_seed(seed, args.voters, kind);
        simulated += outcome.simulated.as_secs_f64();
        if let Err(v) = &outcome.result {
            println!("{}", outcome.line());
            println!("  {v}");
            println!(
                "  reproduce with: cargo run --release -p kith-sim-tests --bin kith-sim -- --seed {seed} --voters {} --workload {}",
                args.voters, args.workload
            );
            failures.push(seed);
        } else if count == 1 {
            println!("{}", outcome.line());
        }
        let done = i as u64 + 1;
        if count > 1 && (done.is_multiple_of(50) || done == count) {
            eprintln!(
                "[{done}/{count}] {} failed, {:.1}s",
                failures.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    if count > 1 {
        let wall = started.elapsed().as_secs_f64();
        println!(
            "{count} seeds from {from}: {} ok, {} FAIL; simulated {simulated:.0}s in {wall:.1}s ({:.0}x, {:.0} seeds/min)",
            count - failures.len() as u64,
            failures.len(),
            simulated / wall.max(1e-9),
            count as f64 * 60.0 / wall.max(1e-9)
        );
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
