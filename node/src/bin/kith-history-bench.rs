//! `kith-history-bench`: memory and scale of history (issue 15, benchmark
//! 4; docs/PERFORMANCE.md).
//!
//! One `kith node` replica (a single voter, fsync on, as shipped) takes
//! signed 64-byte messages into one room from many clients. At each
//! checkpoint (10 thousand, 100 thousand, 1 million, 10 million messages,
//! up to `--messages`) it reports:
//! - the replica's resident memory (VmRSS) and its data on disk;
//! - the time to fetch a page of 50 entries at the room's start, middle
//!   and end (p50 of 100 fetches each, a linearizable query as clients make);
//! - the replica's restart time: SIGKILL, start the same command again,
//!   until a fresh client's history query is answered; and its resident
//!   memory then.
//!
//! ```text
//! cargo build --release -p kith-node
//! ./target/release/kith-history-bench [--messages 1000000] [--smoke]
//! ```
//!
//! The last line is machine-readable.

use anyhow::{bail, Context, Result};
use kith_core::im::protocol::{Operation, QueryKind, QueryReply, RoomId, Target, Visibility};
use kith_core::wire::client_protocol::CommandOutcome;
use kith_io_tokio::client::Client;
use kith_io_tokio::key_file::KeyFile;
use libp2p::Multiaddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Clients loading messages at once: the replica admits 32 connections per
/// source address, and one more client reads pages.
const LOADERS: usize = 31;
/// Entries per fetched page.
const PAGE: u32 = 50;
/// Page fetches timed at each place.
const FETCHES: usize = 100;

/// One replica process and how to start it again.
struct Replica {
    kith: PathBuf,
    dir: PathBuf,
    listen: Multiaddr,
    addr: Multiaddr,
    child: Child,
}

impl Replica {
    async fn start(kith: &Path, dir: &Path) -> Result<Replica> {
        std::fs::create_dir_all(dir)?;
        let peer = KeyFile::create(&dir.join("node.key"))?.peer_id();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let listen: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse()?;
        let addr = listen.clone().with(libp2p::multiaddr::Protocol::P2p(peer));
        let child = spawn(kith, dir, &listen, true)?;
        Ok(Replica { kith: kith.to_path_buf(), dir: dir.to_path_buf(), listen, addr, child })
    }

    fn pid(&self) -> Result<u32> {
        self.child.id().context("the replica has exited")
    }

    /// SIGKILLs the replica and starts it again on its directory.
    async fn kill_and_start(&mut self) -> Result<()> {
        self.child.kill().await?;
        self.child = spawn(&self.kith, &self.dir, &self.listen, false)?;
        Ok(())
    }
}

fn spawn(kith: &Path, dir: &Path, listen: &Multiaddr, bootstrap: bool) -> Result<Child> {
    let mut cmd = Command::new(kith);
    cmd.arg("node").arg("--dir").arg(dir).arg("--listen").arg(listen.to_string());
    if bootstrap {
        cmd.arg("--bootstrap");
    }
    let log =
        std::fs::OpenOptions::new().create(true).append(true).open(dir.join("replica.log"))?;
    cmd.env("RUST_LOG", "warn").stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    cmd.kill_on_drop(true).spawn().context("starting kith node")
}

/// Resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .context("no VmRSS in /proc/PID/status")?;
    Ok(kib / 1024.0)
}

/// Bytes of the files under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn ok(outcome: CommandOutcome) -> Result<()> {
    outcome.result.map(|_| ()).map_err(|e| anyhow::anyhow!("refused: {e}"))
}

/// Connects with `key`, retrying while the replica starts.
async fn connect(key: &KeyFile, addr: &Multiaddr) -> Result<Client> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match Client::connect(key, addr.clone()).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => bail!("cannot reach the replica: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// A page of the room after `after`; the time it took.
async fn fetch(client: &mut Client, room: &RoomId, after: u64) -> Result<Duration> {
    let kind =
        QueryKind::History { room: room.clone(), after: Some(after), before: None, limit: PAGE };
    let t = Instant::now();
    match client.query(kind).await? {
        Ok(QueryReply::Page(p)) if !p.entries.is_empty() => Ok(t.elapsed()),
        other => bail!("a history page after {after}: {other:?}"),
    }
}

/// Sends messages from `loaders` until `sent` reaches `target`.
async fn load(
    loaders: Vec<Client>,
    room: &RoomId,
    sent: &Arc<AtomicU64>,
    target: u64,
) -> Result<Vec<Client>> {
    let tasks: Vec<_> = loaders
        .into_iter()
        .map(|mut c| {
            let (room, sent) = (room.clone(), sent.clone());
            tokio::spawn(async move {
                while sent.fetch_add(1, Ordering::Relaxed) < target {
                    let op =
                        Operation::Send { to: Target::Room(room.clone()), text: "m".repeat(64) };
                    ok(c.submit(op).await?)?;
                }
                sent.fetch_sub(1, Ordering::Relaxed);
                anyhow::Ok(c)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await??);
    }
    Ok(out)
}

/// What one checkpoint measured.
struct Checkpoint {
    messages: u64,
    load_per_s: f64,
    rss_mib: f64,
    disk_mib: f64,
    /// p50 page fetch at the start, middle and end of the room, ms.
    page_ms: [f64; 3],
    restart_s: f64,
    rss_after_restart_mib: f64,
}

fn p50(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

async fn measure(
    replica: &mut Replica,
    keys: &[KeyFile],
    room: &RoomId,
    messages: u64,
    seq_of_first: u64,
) -> Result<(f64, f64, [f64; 3], f64, f64)> {
    let pid = replica.pid()?;
    let rss = rss_mib(pid)?;
    let disk = disk_bytes(&replica.dir) as f64 / (1024.0 * 1024.0);
    let mut reader = connect(&keys[0], &replica.addr).await?;
    let last = seq_of_first + messages - 1;
    let mut page_ms = [0.0; 3];
    for (k, after) in
        [seq_of_first, seq_of_first + messages / 2, last - u64::from(PAGE)].into_iter().enumerate()
    {
        let mut samples = Vec::with_capacity(FETCHES);
        for _ in 0..FETCHES {
            samples.push(fetch(&mut reader, room, after).await?);
        }
        page_ms[k] = p50(samples);
    }
    drop(reader);
    let t = Instant::now();
    replica.kill_and_start().await?;
    let mut reader = connect(&keys[0], &replica.addr).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while fetch(&mut reader, room, last - u64::from(PAGE)).await.is_err() {
        if Instant::now() > deadline {
            bail!("the restarted replica never answered");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let restart_s = t.elapsed().as_secs_f64();
    let rss_after = rss_mib(replica.pid()?)?;
    Ok((rss, disk, page_ms, restart_s, rss_after))
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut messages = 1_000_000u64;
    let mut smoke = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--messages" => {
                let v = it.next().context("--messages needs a number")?;
                messages =
                    v.parse().with_context(|| format!("--messages {v:?} is not a number"))?;
            }
            "--smoke" => (messages, smoke) = (2_000, true),
            other => bail!(
                "unknown argument {other:?}; usage: kith-history-bench [--messages N] [--smoke]"
            ),
        }
    }
    if messages < 200 {
        bail!("--messages must be at least 200");
    }
    let mut checkpoints: Vec<u64> =
        if smoke { vec![500] } else { vec![10_000, 100_000, 1_000_000, 10_000_000] };
    checkpoints.retain(|&c| c < messages);
    checkpoints.push(messages);
    let kith = std::env::current_exe()?.with_file_name("kith");
    if !kith.exists() {
        bail!("{} is missing: build it with `cargo build --release -p kith-node`", kith.display());
    }
    let dir = std::env::temp_dir().join(format!("kith-history-bench-{}", std::process::id()));
    let mut replica = Replica::start(&kith, &dir.join("replica")).await?;
    println!(
        "one replica (single voter, fsync on), {LOADERS} clients sending 64-byte messages into one room, \
         up to {messages} messages{}",
        if smoke { " (smoke sizes: figures mean nothing)" } else { "" }
    );
    let room = RoomId::Group("big".into());
    let mut keys = Vec::new();
    let mut loaders = Vec::new();
    for i in 0..LOADERS {
        let key = KeyFile::create(&dir.join(format!("user-{i}.key")))?;
        let mut c = connect(&key, &replica.addr).await?;
        ok(c.submit(Operation::Register { name: format!("user{i}") }).await?)?;
        let op = if i == 0 {
            Operation::CreateRoom { name: "big".into(), visibility: Visibility::Public }
        } else {
            Operation::Join { room: room.clone() }
        };
        ok(c.submit(op).await?)?;
        keys.push(key);
        loaders.push(c);
    }
    // The room's entries before the messages: its creation and the joins.
    let seq_of_first = LOADERS as u64 + 1;
    let sent = Arc::new(AtomicU64::new(0));
    let mut rows = Vec::new();
    println!(
        "{:>11} {:>10} {:>9} {:>10} {:>10} {:>10} {:>10} {:>11} {:>11}",
        "messages",
        "load/s",
        "RSS MiB",
        "disk MiB",
        "page@0 ms",
        "page@½ ms",
        "page@end",
        "restart s",
        "RSS after"
    );
    let mut done = 0;
    for target in checkpoints {
        let t = Instant::now();
        loaders = load(loaders, &room, &sent, target).await?;
        let load_per_s = (target - done) as f64 / t.elapsed().as_secs_f64();
        done = target;
        let (rss_mib, disk_mib, page_ms, restart_s, rss_after_restart_mib) =
            measure(&mut replica, &keys, &room, target, seq_of_first).await?;
        // The loaders' connections died with the replica: connect again.
        loaders.clear();
        for key in &keys {
            loaders.push(connect(key, &replica.addr).await?);
        }
        let c = Checkpoint {
            messages: target,
            load_per_s,
            rss_mib,
            disk_mib,
            page_ms,
            restart_s,
            rss_after_restart_mib,
        };
        println!(
            "{:>11} {:>10.0} {:>9.1} {:>10.1} {:>10.2} {:>10.2} {:>10.2} {:>11.2} {:>11.1}",
            c.messages,
            c.load_per_s,
            c.rss_mib,
            c.disk_mib,
            c.page_ms[0],
            c.page_ms[1],
            c.page_ms[2],
            c.restart_s,
            c.rss_after_restart_mib
        );
        rows.push(c);
    }
    drop(replica);
    let _ = std::fs::remove_dir_all(&dir);
    let mut line = String::from("BENCH history");
    for c in &rows {
        let m = c.messages;
        line += &format!(
            " rss_mib@{m}={:.1} disk_mib@{m}={:.1} page_end_ms@{m}={:.2} restart_s@{m}={:.2}",
            c.rss_mib, c.disk_mib, c.page_ms[2], c.restart_s
        );
    }
    println!("{line}");
    Ok(())
}
