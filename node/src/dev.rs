//! `kith dev`: a local cluster on 127.0.0.1 in one command.
//!
//! Each replica is a separate `kith node` process (so the dev cluster is the
//! real thing, not a simulation); this process starts them, grows the
//! cluster from one bootstrapped voter with `cluster add`, writes the client
//! config, restarts a replica that dies, and stops them all on Ctrl-C.
//!
//! Replicas run the executable `kith dev` was started from, resolved once
//! at start: on Linux `current_exe()` names `<path> (deleted)` once that
//! file is replaced (as `cargo build` does while a cluster runs), and a
//! restart through it would fail. The path itself then holds the new build.

use crate::cli::{Cli, DevArgs};
use crate::replica_commands::{init_dir, shutdown_signal};
use crate::settings::{self, ClientConfig};
use anyhow::{bail, Context, Result};
use kith_core::wire::replica_protocol::{AdminRequest, AdminResponse, ReplicaRecord};
use kith_io_tokio::client::Client;
use kith_io_tokio::key_file::KeyFile;
use libp2p::{Multiaddr, PeerId};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

struct DevReplica {
    dir: PathBuf,
    peer: PeerId,
    addr: Multiaddr,
    child: Option<Child>,
}

/// How to start a replica process: the same for every start.
struct Launch {
    exe: PathBuf,
    first: Multiaddr,
    admin: PeerId,
}

/// Runs the dev cluster until Ctrl-C.
pub async fn run(cli: &Cli, args: DevArgs) -> Result<()> {
    if !(1..=7).contains(&args.replicas) {
        bail!("--replicas must be between 1 and 7");
    }
    let exe = executable(std::env::current_exe().context("finding the kith executable")?);
    let home = settings::home(cli.home.as_deref());
    let dir = args.dir.clone().unwrap_or_else(|| home.join("dev"));
    let operator = operator_key(&home)?;
    let mut replicas = Vec::new();
    for i in 1..=args.replicas {
        let rdir = dir.join(format!("replica-{i}"));
        let key = match KeyFile::load(&rdir.join("node.key")) {
            Ok(k) => k,
            Err(_) => init_dir(&rdir)?,
        };
        let port = args.base_port as usize + i - 1;
        let port = u16::try_from(port).context("--base-port too high")?;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            bail!("port {port} is in use (another kith dev?): stop it or pass --base-port");
        }
        let addr: Multiaddr =
            format!("/ip4/127.0.0.1/tcp/{port}").parse().expect("valid multiaddr");
        replicas.push(DevReplica { dir: rdir, peer: key.peer_id(), addr, child: None });
    }
    let launch = Launch {
        exe,
        first: with_peer(&replicas[0].addr, replicas[0].peer),
        admin: operator.peer_id(),
    };
    for (i, r) in replicas.iter_mut().enumerate() {
        r.child = Some(spawn_node(r, i == 0, &launch)?);
    }
    let result = form_cluster(cli, &home, &operator, &replicas).await;
    if let Err(e) = result {
        stop_all(&mut replicas).await;
        return Err(e);
    }
    supervise(&mut replicas, &launch).await;
    eprintln!("stopping {} replicas...", replicas.len());
    stop_all(&mut replicas).await;
    eprintln!("stopped; data kept in {} (run `kith dev` again to resume)", dir.display());
    Ok(())
}

/// The executable to start replicas from, given `current_exe()` at start.
/// Linux marks a file replaced before that call with ` (deleted)`; the path
/// without it is where the new build is.
fn executable(current: PathBuf) -> PathBuf {
    match current.to_str().and_then(|p| p.strip_suffix(" (deleted)")) {
        Some(path) => PathBuf::from(path),
        None => current,
    }
}

fn with_peer(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    addr.clone().with(libp2p::multiaddr::Protocol::P2p(peer))
}

fn operator_key(home: &Path) -> Result<KeyFile> {
    let path = settings::user_key_path(home, "operator");
    match KeyFile::load(&path) {
        Ok(k) => Ok(k),
        Err(_) if !path.exists() => Ok(KeyFile::create(&path)?),
        Err(e) => Err(e.into()),
    }
}

fn spawn_node(r: &DevReplica, first: bool, launch: &Launch) -> Result<Child> {
    let log_path = r.dir.join("replica.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let mut cmd = Command::new(&launch.exe);
    cmd.arg("node").arg("--dir").arg(&r.dir).arg("--listen").arg(r.addr.to_string());
    cmd.arg("--admin").arg(launch.admin.to_string());
    // Both flags only matter on an empty disk; a resumed replica ignores them.
    if first {
        cmd.arg("--bootstrap");
    } else {
        cmd.arg("--join").arg(launch.first.to_string());
    }
    cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).kill_on_drop(true);
    cmd.spawn().with_context(|| format!("starting {}", launch.exe.display()))
}

async fn form_cluster(
    cli: &Cli,
    home: &Path,
    operator: &KeyFile,
    replicas: &[DevReplica],
) -> Result<()> {
    let first = with_peer(&replicas[0].addr, replicas[0].peer);
    let mut client = connect_retrying(operator, first.clone()).await?;
    let status = wait_for_leader(&mut client).await?;
    for r in &replicas[1..] {
        let id = kith_io_tokio::peer_ids::node_id_of(&r.peer);
        if status.members.iter().any(|m| m.id == id) {
            continue;
        }
        let record = ReplicaRecord { peer: r.peer.to_bytes(), addrs: vec![r.addr.to_vec()] };
        match client.admin(AdminRequest::Add { replica: record, learner: false }).await? {
            AdminResponse::Changed(_) => {}
            other => bail!("adding replica {}: {other:?}", r.peer),
        }
    }
    let mut config = settings::load_config(home)?;
    config.nodes = replicas.iter().map(|r| with_peer(&r.addr, r.peer).to_string()).collect();
    settings::save_config(home, &ClientConfig { ..config })?;
    print_next_steps(cli, home, replicas);
    Ok(())
}

async fn connect_retrying(key: &KeyFile, addr: Multiaddr) -> Result<Client> {
    let mut last = None;
    for _ in 0..50 {
        match Client::connect(key, addr.clone()).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last.expect("tried").into())
}

async fn wait_for_leader(
    client: &mut Client,
) -> Result<kith_core::wire::replica_protocol::ClusterStatus> {
    for _ in 0..100 {
        if let Ok(AdminResponse::Status(s)) = client.admin(AdminRequest::Status).await {
            if s.leader.is_some() {
                return Ok(s);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the dev cluster elected no leader in 20 s; see the replica.log files")
}

fn print_next_steps(cli: &Cli, home: &Path, replicas: &[DevReplica]) {
    if cli.json {
        let nodes: Vec<String> =
            replicas.iter().map(|r| with_peer(&r.addr, r.peer).to_string()).collect();
        println!("{}", serde_json::json!({ "ready": true, "nodes": nodes, "home": home }));
        return;
    }
    println!("kith dev: {} replicas running on 127.0.0.1", replicas.len());
    for r in replicas {
        println!(
            "  {}  (logs: {})",
            with_peer(&r.addr, r.peer),
            r.dir.join("replica.log").display()
        );
    }
    println!("client config written to {}", home.join("config.json").display());
    println!();
    println!("In another terminal (same KITH_HOME), try:");
    println!("  kith id new alice && kith --as alice register");
    println!("  kith id new bob && kith --as bob register");
    println!("  kith --as alice room create general");
    println!("  kith --as bob room join general");
    println!("  kith --as alice send general 'hello, bob'");
    println!("  kith --as bob history general");
    println!("  kith --as bob chat general");
    println!();
    println!("Ctrl-C stops the cluster.");
}

/// A run this long counts as healthy: the next failure backs off from the
/// start again.
const STABLE_RUN: Duration = Duration::from_secs(60);
/// The first restart's delay; it doubles with each failure in a row.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between restarts.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// After a replica failed (exited after `ran_for`, or could not be started
/// at all: `None`), following `failures` failures in a row: the new count
/// and how long to wait before starting it again. Never gives up, so a
/// replica comes back once whatever stopped it is fixed (a rebuild, a
/// freed port), and never waits longer than [`BACKOFF_MAX`].
fn after_failure(failures: u32, ran_for: Option<Duration>) -> (u32, Duration) {
    let failures = match ran_for {
        Some(ran) if ran >= STABLE_RUN => 1,
        _ => failures.saturating_add(1),
    };
    let doublings = failures.saturating_sub(1).min(16);
    (failures, BACKOFF_FIRST.saturating_mul(1 << doublings).min(BACKOFF_MAX))
}

/// Where one replica stands in the supervisor.
enum Watch {
    Running { since: tokio::time::Instant },
    Waiting { until: tokio::time::Instant },
}

/// Restarts a replica that exits (so `kill -9` on one shows the cluster
/// riding it out) until Ctrl-C. One replica that cannot be restarted never
/// touches the others: it is retried with back-off and each failure is
/// reported on stderr.
async fn supervise(replicas: &mut [DevReplica], launch: &Launch) {
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let start = tokio::time::Instant::now();
    let mut watch: Vec<Watch> = replicas.iter().map(|_| Watch::Running { since: start }).collect();
    let mut failures = vec![0u32; replicas.len()];
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let now = tokio::time::Instant::now();
        for (i, r) in replicas.iter_mut().enumerate() {
            let log = r.dir.join("replica.log");
            match watch[i] {
                Watch::Running { since } => {
                    let exited = r.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                    let Some(status) = exited else { continue };
                    r.child = None;
                    let (n, wait) = after_failure(failures[i], Some(now.duration_since(since)));
                    failures[i] = n;
                    eprintln!(
                        "replica {} exited ({status}); restarting it from its disk in {:.1} s (log: {})",
                        i + 1,
                        wait.as_secs_f64(),
                        log.display()
                    );
                    watch[i] = Watch::Waiting { until: now + wait };
                }
                Watch::Waiting { until } if now >= until => match spawn_node(r, i == 0, launch) {
                    Ok(child) => {
                        r.child = Some(child);
                        watch[i] = Watch::Running { since: now };
                    }
                    Err(e) => {
                        let (n, wait) = after_failure(failures[i], None);
                        failures[i] = n;
                        eprintln!(
                            "replica {} could not be restarted: {e:#}; trying again in {:.1} s",
                            i + 1,
                            wait.as_secs_f64()
                        );
                        watch[i] = Watch::Waiting { until: now + wait };
                    }
                },
                Watch::Waiting { .. } => {}
            }
        }
    }
}

async fn stop_all(replicas: &mut [DevReplica]) {
    for r in replicas.iter_mut() {
        if let Some(pid) = r.child.as_ref().and_then(Child::id) {
            signal(pid, nix::sys::signal::Signal::SIGTERM);
        }
    }
    for r in replicas.iter_mut() {
        if let Some(mut child) = r.child.take() {
            if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
    }
}

/// Sends `sig` to process `pid` (already gone is fine).
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_doubling_to_a_bound_and_never_give_up() {
        let quick = Some(Duration::from_secs(1));
        let mut failures = 0;
        let mut waits = Vec::new();
        for _ in 0..10 {
            let (n, wait) = after_failure(failures, quick);
            failures = n;
            waits.push(wait.as_millis());
        }
        let expected = [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000];
        assert_eq!(waits, expected);
        // A start that fails outright backs off the same way.
        assert_eq!(after_failure(2, None), (3, Duration::from_secs(2)));
        assert_eq!(after_failure(u32::MAX, None).1, BACKOFF_MAX);
        // A replica that ran for a while before dying starts over.
        assert_eq!(after_failure(9, Some(STABLE_RUN)), (1, BACKOFF_FIRST));
    }

    #[test]
    fn the_executable_is_the_path_even_once_replaced() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(executable(p("/t/kith (deleted)")), p("/t/kith"));
        assert_eq!(executable(p("/t/kith")), p("/t/kith"));
    }
}
