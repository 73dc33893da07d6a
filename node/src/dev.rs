//! `kith dev`: a local cluster on 127.0.0.1 in one command.
//!
//! Each replica is a separate `kith node` process (so the dev cluster is the
//! real thing, not a simulation); this process starts them, grows the
//! cluster from one bootstrapped voter with `cluster add`, writes the client
//! config, restarts a replica that dies, and stops them all on Ctrl-C.

use crate::cli::{Cli, DevArgs};
use crate::replica_commands::{init_dir, shutdown_signal};
use crate::settings::{self, ClientConfig};
use anyhow::{bail, Context, Result};
use kith_core::im::replica_protocol::{AdminRequest, AdminResponse, ReplicaRecord};
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

/// Runs the dev cluster until Ctrl-C.
pub async fn run(cli: &Cli, args: DevArgs) -> Result<()> {
    if !(1..=7).contains(&args.replicas) {
        bail!("--replicas must be between 1 and 7");
    }
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
    let first = with_peer(&replicas[0].addr, replicas[0].peer);
    for (i, r) in replicas.iter_mut().enumerate() {
        r.child = Some(spawn_node(r, i == 0, &first, &operator.peer_id())?);
    }
    let result = form_cluster(cli, &home, &operator, &replicas).await;
    if let Err(e) = result {
        stop_all(&mut replicas).await;
        return Err(e);
    }
    supervise(&mut replicas, &first, &operator.peer_id()).await?;
    eprintln!("stopping {} replicas...", replicas.len());
    stop_all(&mut replicas).await;
    eprintln!("stopped; data kept in {} (run `kith dev` again to resume)", dir.display());
    Ok(())
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

fn spawn_node(
    r: &DevReplica,
    first: bool,
    first_addr: &Multiaddr,
    admin: &PeerId,
) -> Result<Child> {
    let log_path = r.dir.join("replica.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let exe = std::env::current_exe().context("finding the kith executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("node").arg("--dir").arg(&r.dir).arg("--listen").arg(r.addr.to_string());
    cmd.arg("--admin").arg(admin.to_string());
    // Both flags only matter on an empty disk; a resumed replica ignores them.
    if first {
        cmd.arg("--bootstrap");
    } else {
        cmd.arg("--join").arg(first_addr.to_string());
    }
    cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).kill_on_drop(true);
    cmd.spawn().context("starting a replica process")
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
) -> Result<kith_core::im::replica_protocol::ClusterStatus> {
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

/// Restarts a replica that exits (so `kill -9` on one shows the cluster
/// riding it out) until Ctrl-C; gives up on one that keeps failing.
async fn supervise(replicas: &mut [DevReplica], first: &Multiaddr, admin: &PeerId) -> Result<()> {
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut recent_exits: Vec<Vec<tokio::time::Instant>> = vec![Vec::new(); replicas.len()];
    loop {
        let (i, status) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            exited = first_exit(replicas) => exited,
        };
        let now = tokio::time::Instant::now();
        recent_exits[i].retain(|t| now.duration_since(*t) < Duration::from_secs(60));
        recent_exits[i].push(now);
        let log = replicas[i].dir.join("replica.log");
        if recent_exits[i].len() > 3 {
            eprintln!(
                "replica {} exited ({status}) 4 times within a minute; not restarting it (see {})",
                i + 1,
                log.display()
            );
            continue;
        }
        eprintln!("replica {} exited ({status}); restarting it from its disk", i + 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        replicas[i].child = Some(spawn_node(&replicas[i], i == 0, first, admin)?);
    }
}

/// Waits for a replica process to exit; returns its index and status.
async fn first_exit(replicas: &mut [DevReplica]) -> (usize, std::process::ExitStatus) {
    loop {
        for (i, r) in replicas.iter_mut().enumerate() {
            let exited = r.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                r.child = None;
                return (i, status);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
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
