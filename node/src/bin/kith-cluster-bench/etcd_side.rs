//! etcd's side: three `etcd` members on this machine (fsync on, as
//! shipped), installed from Debian's `etcd-server` package when missing,
//! and a load client of our own: one kept-alive HTTP connection per
//! client, each putting 64-byte values through etcd's JSON gateway
//! (`/v3/kv/put`), one at a time.

use super::free_port;
use super::http::{base64, Connection};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Three etcd members.
pub struct EtcdCluster {
    children: Vec<Child>,
    /// Each member's client address ("127.0.0.1:PORT").
    pub hosts: Vec<String>,
}

impl EtcdCluster {
    /// Starts three members in `dir` and waits until a put succeeds.
    pub async fn start(etcd: &Path, dir: &Path) -> Result<EtcdCluster> {
        let mut ports = Vec::new();
        for _ in 0..3 {
            ports.push((free_port()?, free_port()?));
        }
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
            .collect();
        let mut children = Vec::new();
        let mut hosts = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let d = dir.join(format!("etcd-{i}"));
            std::fs::create_dir_all(&d)?;
            let log = std::fs::File::create(d.join("etcd.log"))?;
            let mut cmd = Command::new(etcd);
            cmd.arg("--name").arg(format!("m{i}")).arg("--data-dir").arg(d.join("data"));
            cmd.arg("--listen-client-urls").arg(format!("http://127.0.0.1:{client}"));
            cmd.arg("--advertise-client-urls").arg(format!("http://127.0.0.1:{client}"));
            cmd.arg("--listen-peer-urls").arg(format!("http://127.0.0.1:{peer}"));
            cmd.arg("--initial-advertise-peer-urls").arg(format!("http://127.0.0.1:{peer}"));
            cmd.arg("--initial-cluster").arg(initial.join(","));
            cmd.arg("--initial-cluster-state").arg("new");
            cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
            children.push(cmd.kill_on_drop(true).spawn().context("starting etcd")?);
            hosts.push(format!("127.0.0.1:{client}"));
        }
        let cluster = EtcdCluster { children, hosts };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let tried = async {
                let mut c = Connection::open(&cluster.hosts[0]).await?;
                put(&mut c, "ready").await
            };
            match tried.await {
                Ok(()) => return Ok(cluster),
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context("etcd never accepted a put (see etcd-*/etcd.log)"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// The members' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(Child::id).collect()
    }
}

/// Puts a 64-byte value under `key`.
async fn put(c: &mut Connection, key: &str) -> Result<()> {
    let body =
        format!(r#"{{"key":"{}","value":"{}"}}"#, base64(key.as_bytes()), base64(&[b'v'; 64]));
    let (status, response) = c.post("/v3/kv/put", &body).await?;
    if status != 200 {
        bail!("etcd answered {status}: {response}");
    }
    Ok(())
}

/// `clients` connections (spread over the members) put one value at a
/// time for `duration`; the puts acknowledged per second.
pub async fn throughput(cluster: &EtcdCluster, clients: usize, duration: Duration) -> Result<f64> {
    let acked = Arc::new(AtomicU64::new(0));
    let mut connections = Vec::new();
    for i in 0..clients {
        connections.push(Connection::open(&cluster.hosts[i % cluster.hosts.len()]).await?);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let acked = acked.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    put(&mut c, &format!("k{i}-{n}")).await?;
                    n += 1;
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(acked.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// One client puts `n` values one after the other; each one's time.
pub async fn latencies(cluster: &EtcdCluster, n: usize) -> Result<Vec<Duration>> {
    let mut c = Connection::open(&cluster.hosts[0]).await?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        put(&mut c, &format!("seq-{i}")).await?;
        out.push(t.elapsed());
    }
    Ok(out)
}

/// An etcd connection putting open-loop values.
struct OpenSender(Connection);

impl super::open_loop::OpenLoopSender for OpenSender {
    async fn send(&mut self, i: u64) -> Result<()> {
        put(&mut self.0, &format!("open-{i}")).await
    }
}

/// The open-loop row: `senders` connections (spread over the members) put
/// `rate_per_s` values a second for `seconds`; each one's time to
/// acknowledgement. (etcd's counterpart of delivery, a watch, is not
/// measured.)
pub async fn open_loop(
    cluster: &EtcdCluster,
    senders: usize,
    rate_per_s: u64,
    seconds: u64,
) -> Result<Vec<Duration>> {
    let mut connections = Vec::new();
    for i in 0..senders {
        connections
            .push(OpenSender(Connection::open(&cluster.hosts[i % cluster.hosts.len()]).await?));
    }
    let schedule = super::open_loop::Schedule::new(rate_per_s, seconds);
    Ok(super::open_loop::run(schedule, connections).await?.0)
}
