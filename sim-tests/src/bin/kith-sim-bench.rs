//! `kith-sim-bench`: how fast the simulator runs, measured side by side in
//! one process.
//!
//! 1. Speed: simulated seconds per wall second for 3 replicas with 10
//!    clients offering about 100 operations per second in total, all faults and
//!    checkers on (target: at least 1000x).
//! 2. Throughput: seeds per minute for 60-simulated-second seeds.
//! 3. For comparison, the same load with faults off.

use kith_io_sim::simulation::{run, SimConfig};
use std::time::{Duration, Instant};

/// Clients in every run: with 30-50 ms pauses and a calm cluster's
/// round trips they offer about 100 operations per simulated second.
const CLIENTS: usize = 10;

fn measure(
    label: &str,
    seeds: u64,
    seconds: u64,
    faults: bool,
    pause_ms: (u64, u64),
) -> (f64, f64) {
    let started = Instant::now();
    let mut simulated = 0.0;
    let mut completed = 0;
    let mut reads = 0;
    for seed in 0..seeds {
        let mut c = SimConfig::new(seed, kith_sim_tests::invariants::all);
        c.fault_phase = Duration::from_secs(seconds);
        c.faults = faults;
        c.client_pause_ms = pause_ms;
        c.clients = CLIENTS;
        // As the real node keeps it: snapshots refer to the store instead
        // of carrying all history (which makes every snapshot cost O(history)).
        c.durable_history = Some(true);
        let r = run(&c);
        if let Some(v) = r.violation {
            eprintln!("{label}: seed {seed} failed: {v}");
            std::process::exit(1);
        }
        simulated += r.simulated.as_secs_f64();
        completed += r.completed;
        reads += r.reads;
    }
    let wall = started.elapsed().as_secs_f64();
    let speed = simulated / wall;
    let per_minute = seeds as f64 * 60.0 / wall;
    println!(
        "{label:<44} seeds {seeds:>4}  simulated {simulated:>7.0}s  wall {wall:>6.2}s  speed {speed:>6.0}x  {per_minute:>7.0} seeds/min  {:>5.0} ops/sim-s  {:>5.1} reads checked/sim-s",
        completed as f64 / simulated.max(1e-9),
        reads as f64 / simulated.max(1e-9),
    );
    (speed, per_minute)
}

fn main() {
    // Ten clients pausing 30..50 ms between operations: ~100 ops/s in all
    // when the cluster keeps up.
    let load = (30, 50);
    let (with_faults, _) = measure("3 replicas, ~100 ops/s, faults + checkers", 20, 60, true, load);
    let (calm, _) = measure("3 replicas, ~100 ops/s, no faults", 20, 60, false, load);
    println!("faults cost {:.2}x in speed (calm / faulty)", calm / with_faults.max(1e-9));
    println!(
        "target: >= 1000x simulated seconds per wall second with faults: {}",
        if with_faults >= 1000.0 { "met" } else { "NOT met" }
    );
}
