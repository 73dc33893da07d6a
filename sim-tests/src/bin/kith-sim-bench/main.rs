//! `kith-sim-bench`: how fast the simulator runs, measured side by side in
//! one process, every run with all checkers on and the history on the
//! durable store as in the real node.
//!
//! 1. Speed: simulated seconds per wall second for 3 replicas with all
//!    faults (target: at least 1000x at 100 client operations per second).
//!    Ten clients offer about 100 operations per second to a calm cluster,
//!    but faults make them wait out timeouts, so a second row runs enough
//!    clients to keep about 100 operations per second completing.
//! 2. Throughput: seeds per minute for 60-simulated-second seeds.
//! 3. For comparison: the ten clients with faults off, and the cluster
//!    with faults and no clients at all (the cost of timers, heartbeats,
//!    faults and checkers, which bounds the speed at any load).
//!
//! Each row also reports wall microseconds per completed operation: what
//! the target leaves is 10 (1000x at 100 operations per second).
//!
//! Before the rows, the floor that signatures alone put under every
//! operation: one ed25519 signature by the client and one verification at
//! the replica that takes it in (the fewest any operation gets), timed on
//! a command like the simulated clients send, and the speed that floor
//! alone allows at 100 operations per second.
//!
//! Last, the baseline (`bare_loop.rs`): three raft-rs nodes on madsim at
//! the same offered load (100 operations per second) with no IM, no
//! signatures, no faults and no checkers; and the target of issue 15:
//! kith's wall time per operation, signatures excluded, at most 3x the bare
//! loop's.
//!
//! `kith-sim-bench ROW` runs only row ROW (0-3), e.g. under a profiler;
//! `kith-sim-bench --smoke` runs one short seed of each row (the test
//! command runs it so the benchmark never rots).

mod bare_loop;

use kith_core::im::identity::Identity;
use kith_core::im::protocol::{
    CommandBody, Operation, RoomId, SignedCommand, Target, IM_PROTOCOL_VERSION,
};
use kith_io_sim::simulation::{run, SimConfig};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Seconds simulated per seed (the fault phase; healing comes on top).
const SECONDS: u64 = 60;
/// Pause between a client's operations (ms): ten clients offer about 100
/// operations per second when the cluster keeps up.
const PAUSE_MS: (u64, u64) = (30, 50);

/// One row of the table.
struct Row {
    label: &'static str,
    seeds: u64,
    faults: bool,
    clients: usize,
}

/// What one row measured.
struct Measured {
    speed: f64,
    /// Wall microseconds per completed operation.
    per_op_us: f64,
    seeds_per_hour: f64,
}

fn measure(row: &Row, seconds: u64) -> Measured {
    let started = Instant::now();
    let mut simulated = 0.0;
    let mut completed = 0;
    let mut reads = 0;
    for seed in 0..row.seeds {
        let mut c = SimConfig::new(seed, kith_sim_tests::invariants::all);
        c.fault_phase = Duration::from_secs(seconds);
        c.faults = row.faults;
        c.client_pause_ms = PAUSE_MS;
        c.clients = row.clients;
        // As the real node keeps it: snapshots refer to the store instead
        // of carrying all history (which makes every snapshot cost O(history)).
        c.durable_history = Some(true);
        let r = run(&c);
        if let Some(v) = r.violation {
            eprintln!("{}: seed {seed} failed: {v}", row.label);
            std::process::exit(1);
        }
        simulated += r.simulated.as_secs_f64();
        completed += r.completed;
        reads += r.reads;
    }
    let wall = started.elapsed().as_secs_f64();
    let speed = simulated / wall;
    let per_minute = row.seeds as f64 * 60.0 / wall;
    let per_op = if completed == 0 {
        "-".to_string()
    } else {
        format!("{:.0}", wall * 1e6 / completed as f64)
    };
    println!(
        "{:<40} seeds {:>3}  simulated {simulated:>6.0}s  wall {wall:>6.2}s  speed {speed:>5.0}x  {per_minute:>5.0} seeds/min  {:>5.1} ops/sim-s  {:>4.1} reads/sim-s  {per_op:>5} us/op",
        row.label,
        row.seeds,
        completed as f64 / simulated.max(1e-9),
        reads as f64 / simulated.max(1e-9),
    );
    Measured {
        speed,
        per_op_us: wall * 1e6 / completed.max(1) as f64,
        seeds_per_hour: per_minute * 60.0,
    }
}

/// The bare madsim loop at 100 operations per second.
fn measure_bare(seeds: u64, seconds: u64) -> f64 {
    let started = Instant::now();
    let mut completed = 0;
    for seed in 0..seeds {
        completed += bare_loop::run(seed, seconds, 100);
    }
    let wall = started.elapsed().as_secs_f64();
    let simulated = (seeds * seconds) as f64;
    let per_op_us = wall * 1e6 / completed.max(1) as f64;
    println!(
        "{:<40} seeds {seeds:>3}  simulated {simulated:>6.0}s  wall {wall:>6.2}s  speed {:>5.0}x  {:>5.0} seeds/min  {:>5.1} ops/sim-s  {:>4} reads/sim-s  {per_op_us:>5.0} us/op",
        "bare madsim loop (raft-rs, 100 ops/s)",
        simulated / wall,
        seeds as f64 * 60.0 / wall,
        completed as f64 / simulated,
        "-",
    );
    per_op_us
}

/// Times signing and verifying `COMMANDS` distinct commands; returns the
/// wall microseconds one operation spends on its signature at least.
fn signature_floor_us() -> f64 {
    const COMMANDS: u64 = 4_000;
    let alice = Identity::from_secret([7; 32]);
    let bodies: Vec<CommandBody> = (0..COMMANDS)
        .map(|n| CommandBody {
            version: IM_PROTOCOL_VERSION,
            command_id: uuid::Uuid::from_u64_pair(n, n),
            issued_at_ms: n * 10,
            op: Operation::Send {
                to: Target::Room(RoomId::Group("lobby".into())),
                text: format!("hello {}", n % 10_000),
            },
        })
        .collect();
    let started = Instant::now();
    let signed: Vec<SignedCommand> =
        bodies.iter().map(|b| SignedCommand::sign(&alice, black_box(b))).collect();
    let sign_us = started.elapsed().as_secs_f64() * 1e6 / COMMANDS as f64;
    let started = Instant::now();
    for command in &signed {
        assert!(black_box(command).verify(None).is_ok(), "a fresh signature verifies");
    }
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / COMMANDS as f64;
    let per_op_us = sign_us + verify_us;
    println!(
        "{:<40} sign {sign_us:.1} us + verify {verify_us:.1} us per operation: at 100 ops/s at most {:.0}x",
        "signature floor",
        1e6 / (100.0 * per_op_us),
    );
    per_op_us
}

fn main() {
    let smoke = std::env::args().nth(1).is_some_and(|a| a == "--smoke");
    let (scale, seconds) = if smoke { (0, 5) } else { (1, SECONDS) };
    let rows = [
        Row { label: "faults, 10 clients", seeds: 20 * scale + 1, faults: true, clients: 10 },
        Row { label: "faults, 100 clients", seeds: 10 * scale + 1, faults: true, clients: 100 },
        Row { label: "no faults, 10 clients", seeds: 10 * scale + 1, faults: false, clients: 10 },
        Row { label: "faults, no clients", seeds: 20 * scale + 1, faults: true, clients: 0 },
    ];
    if let Some(only) = std::env::args().nth(1).and_then(|a| a.parse::<usize>().ok()) {
        measure(&rows[only.min(rows.len() - 1)], seconds);
        return;
    }
    let floor_us = signature_floor_us();
    let measured: Vec<Measured> = rows.iter().map(|r| measure(r, seconds)).collect();
    let bare_us = measure_bare(10 * scale + 1, seconds);
    let speeds: Vec<f64> = measured.iter().map(|m| m.speed).collect();
    println!(
        "target: >= 1000x with faults at 100 ops/s: {} ({:.0}x with 100 clients; {:.0}x with no load at all; signatures alone allow {:.0}x)",
        if speeds[1] >= 1000.0 { "met" } else { "NOT met" },
        speeds[1],
        speeds[3],
        1e6 / (100.0 * floor_us),
    );
    let kith_us = measured[1].per_op_us - floor_us;
    let ratio = kith_us / bare_us;
    println!(
        "target: kith's wall time per operation, signatures excluded, <= 3x the bare loop's: {} ({kith_us:.0} us against {bare_us:.0} us: {ratio:.1}x)",
        if ratio <= 3.0 { "met" } else { "NOT met" },
    );
    println!(
        "BENCH sim kith_us_per_op={:.0} signature_us_per_op={floor_us:.1} bare_us_per_op={bare_us:.1} ratio={ratio:.2} kith_seeds_per_hour={:.0}",
        measured[1].per_op_us,
        measured[1].seeds_per_hour,
    );
}
