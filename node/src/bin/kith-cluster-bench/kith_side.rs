//! kith's side: three `kith node` processes (fsync on, as shipped) and
//! clients of the real client library, each with its own key and
//! connection, sending signed 64-byte messages.

use super::free_port;
use anyhow::{bail, Context, Result};
use kith_core::im::protocol::{Operation, RoomId, Target, Visibility};
use kith_core::wire::replica_protocol::{AdminRequest, AdminResponse, ReplicaRecord};
use kith_io_tokio::client::Client;
use kith_io_tokio::key_file::KeyFile;
use libp2p::{Multiaddr, PeerId};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Rooms the clients' messages are spread over.
const ROOMS: usize = 16;
/// Members sending into the fan-out room at once.
const FAN_OUT_SENDERS: usize = 8;
/// Users holding the fan-out room's live subscriptions.
const FAN_OUT_CLIENTS: usize = 20;

/// Three replica processes.
pub struct KithCluster {
    children: Vec<Child>,
    /// Each replica's dial address (with its PeerId).
    pub addrs: Vec<Multiaddr>,
}

async fn operator(key: &KeyFile, addr: &Multiaddr) -> Result<Client> {
    for _ in 0..100 {
        if let Ok(c) = Client::connect(key, addr.clone()).await {
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("cannot reach the replica at {addr}")
}

impl KithCluster {
    /// Starts three replicas of the `kith` binary in `dir`: the first
    /// bootstraps, the others join and are added as voters.
    pub async fn start(kith: &Path, dir: &Path) -> Result<KithCluster> {
        let op_key = KeyFile::create(&dir.join("operator.key"))?;
        let mut cluster = KithCluster { children: Vec::new(), addrs: Vec::new() };
        let mut peers: Vec<(PeerId, Multiaddr)> = Vec::new();
        for i in 0..3 {
            let d = dir.join(format!("replica-{i}"));
            std::fs::create_dir_all(&d)?;
            let peer = KeyFile::create(&d.join("node.key"))?.peer_id();
            let listen: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", free_port()?).parse()?;
            peers.push((peer, listen.clone()));
            let mut cmd = Command::new(kith);
            cmd.arg("node").arg("--dir").arg(&d).arg("--listen").arg(listen.to_string());
            cmd.arg("--admin").arg(op_key.peer_id().to_string());
            match cluster.addrs.first() {
                None => cmd.arg("--bootstrap"),
                Some(first) => cmd.arg("--join").arg(first.to_string()),
            };
            let log = std::fs::File::create(d.join("replica.log"))?;
            cmd.env("RUST_LOG", std::env::var("KITH_BENCH_REPLICA_LOG").unwrap_or("warn".into()))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            cluster.children.push(cmd.kill_on_drop(true).spawn().context("starting kith node")?);
            let addr = listen.with(libp2p::multiaddr::Protocol::P2p(peer));
            cluster.addrs.push(addr);
            if i == 0 {
                wait_for_leader(&op_key, &cluster.addrs[0]).await?;
            } else {
                let record =
                    ReplicaRecord { peer: peer.to_bytes(), addrs: vec![peers[i].1.to_vec()] };
                let mut op = operator(&op_key, &cluster.addrs[0]).await?;
                match op.admin(AdminRequest::Add { replica: record, learner: false }).await? {
                    AdminResponse::Changed(_) => {}
                    other => bail!("adding replica {i}: {other:?}"),
                }
            }
        }
        Ok(cluster)
    }

    /// The replicas' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(Child::id).collect()
    }

    /// A client with a new key `name` in `dir`, connected first to replica
    /// `i` (modulo three), so that clients spread over the replicas.
    async fn connect(&self, dir: &Path, name: &str, i: usize) -> Result<Client> {
        let key = KeyFile::create(&dir.join(format!("{name}.key")))?;
        let mut addrs = self.addrs.clone();
        let first = i % addrs.len();
        addrs.rotate_left(first);
        Ok(Client::connect_any(&key, addrs).await?)
    }
}

async fn wait_for_leader(key: &KeyFile, addr: &Multiaddr) -> Result<()> {
    for _ in 0..300 {
        if let Ok(mut op) = operator(key, addr).await {
            if let Ok(AdminResponse::Status(s)) = op.admin(AdminRequest::Status).await {
                if s.leader.is_some() {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the first replica never led")
}

/// One bench user: a client and the room it writes to.
pub struct User {
    client: Client,
    room: RoomId,
}

/// `n` registered users, each connected to a replica of its own (spread
/// over the three), the first `ROOMS` each creating a public room that the
/// others join.
pub async fn users(cluster: &KithCluster, dir: &Path, n: usize) -> Result<Vec<User>> {
    let mut users = Vec::new();
    for i in 0..n {
        let mut client = cluster.connect(dir, &format!("user-{i}"), i).await?;
        let room = format!("room{}", i % ROOMS);
        enrol(&mut client, &format!("bench{i}"), &room, i < ROOMS).await?;
        users.push(User { client, room: RoomId::Group(room) });
    }
    Ok(users)
}

/// Registers the client's user as `name` and puts it in the public room
/// `room`, which the first member (`creates`) creates and the others join.
async fn enrol(client: &mut Client, name: &str, room: &str, creates: bool) -> Result<()> {
    ok(client.submit(Operation::Register { name: name.into() }).await?)?;
    let op = if creates {
        Operation::CreateRoom { name: room.into(), visibility: Visibility::Public }
    } else {
        Operation::Join { room: RoomId::Group(room.into()) }
    };
    ok(client.submit(op).await?)
}

fn ok(outcome: kith_core::wire::client_protocol::CommandOutcome) -> Result<()> {
    outcome.result.map(|_| ()).map_err(|e| anyhow::anyhow!("refused: {e}"))
}

/// A 64-byte message.
fn text() -> String {
    "m".repeat(64)
}

/// Every user sends, one message at a time, for `duration`; the messages
/// acknowledged (committed and applied) per second.
pub async fn throughput(users: Vec<User>, duration: Duration) -> Result<(f64, Vec<User>)> {
    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = users
        .into_iter()
        .map(|mut u| {
            let acked = acked.clone();
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let op = Operation::Send { to: Target::Room(u.room.clone()), text: text() };
                    ok(u.client.submit(op).await?)?;
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(u)
            })
        })
        .collect();
    let mut users = Vec::new();
    for t in tasks {
        users.push(t.await??);
    }
    let rate = acked.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    Ok((rate, users))
}

/// One user sends `n` messages one after the other; each one's time from
/// submit to acknowledgement.
pub async fn latencies(user: &mut User, n: usize) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let op = Operation::Send { to: Target::Room(user.room.clone()), text: text() };
        let t = Instant::now();
        ok(user.client.submit(op).await?)?;
        out.push(t.elapsed());
    }
    Ok(out)
}

/// Follows `room` live from its start, passing each message to `take`
/// until it returns false. A stream that ends early (a busy replica may
/// drop a new stream: see `Client::subscribe`) is opened again after the
/// last entry received, as any client resumes.
async fn follow(
    client: &tokio::sync::Mutex<Client>,
    room: &RoomId,
    mut take: impl FnMut(&kith_core::im::protocol::Message) -> bool,
) -> Result<()> {
    use kith_core::im::protocol::EntryKind;
    use kith_core::wire::client_protocol::{LiveFrame, RoomFrom};
    const REOPENS_MAX: usize = 10;
    let mut after = 0;
    for _ in 0..=REOPENS_MAX {
        let from = RoomFrom::new(room.clone(), after, 0);
        let mut frames = client.lock().await.subscribe(vec![from]).await?;
        while let Some(frame) = frames.recv().await {
            if let LiveFrame::Entry { entry, .. } = frame {
                after = entry.seq;
                if let EntryKind::Message(m) = &entry.kind {
                    if !take(m) {
                        return Ok(());
                    }
                }
            }
        }
    }
    bail!("the subscription ended {} times", REOPENS_MAX + 1)
}

/// The `kith` binary beside this one (`cargo build --release -p kith-node`
/// builds both).
pub fn binary() -> Result<PathBuf> {
    let kith = std::env::current_exe()?.with_file_name("kith");
    if !kith.exists() {
        bail!("{} is missing: build it with `cargo build --release -p kith-node`", kith.display());
    }
    Ok(kith)
}

/// Group fan-out: `subscribers` live subscriptions follow one room (held by
/// `FAN_OUT_CLIENTS` users spread over the replicas: the replicas admit 32
/// connections per source address, and every client here is 127.0.0.1)
/// while `FAN_OUT_SENDERS` members send `messages` into it between them,
/// each one at a time; entries delivered per second, from the first send
/// until every subscription has received every message.
pub async fn fan_out(
    cluster: &KithCluster,
    dir: &Path,
    subscribers: usize,
    messages: u64,
) -> Result<f64> {
    let room = RoomId::Group("fanout".into());
    let mut senders = Vec::new();
    for i in 0..FAN_OUT_SENDERS {
        let key = KeyFile::create(&dir.join(format!("fanout-sender-{i}.key")))?;
        let mut sender = Client::connect_any(&key, cluster.addrs.clone()).await?;
        enrol(&mut sender, &format!("sender{i}"), "fanout", i == 0).await?;
        senders.push(sender);
    }
    let delivered = Arc::new(AtomicU64::new(0));
    let mut followers = Vec::new();
    let mut clients = Vec::new();
    let holders = subscribers.clamp(1, FAN_OUT_CLIENTS);
    for i in 0..holders {
        let mut client = cluster.connect(dir, &format!("follower-{i}"), i).await?;
        ok(client.submit(Operation::Register { name: format!("follower{i}") }).await?)?;
        ok(client.submit(Operation::Join { room: room.clone() }).await?)?;
        // This user's share of the subscriptions.
        let share = super::share(subscribers as u64, holders, i);
        let client = Arc::new(tokio::sync::Mutex::new(client));
        for _ in 0..share {
            let (delivered, client, room) = (delivered.clone(), client.clone(), room.clone());
            followers.push(tokio::spawn(async move {
                let mut got = 0;
                follow(&client, &room, |_| {
                    got += 1;
                    delivered.fetch_add(1, Ordering::Relaxed);
                    got < messages
                })
                .await
                .with_context(|| format!("follower {i} after {got} messages"))
            }));
        }
        clients.push(client);
    }
    let started = Instant::now();
    let sending: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, mut sender)| {
            let room = room.clone();
            let share = super::share(messages, FAN_OUT_SENDERS, i);
            tokio::spawn(async move {
                for _ in 0..share {
                    let op = Operation::Send { to: Target::Room(room.clone()), text: text() };
                    ok(sender.submit(op).await?)?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for s in sending {
        s.await??;
    }
    for f in followers {
        tokio::time::timeout(Duration::from_secs(120), f)
            .await
            .context("deliveries stalled")???;
    }
    drop(clients);
    Ok(delivered.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// Users sending the open-loop load at once, each with one message in
/// flight: enough that a sender is rarely still busy when its next message
/// is due (1,000 messages a second leave each 48 ms), and few enough to fit
/// two replicas' admission of 32 connections from one address.
pub const OPEN_LOOP_SENDERS: usize = 48;

/// A user sending open-loop messages into one room.
struct OpenSender {
    client: Client,
    room: RoomId,
}

impl super::open_loop::OpenLoopSender for OpenSender {
    async fn send(&mut self, i: u64) -> Result<()> {
        // The text is the message's number, 64 bytes long.
        let op = Operation::Send { to: Target::Room(self.room.clone()), text: format!("{i:064}") };
        ok(self.client.submit(op).await?)
    }
}

/// The open-loop row: `OPEN_LOOP_SENDERS` users connected to the first two
/// replicas send `rate_per_s` messages a second for `seconds` into one
/// room, while a member connected to the third follows it live. Each
/// message's time to acknowledgement and to delivery.
pub async fn open_loop(
    cluster: &KithCluster,
    dir: &Path,
    rate_per_s: u64,
    seconds: u64,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let room = RoomId::Group("openloop".into());
    let mut senders = Vec::new();
    for i in 0..OPEN_LOOP_SENDERS {
        let mut client = cluster.connect(dir, &format!("open-{i}"), i % 2).await?;
        enrol(&mut client, &format!("open{i}"), "openloop", i == 0).await?;
        senders.push(OpenSender { client, room: room.clone() });
    }
    let used: Vec<PeerId> = senders.iter().map(|s| s.client.replica()).collect();
    let other = cluster
        .addrs
        .iter()
        .find(|a| kith_io_tokio::peer_ids::named_peer(a).is_some_and(|p| !used.contains(&p)))
        .context("the senders are spread over every replica: none is left for the subscriber")?;
    let key = KeyFile::create(&dir.join("open-subscriber.key"))?;
    let mut subscriber = Client::connect(&key, other.clone()).await?;
    ok(subscriber.submit(Operation::Register { name: "opensub".into() }).await?)?;
    ok(subscriber.submit(Operation::Join { room: room.clone() }).await?)?;
    let subscriber = Arc::new(tokio::sync::Mutex::new(subscriber));
    let schedule = super::open_loop::Schedule::new(rate_per_s, seconds);
    let following = {
        let (schedule, subscriber) = (schedule.clone(), subscriber.clone());
        tokio::spawn(async move {
            let mut delivered = Vec::with_capacity(schedule.count() as usize);
            let mut foreign = None;
            follow(&subscriber, &room, |m| {
                let now = Instant::now();
                match m.text.parse::<u64>() {
                    Ok(i) => delivered.extend(schedule.since_start(i, now)),
                    Err(_) => foreign = Some(m.text.clone()),
                }
                foreign.is_none() && (delivered.len() as u64) < schedule.count()
            })
            .await?;
            if let Some(text) = foreign {
                bail!("a message not of the load: {text:?}");
            }
            anyhow::Ok(delivered)
        })
    };
    let (acked, _senders) = super::open_loop::run(schedule, senders).await?;
    let delivered = tokio::time::timeout(Duration::from_secs(30), following)
        .await
        .context("deliveries stalled")???;
    drop(subscriber);
    Ok((acked, delivered))
}
