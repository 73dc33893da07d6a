//! `kith-cluster-bench`: the real cluster on loopback, beside etcd, in one
//! run (issue 15, benchmark 1; docs/PERFORMANCE.md).
//!
//! Three `kith node` processes and three `etcd` members, each with fsync
//! on, on this machine with the load generator (as a fair comparison must
//! be here). Rows: throughput with many concurrent clients (64-byte
//! messages, signed as always for kith; 64-byte values for etcd), the
//! replicas' CPU per acknowledged message, and one client's sequential
//! acknowledgement latency (p50, p99). Each side runs alone, one after the
//! other. etcd is installed from Debian's `etcd-server` package when
//! missing.
//!
//! ```text
//! cargo build --release -p kith-node
//! ./target/release/kith-cluster-bench [--seconds 20] [--clients 64] [--smoke]
//! ```
//!
//! `--smoke` runs seconds-long phases with a few clients (the test command
//! runs it so the benchmark never rots). The last line is machine-readable.

mod cpu;
mod etcd_side;
mod http;
mod kith_side;

use anyhow::{Context, Result};
use std::time::Duration;

struct Args {
    seconds: u64,
    clients: usize,
    sequential: usize,
    /// Live subscribers of the fan-out room, and the messages sent to it.
    followers: usize,
    fan_out_messages: u64,
    smoke: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        seconds: 20,
        clients: 64,
        sequential: 1000,
        followers: 100,
        fan_out_messages: 2000,
        smoke: false,
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
            "--smoke" => {
                a = Args {
                    seconds: 2,
                    clients: 4,
                    sequential: 20,
                    followers: 4,
                    fan_out_messages: 10,
                    smoke: true,
                };
            }
            other => anyhow::bail!(
                "unknown argument {other:?}; usage: kith-cluster-bench [--seconds N] [--clients N] [--smoke]"
            ),
        }
    }
    if a.seconds == 0 || a.clients == 0 {
        anyhow::bail!("--seconds and --clients must be at least 1");
    }
    Ok(a)
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
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    (at(0.50), at(0.99))
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
    tokio::time::sleep(Duration::from_secs(1)).await;
    let users = kith_side::users(&cluster, dir, a.clients).await?;
    let pids = cluster.pids();
    let (cpu_before, client_before) = (cpu::total(&pids), cpu::seconds(std::process::id()));
    let wall = std::time::Instant::now();
    let (per_second, mut users) =
        kith_side::throughput(users, Duration::from_secs(a.seconds)).await?;
    let ops = (per_second * wall.elapsed().as_secs_f64()).max(1.0);
    let cpu_ms_per_op = (cpu::total(&pids) - cpu_before) * 1e3 / ops;
    let client_cpu_ms_per_op = (cpu::seconds(std::process::id()) - client_before) * 1e3 / ops;
    let (p50_ms, p99_ms) = percentiles(kith_side::latencies(&mut users[0], a.sequential).await?);
    Ok(Figures { per_second, cpu_ms_per_op, client_cpu_ms_per_op, p50_ms, p99_ms, fan_out })
}

async fn etcd(a: &Args, dir: &std::path::Path) -> Result<Figures> {
    let cluster = etcd_side::EtcdCluster::start(&etcd_side::ensure_installed()?, dir).await?;
    let pids = cluster.pids();
    let (cpu_before, client_before) = (cpu::total(&pids), cpu::seconds(std::process::id()));
    let wall = std::time::Instant::now();
    let per_second =
        etcd_side::throughput(&cluster, a.clients, Duration::from_secs(a.seconds)).await?;
    let ops = (per_second * wall.elapsed().as_secs_f64()).max(1.0);
    let cpu_ms_per_op = (cpu::total(&pids) - cpu_before) * 1e3 / ops;
    let client_cpu_ms_per_op = (cpu::seconds(std::process::id()) - client_before) * 1e3 / ops;
    let (p50_ms, p99_ms) = percentiles(etcd_side::latencies(&cluster, a.sequential).await?);
    Ok(Figures { per_second, cpu_ms_per_op, client_cpu_ms_per_op, p50_ms, p99_ms, fan_out: 0.0 })
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let dir = std::env::temp_dir().join(format!("kith-cluster-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!(
        "3 replicas each, fsync on, on this machine: {} clients for {} s, then one client for {} \
         sequential writes{}",
        a.clients,
        a.seconds,
        a.sequential,
        if a.smoke { " (smoke sizes: figures mean nothing)" } else { "" }
    );
    let kith = kith(&a, &dir.join("kith")).await.context("kith")?;
    let etcd = etcd(&a, &dir.join("etcd")).await.context("etcd")?;
    let _ = std::fs::remove_dir_all(&dir);
    println!("{:<32} {:>12} {:>12} {:>12}", "", "kith", "etcd", "kith/etcd");
    let rows = [
        ("acknowledged writes per second", kith.per_second, etcd.per_second),
        ("replica CPU ms per write", kith.cpu_ms_per_op, etcd.cpu_ms_per_op),
        ("load client CPU ms per write", kith.client_cpu_ms_per_op, etcd.client_cpu_ms_per_op),
        ("one client p50 ms", kith.p50_ms, etcd.p50_ms),
        ("one client p99 ms", kith.p99_ms, etcd.p99_ms),
    ];
    for (label, k, e) in rows {
        println!("{label:<32} {k:>12.2} {e:>12.2} {:>12.2}", k / e);
    }
    println!(
        "BENCH cluster clients={} seconds={} kith_per_s={:.0} etcd_per_s={:.0} ratio={:.3} \
         kith_cpu_ms={:.3} etcd_cpu_ms={:.3} kith_p50_ms={:.2} etcd_p50_ms={:.2} kith_p99_ms={:.2} \
         etcd_p99_ms={:.2} kith_fan_out_per_s={:.0}",
        a.clients,
        a.seconds,
        kith.per_second,
        etcd.per_second,
        kith.per_second / etcd.per_second,
        kith.cpu_ms_per_op,
        etcd.cpu_ms_per_op,
        kith.p50_ms,
        etcd.p50_ms,
        kith.p99_ms,
        etcd.p99_ms,
        kith.fan_out
    );
    Ok(())
}
