//! `kith-cluster-bench`: the real cluster on loopback, beside etcd and
//! Prosody, in one run (issue 15, benchmark 1; docs/PERFORMANCE.md).
//!
//! Three `kith node` processes, three `etcd` members and one Prosody
//! server, each with fsync on, on this machine with the load generator (as
//! a fair comparison must be here). Rows: group fan-out to 100 live
//! subscribers; an open loop at a fixed rate (time to acknowledgement, and
//! to delivery at a subscriber of another replica); throughput with many
//! concurrent clients (64-byte messages, signed as always for kith;
//! 64-byte values for etcd; 1:1 chat messages for Prosody), the servers'
//! CPU per acknowledged message; one client's sequential acknowledgement
//! latency (p50, p99). Each system runs alone, one after the other. etcd
//! and Prosody are installed from Debian's packages when missing.
//!
//! ```text
//! cargo build --release -p kith-node
//! ./target/release/kith-cluster-bench [--seconds 20] [--clients 64] [--rate 1000] [--only kith] [--smoke]
//! ```
//!
//! `--smoke` runs seconds-long phases with a few clients (the test command
//! runs it so the benchmark never rots). The last line is machine-readable.

mod cpu;
mod disk;
mod etcd_side;
mod http;
mod kith_side;
mod open_loop;
mod package;
mod prosody_side;
mod xmpp;

use anyhow::{Context, Result};
use std::time::Duration;

struct Args {
    seconds: u64,
    clients: usize,
    sequential: usize,
    /// Live subscribers of the fan-out room, and the messages sent to it.
    followers: usize,
    fan_out_messages: u64,
    /// Messages per second of the open loop.
    rate_per_s: u64,
    smoke: bool,
    /// Run only this system (`--only kith`), to iterate on one side.
    only: Option<String>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        seconds: 20,
        clients: 64,
        sequential: 1000,
        followers: 100,
        fan_out_messages: 2000,
        rate_per_s: 1000,
        smoke: false,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64> {
            let v = it.next().with_context(|| format!("{name} needs a number"))?;
            v.parse().with_context(|| format!("{name} {v:?} is not a number"))
        };
        match arg.as_str() {
            "--seconds" => a.seconds = number("--seconds")?,
            "--clients" => a.clients = number("--clients")? as usize,
            "--rate" => a.rate_per_s = number("--rate")?,
            "--only" => {
                let system = it.next().context("--only needs kith, etcd or prosody")?;
                if !["kith", "etcd", "prosody"].contains(&system.as_str()) {
                    anyhow::bail!("--only {system:?}: expected kith, etcd or prosody");
                }
                a.only = Some(system);
            }
            "--smoke" => {
                a = Args {
                    seconds: 2,
                    clients: 4,
                    sequential: 20,
                    followers: 4,
                    fan_out_messages: 10,
                    rate_per_s: 50,
                    smoke: true,
                    only: a.only.take(),
                };
            }
            other => anyhow::bail!(
                "unknown argument {other:?}; usage: kith-cluster-bench [--seconds N] [--clients N] [--rate N] [--only SYSTEM] [--smoke]"
            ),
        }
    }
    if a.seconds == 0 || a.clients == 0 || a.rate_per_s == 0 {
        anyhow::bail!("--seconds, --clients and --rate must be at least 1");
    }
    Ok(a)
}

/// Part `i` of `total` split over `parts` as evenly as can be (the first
/// `total % parts` parts take one more).
fn share(total: u64, parts: usize, i: usize) -> u64 {
    total / parts as u64 + u64::from((i as u64) < total % parts as u64)
}

/// A free TCP port on 127.0.0.1 (for a replica or an etcd member).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// What one system measured.
struct Figures {
    per_second: f64,
    cpu_ms_per_op: f64,
    /// This process (the load clients) per write.
    client_cpu_ms_per_op: f64,
    /// Entries delivered per second to the fan-out room's subscribers.
    fan_out: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Open loop: send to acknowledgement, p50, p99, p99.9 in ms.
    open_ack_ms: [f64; 3],
    /// Open loop: send to delivery at a subscriber (NaN where not measured).
    open_delivery_ms: [f64; 3],
}

impl Figures {
    /// A system that was not run (`--only`).
    fn none() -> Figures {
        Figures {
            per_second: f64::NAN,
            cpu_ms_per_op: f64::NAN,
            client_cpu_ms_per_op: f64::NAN,
            fan_out: f64::NAN,
            p50_ms: f64::NAN,
            p99_ms: f64::NAN,
            open_ack_ms: [f64::NAN; 3],
            open_delivery_ms: [f64::NAN; 3],
        }
    }
}

fn percentiles(samples: Vec<Duration>) -> (f64, f64) {
    let [p50, p99, _] = open_loop::percentiles(samples);
    (p50, p99)
}

async fn kith(a: &Args, dir: &std::path::Path) -> Result<Figures> {
    let cluster = kith_side::KithCluster::start(&kith_side::binary()?, dir).await?;
    // First, on the fresh cluster: its clients are gone before the
    // throughput clients connect (the replicas admit 32 connections per
    // source address, and every client here is 127.0.0.1).
    let fan_out = kith_side::fan_out(&cluster, dir, a.followers, a.fan_out_messages)
        .await
        .context("fan-out")?;
    println!(
        "kith group fan-out: {} live subscriptions of one room, {} messages: {fan_out:.0} \
         deliveries per second (target: at least 100,000; no etcd counterpart)",
        a.followers, a.fan_out_messages
    );
    let (acked, delivered) =
        kith_side::open_loop(&cluster, dir, a.rate_per_s, a.seconds).await.context("open loop")?;
    let (open_ack_ms, open_delivery_ms) =
        (open_loop::percentiles(acked), open_loop::percentiles(delivered));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let users = kith_side::users(&cluster, dir, a.clients).await?;
    let meter = cpu::Meter::start(cluster.pids());
    let (per_second, mut users) =
        kith_side::throughput(users, Duration::from_secs(a.seconds)).await?;
    let (cpu_ms_per_op, client_cpu_ms_per_op) = meter.per_op(per_second);
    let (p50_ms, p99_ms) = percentiles(kith_side::latencies(&mut users[0], a.sequential).await?);
    Ok(Figures {
        per_second,
        cpu_ms_per_op,
        client_cpu_ms_per_op,
        p50_ms,
        p99_ms,
        fan_out,
        open_ack_ms,
        open_delivery_ms,
    })
}

async fn etcd(a: &Args, dir: &std::path::Path) -> Result<Figures> {
    let cluster =
        etcd_side::EtcdCluster::start(&package::ensure("etcd", "etcd-server", &[])?, dir).await?;
    let senders = kith_side::OPEN_LOOP_SENDERS;
    let open_ack_ms = open_loop::percentiles(
        etcd_side::open_loop(&cluster, senders, a.rate_per_s, a.seconds).await?,
    );
    let meter = cpu::Meter::start(cluster.pids());
    let per_second =
        etcd_side::throughput(&cluster, a.clients, Duration::from_secs(a.seconds)).await?;
    let (cpu_ms_per_op, client_cpu_ms_per_op) = meter.per_op(per_second);
    let (p50_ms, p99_ms) = percentiles(etcd_side::latencies(&cluster, a.sequential).await?);
    Ok(Figures {
        per_second,
        cpu_ms_per_op,
        client_cpu_ms_per_op,
        p50_ms,
        p99_ms,
        fan_out: f64::NAN,
        open_ack_ms,
        open_delivery_ms: [f64::NAN; 3],
    })
}

async fn prosody(a: &Args, dir: &std::path::Path) -> Result<Figures> {
    let binary = package::ensure("prosody", "prosody", &["lua-dbi-sqlite3"])?;
    let server = prosody_side::ProsodyServer::start(&binary, dir).await?;
    let fan_out =
        prosody_side::fan_out(&server, a.followers, a.fan_out_messages).await.context("fan-out")?;
    let (acked, delivered) = prosody_side::open_loop(&server, a.rate_per_s, a.seconds).await?;
    let (open_ack_ms, open_delivery_ms) =
        (open_loop::percentiles(acked), open_loop::percentiles(delivered));
    let users = prosody_side::users(&server, "bench", a.clients.max(2)).await?;
    let meter = cpu::Meter::start(server.pids());
    let (per_second, mut users) =
        prosody_side::throughput(users, "bench", Duration::from_secs(a.seconds)).await?;
    let (cpu_ms_per_op, client_cpu_ms_per_op) = meter.per_op(per_second);
    let (p50_ms, p99_ms) =
        percentiles(prosody_side::latencies(&mut users, "bench", a.sequential).await?);
    Ok(Figures {
        per_second,
        cpu_ms_per_op,
        client_cpu_ms_per_op,
        p50_ms,
        p99_ms,
        fan_out,
        open_ack_ms,
        open_delivery_ms,
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // The load clients' own logs, when asked for (`RUST_LOG=debug`).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Each cause's Debug too: a cause whose message is empty still
            // shows what it is.
            eprintln!("Error: {e:#}");
            for cause in e.chain() {
                eprintln!("  caused by: {cause:?}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let a = args()?;
    let dir = std::env::temp_dir().join(format!("kith-cluster-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let fsync = disk::fdatasync_p50(&dir, if a.smoke { 20 } else { 500 })?;
    println!(
        "fdatasync of a 64-byte append in {}: p50 {:.0} us",
        dir.display(),
        fsync.as_secs_f64() * 1e6
    );
    println!(
        "fsync on everywhere, on this machine: fan-out to {} subscribers, an open loop of {} \
         messages/s for {} s, {} clients for {} s, then one client for {} sequential writes{}",
        a.followers,
        a.rate_per_s,
        a.seconds,
        a.clients,
        a.seconds,
        a.sequential,
        if a.smoke { " (smoke sizes: figures mean nothing)" } else { "" }
    );
    let runs = |system: &str| a.only.as_deref().is_none_or(|o| o == system);
    let kith = if runs("kith") {
        kith(&a, &dir.join("kith")).await.context("kith")?
    } else {
        Figures::none()
    };
    let etcd = if runs("etcd") {
        etcd(&a, &dir.join("etcd")).await.context("etcd")?
    } else {
        Figures::none()
    };
    let prosody = if runs("prosody") {
        prosody(&a, &dir.join("prosody")).await.context("prosody")?
    } else {
        Figures::none()
    };
    let _ = std::fs::remove_dir_all(&dir);
    report(&kith, &etcd, &prosody);
    let mut line = format!(
        "BENCH cluster clients={} seconds={} rate={} fsync_p50_us={:.0} ratio={:.3}",
        a.clients,
        a.seconds,
        a.rate_per_s,
        fsync.as_secs_f64() * 1e6,
        kith.per_second / etcd.per_second
    );
    for (name, f) in [("kith", &kith), ("etcd", &etcd), ("prosody", &prosody)] {
        line += &format!(
            " {name}_per_s={:.0} {name}_cpu_ms={:.3} {name}_p50_ms={:.2} {name}_p99_ms={:.2} \
             {name}_fan_out_per_s={:.0} {name}_open_ack_p99_ms={:.2} \
             {name}_open_delivery_p99_ms={:.2}",
            f.per_second,
            f.cpu_ms_per_op,
            f.p50_ms,
            f.p99_ms,
            f.fan_out,
            f.open_ack_ms[1],
            f.open_delivery_ms[1]
        );
    }
    println!("{line}");
    Ok(())
}

/// The human table: each system's figure and kith's ratio to each.
fn report(k: &Figures, e: &Figures, p: &Figures) {
    println!(
        "{:<40} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "", "kith", "etcd", "prosody", "kith/etcd", "kith/prosody"
    );
    let row = |label: &str, f: fn(&Figures) -> f64| (label.to_string(), f(k), f(e), f(p));
    let mut rows = vec![
        row("acknowledged writes per second", |f| f.per_second),
        row("server CPU ms per write", |f| f.cpu_ms_per_op),
        row("load client CPU ms per write", |f| f.client_cpu_ms_per_op),
        row("one client p50 ms", |f| f.p50_ms),
        row("one client p99 ms", |f| f.p99_ms),
        row("fan-out deliveries per second", |f| f.fan_out),
    ];
    for (q, name) in ["p50", "p99", "p99.9"].into_iter().enumerate() {
        let (ka, ea, pa) = (k.open_ack_ms[q], e.open_ack_ms[q], p.open_ack_ms[q]);
        rows.push((format!("open loop ack {name} ms"), ka, ea, pa));
    }
    for (q, name) in ["p50", "p99", "p99.9"].into_iter().enumerate() {
        let (kd, ed, pd) = (k.open_delivery_ms[q], e.open_delivery_ms[q], p.open_delivery_ms[q]);
        rows.push((format!("open loop delivery {name} ms"), kd, ed, pd));
    }
    for (label, k, e, p) in rows {
        println!("{label:<40} {k:>10.2} {e:>10.2} {p:>10.2} {:>10.2} {:>12.2}", k / e, k / p);
    }
}
