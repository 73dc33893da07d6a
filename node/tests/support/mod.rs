//! Real replica processes on 127.0.0.1 for the process tests: each replica
//! is the `kith node` binary, started, killed (SIGKILL) and restarted like
//! an operator would.

#![allow(dead_code)]

pub mod hostile;

use kith_core::im::protocol::{
    Operation, QueryKind, QueryReply, RoomEntry, RoomId, Target, Visibility,
};
use kith_core::wire::client_protocol::CommandOutcome;
use kith_core::wire::replica_protocol::{
    AdminRequest, AdminResponse, ClusterStatus, ReplicaRecord,
};
use kith_io_tokio::client::Client;
use kith_io_tokio::key_file::KeyFile;
use kith_io_tokio::peer_ids::node_id_of;
use libp2p::{Multiaddr, PeerId};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// Waits until `kith dev` (its stdout) says the cluster is ready; panics
/// if it exits first or takes over 60 s.
pub async fn until_dev_ready(stdout: tokio::process::ChildStdout) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("kith dev's output reads") {
            if line.contains("Ctrl-C stops the cluster") {
                return;
            }
        }
        panic!("kith dev exited before it was ready");
    });
    ready.await.expect("kith dev is ready within 60 s");
}

/// The pid of the `kith node` process whose data directory is `dir`.
pub fn pid_of(dir: &Path) -> Option<u32> {
    let needle = format!("{}\0", dir.display());
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("\0node\0") && cmdline.contains(&needle) {
            return Some(pid);
        }
    }
    None
}

/// A scratch directory removed at drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("kith-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() && std::env::var("KITH_TEST_KEEP").is_err() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn kith() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kith"))
}

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Replica {
    pub dir: PathBuf,
    pub peer: PeerId,
    pub addr: Multiaddr,
    pub child: Option<Child>,
    pub extra_args: Vec<String>,
}

impl Replica {
    pub fn dial_addr(&self) -> Multiaddr {
        self.addr.clone().with(libp2p::multiaddr::Protocol::P2p(self.peer))
    }
}

/// A cluster of replica processes plus an operator key.
pub struct Cluster {
    pub scratch: Scratch,
    pub operator: KeyFile,
    pub replicas: Vec<Replica>,
}

impl Cluster {
    /// Starts `n` replicas: the first bootstraps, the others join and are
    /// added as voters through Raft.
    pub async fn start(name: &str, n: usize, extra_args: &[&str]) -> Cluster {
        let scratch = Scratch::new(name);
        let operator = KeyFile::create(&scratch.0.join("operator.key")).unwrap();
        let mut cluster = Cluster { scratch, operator, replicas: Vec::new() };
        for _ in 0..n {
            cluster.init_replica(extra_args);
        }
        cluster.spawn(0, &["--bootstrap"]);
        cluster.wait_for_leader(0).await;
        for i in 1..n {
            cluster.join_and_add(i).await;
        }
        cluster
    }

    /// Creates a replica's data directory (not started).
    pub fn init_replica(&mut self, extra_args: &[&str]) -> usize {
        let i = self.replicas.len();
        let dir = self.scratch.0.join(format!("replica-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let key = KeyFile::create(&dir.join("node.key")).unwrap();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", free_port()).parse().unwrap();
        self.replicas.push(Replica {
            dir,
            peer: key.peer_id(),
            addr,
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        });
        i
    }

    /// Starts replica `i`'s process with extra flags.
    pub fn spawn(&mut self, i: usize, flags: &[&str]) {
        let r = &mut self.replicas[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(r.dir.join("replica.log"))
            .unwrap();
        let mut cmd = kith();
        cmd.arg("node").arg("--dir").arg(&r.dir).arg("--listen").arg(r.addr.to_string());
        cmd.arg("--admin").arg(self.operator.peer_id().to_string());
        cmd.args(&r.extra_args).args(flags);
        // KITH_TEST_LOG raises the replicas' log level when chasing a failure.
        cmd.env("RUST_LOG", std::env::var("KITH_TEST_LOG").unwrap_or_else(|_| "info".into()));
        cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).kill_on_drop(true);
        r.child = Some(cmd.spawn().unwrap());
    }

    /// Starts a stopped replica from its disk.
    pub fn restart(&mut self, i: usize) {
        assert!(self.replicas[i].child.is_none(), "replica {i} is running");
        self.spawn(i, &[]);
    }

    /// SIGKILL: no flush, no goodbye.
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.replicas[i].child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub async fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.replicas[i].child.take() {
            let pid = child.id().unwrap();
            signal(pid, nix::sys::signal::Signal::SIGTERM);
            let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .expect("replica exits within 10 s of SIGTERM")
                .unwrap();
            assert!(status.success(), "replica {i} exited with {status} on SIGTERM");
        }
    }

    pub async fn operator_client(&self, i: usize) -> Client {
        connect(&self.operator, self.replicas[i].dial_addr()).await
    }

    pub async fn status(&self, i: usize) -> ClusterStatus {
        let mut c = self.operator_client(i).await;
        match c.admin(AdminRequest::Status).await.unwrap() {
            AdminResponse::Status(s) => s,
            other => panic!("status: {other:?}"),
        }
    }

    pub async fn wait_for_leader(&self, via: usize) -> ClusterStatus {
        for _ in 0..150 {
            if let Ok(Ok(AdminResponse::Status(s))) =
                tokio::time::timeout(Duration::from_secs(5), async {
                    self.operator_client(via).await.admin(AdminRequest::Status).await
                })
                .await
            {
                if s.leader.is_some() {
                    return s;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no leader seen through replica {via}");
    }

    /// The index of the replica that leads.
    pub async fn leader(&self, via: usize) -> usize {
        let s = self.wait_for_leader(via).await;
        let leader = s.leader.unwrap();
        self.replicas.iter().position(|r| node_id_of(&r.peer) == leader).unwrap()
    }

    /// Starts replica `i` with `--join` and adds it through the admin protocol.
    pub async fn join_and_add(&mut self, i: usize) {
        let join = self.replicas[0].dial_addr().to_string();
        self.spawn(i, &["--join", &join]);
        let record = ReplicaRecord {
            peer: self.replicas[i].peer.to_bytes(),
            addrs: vec![self.replicas[i].addr.to_vec()],
        };
        let mut c = self.operator_client(0).await;
        match c.admin(AdminRequest::Add { replica: record, learner: false }).await.unwrap() {
            AdminResponse::Changed(_) => {}
            other => panic!("adding replica {i}: {other:?}"),
        }
    }

    /// Every replica's dial address.
    pub fn addrs(&self) -> Vec<Multiaddr> {
        self.replicas.iter().map(Replica::dial_addr).collect()
    }

    pub fn log_of(&self, i: usize) -> String {
        std::fs::read_to_string(self.replicas[i].dir.join("replica.log")).unwrap_or_default()
    }
}

pub async fn connect(key: &KeyFile, addr: Multiaddr) -> Client {
    for _ in 0..100 {
        if let Ok(c) = Client::connect(key, addr.clone()).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot connect to {addr}");
}

/// A user with a key in `dir`, registered through `client`.
pub async fn user(dir: &Path, name: &str, addrs: Vec<Multiaddr>) -> Client {
    let key = KeyFile::create(&dir.join(format!("{name}.key"))).unwrap();
    let mut c = Client::connect_any(&key, addrs).await.unwrap();
    ok(c.submit(Operation::Register { name: name.into() }).await.unwrap());
    c
}

pub fn ok(outcome: CommandOutcome) -> kith_core::im::protocol::Receipt {
    outcome.result.unwrap_or_else(|e| panic!("command failed: {e}"))
}

impl Cluster {
    /// Where test users keep their keys.
    pub fn keys_dir(&self) -> PathBuf {
        let keys = self.scratch.0.join("users");
        std::fs::create_dir_all(&keys).unwrap();
        keys
    }

    /// Registers `owner` and has them create the public room `name`.
    pub async fn room_with_owner(&self, owner: &str, name: &str) -> (Client, RoomId) {
        let mut client = user(&self.keys_dir(), owner, self.addrs()).await;
        let op = Operation::CreateRoom { name: name.into(), visibility: Visibility::Public };
        ok(client.submit(op).await.unwrap());
        (client, RoomId::Group(name.into()))
    }
}

/// Sends `texts` to `room`, each acknowledged before the next.
pub async fn send_all(client: &mut Client, room: &RoomId, texts: impl IntoIterator<Item = String>) {
    for text in texts {
        let op = Operation::Send { to: Target::Room(room.clone()), text };
        ok(client.submit(op).await.unwrap());
    }
}

/// The whole history of `room` as `client`'s replica serves it.
pub async fn history(client: &mut Client, room: &RoomId) -> Vec<RoomEntry> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let kind = QueryKind::History { room: room.clone(), after, before: None, limit: 500 };
        let Ok(QueryReply::Page(page)) = client.query(kind).await.unwrap() else {
            panic!("history query failed")
        };
        let done = page.entries.is_empty();
        after = page.entries.last().map(|e| e.seq).or(after);
        all.extend(page.entries);
        if done {
            return all;
        }
    }
}

/// Sends `sig` to process `pid`.
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
    nix::sys::signal::kill(pid, sig).unwrap();
}

/// The value of metric `name` at the replica serving metrics at `addr`.
pub async fn metric(addr: &str, name: &str) -> u64 {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut conn, b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut conn, &mut text).await.unwrap();
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} is reported:\n{text}"))
}

/// Runs the `kith` CLI as a user of `home` against `node`; its stdout, or a
/// failure with its stderr.
pub async fn cli_ok(home: &str, node: &str, args: &[&str]) -> String {
    let out = kith().env("KITH_HOME", home).arg("--node").arg(node).args(args).output().await;
    let out = out.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kith {args:?} failed:\n{err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
