//! Prosody's side: the self-hosted XMPP server people run, from Debian's
//! `prosody` package, with its message archive (`mod_mam`, and
//! `mod_muc_mam` for group chat) in SQLite (`lua-dbi-sqlite3`), which
//! commits, with an fsync, every archived message. One server: XMPP has
//! no replication, so Prosody stores each message once where kith and etcd
//! store it on three replicas.
//!
//! The load is the same shapes as kith's: 64 users each sending 64-byte
//! 1:1 chat messages one at a time to the next user (online, so each is
//! routed, delivered and archived in both users' archives); one user
//! sending one message after the other; a group chat room (MUC) with 100
//! occupants receiving what 8 other occupants send. A message counts as
//! acknowledged when the server answers the stream-management request sent
//! right after it (see `xmpp.rs`).

use super::free_port;
use super::xmpp::{Session, DOMAIN};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The group chat service's domain.
const MUC: &str = "conference.localhost";
/// Occupants sending into the fan-out room at once (kith's count).
const FAN_OUT_SENDERS: usize = 8;

/// One Prosody process.
pub struct ProsodyServer {
    child: Child,
    /// Its client-to-server port on 127.0.0.1.
    pub port: u16,
}

impl ProsodyServer {
    /// Writes a configuration into `dir`, starts `prosody` in the
    /// foreground and waits until it accepts a connection.
    pub async fn start(prosody: &Path, dir: &Path) -> Result<ProsodyServer> {
        let port = free_port()?;
        std::fs::create_dir_all(dir.join("data"))?;
        let config = dir.join("prosody.cfg.lua");
        std::fs::write(&config, configuration(dir, port))?;
        let log = std::fs::File::create(dir.join("stdout.log"))?;
        let child = Command::new(prosody)
            .arg("--config")
            .arg(&config)
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting prosody")?;
        let mut server = ProsodyServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        let log = dir.join("prosody.log");
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!("prosody exited ({status}) before listening (see {})", log.display());
            }
            if Instant::now() > deadline {
                bail!("prosody never listened (see {})", log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(server)
    }

    /// The server's process id.
    pub fn pids(&self) -> Vec<u32> {
        self.child.id().into_iter().collect()
    }
}

/// Prosody's configuration: client connections in the clear on loopback
/// (TLS is off for every system here), in-band registration open to
/// 127.0.0.1, every message archived, no server-to-server.
fn configuration(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        r#"pidfile = "{d}/prosody.pid"
data_path = "{d}/data"
log = {{ warn = "{d}/prosody.log" }}
certificates = "{d}"
-- The benchmark may run as root (CI does); the server's files are in {d}.
run_as_root = true
modules_enabled = {{ "roster"; "saslauth"; "disco"; "register"; "mam"; "smacks"; "ping" }}
modules_disabled = {{ "s2s"; "offline" }}
c2s_ports = {{ {port} }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
allow_registration = true
authentication = "internal_plain"
storage = "sql"
sql = {{ driver = "SQLite3", database = "{d}/prosody.sqlite" }}
archive_expires_after = "never"
default_archive_policy = true
VirtualHost "{DOMAIN}"
Component "{MUC}" "muc"
  modules_enabled = {{ "muc_mam" }}
  muc_room_locking = false
  -- A room's archive is deleted with the room, and a room that is not
  -- persistent is destroyed when its last occupant leaves.
  muc_room_default_persistent = true
  muc_log_by_default = true
  muc_log_all_rooms = true
"#
    )
}

/// `n` registered, logged-in, available users named `{prefix}{i}`.
pub async fn users(server: &ProsodyServer, prefix: &str, n: usize) -> Result<Vec<Session>> {
    let mut users = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = Session::register_and_login(server.port, &format!("{prefix}{i}")).await?;
        s.send("<presence/>").await?;
        users.push(s);
    }
    Ok(users)
}

/// A 64-byte chat message to `to`'s bare JID.
fn chat(to: &str) -> String {
    format!("<message type='chat' to='{to}@{DOMAIN}'><body>{}</body></message>", "m".repeat(64))
}

/// User `i` of `prefix` sends, one message at a time, to user `i + 1` for
/// `duration`; the messages acknowledged per second.
pub async fn throughput(
    users: Vec<Session>,
    prefix: &str,
    duration: Duration,
) -> Result<(f64, Vec<Session>)> {
    let n = users.len();
    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = users
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            let (acked, message) = (acked.clone(), chat(&format!("{prefix}{}", (i + 1) % n)));
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    s.send_acked(&message).await?;
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(s)
            })
        })
        .collect();
    let mut users = Vec::with_capacity(n);
    for t in tasks {
        users.push(t.await??);
    }
    Ok((acked.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(), users))
}

/// The first user sends `n` messages to the second one after the other
/// (the second reading them meanwhile); each one's time to acknowledgement.
pub async fn latencies(users: &mut Vec<Session>, prefix: &str, n: usize) -> Result<Vec<Duration>> {
    if users.len() < 2 {
        bail!("the sequential phase needs two users");
    }
    let mut receiver = users.remove(1);
    let reading = tokio::spawn(async move { while receiver.element().await.is_ok() {} });
    let message = chat(&format!("{prefix}1"));
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        users[0].send_acked(&message).await?;
        out.push(t.elapsed());
    }
    reading.abort();
    Ok(out)
}

/// Joins `s` to the fan-out room as `nick` and waits for its own presence.
async fn join(s: &mut Session, nick: &str) -> Result<()> {
    s.send(&format!(
        "<presence to='fanout@{MUC}/{nick}'><x xmlns='http://jabber.org/protocol/muc'>\
         <history maxstanzas='0'/></x></presence>"
    ))
    .await?;
    loop {
        let e = s.element().await?;
        if e.starts_with("<presence") && e.contains("code='110'") {
            return Ok(());
        }
        if e.starts_with("<presence") && e.contains("type='error'") {
            bail!("joining the room as {nick}: {e}");
        }
    }
}

/// Group fan-out: `subscribers` occupants of one room receive what
/// `FAN_OUT_SENDERS` other occupants send into it (`messages` between
/// them, each sender one at a time); messages delivered to the
/// subscribers per second, from the first send until each has them all.
pub async fn fan_out(server: &ProsodyServer, subscribers: usize, messages: u64) -> Result<f64> {
    let mut senders = Vec::new();
    for i in 0..FAN_OUT_SENDERS {
        let mut s = Session::register_and_login(server.port, &format!("sender{i}")).await?;
        join(&mut s, &format!("sender{i}")).await?;
        senders.push(s);
    }
    let delivered = Arc::new(AtomicU64::new(0));
    let mut receiving = Vec::new();
    for i in 0..subscribers {
        let mut s = Session::register_and_login(server.port, &format!("follower{i}")).await?;
        join(&mut s, &format!("follower{i}")).await?;
        let delivered = delivered.clone();
        receiving.push(tokio::spawn(async move {
            let mut got = 0;
            while got < messages {
                let e = s.element().await?;
                if e.starts_with("<message")
                    && e.contains("type='groupchat'")
                    && e.contains("<body>")
                {
                    got += 1;
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        }));
    }
    let started = Instant::now();
    let message = format!(
        "<message type='groupchat' to='fanout@{MUC}'><body>{}</body></message>",
        "m".repeat(64)
    );
    let sending: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            let message = message.clone();
            let share = super::share(messages, FAN_OUT_SENDERS, i);
            tokio::spawn(async move {
                for _ in 0..share {
                    s.send_acked(&message).await?;
                }
                anyhow::Ok(s)
            })
        })
        .collect();
    let mut senders = Vec::new();
    for t in sending {
        senders.push(t.await??);
    }
    for r in receiving {
        tokio::time::timeout(Duration::from_secs(120), r)
            .await
            .context("deliveries stalled")???;
    }
    drop(senders);
    Ok(delivered.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// Users sending the open-loop load at once (kith's count).
const OPEN_LOOP_SENDERS: usize = super::kith_side::OPEN_LOOP_SENDERS;

/// A user sending open-loop chat messages to one recipient.
struct OpenSender(Session);

impl super::open_loop::OpenLoopSender for OpenSender {
    async fn send(&mut self, i: u64) -> Result<()> {
        let message =
            format!("<message type='chat' to='openrecv0@{DOMAIN}'><body>{i:064}</body></message>");
        self.0.send_acked(&message).await
    }
}

/// The open-loop row: `OPEN_LOOP_SENDERS` users send `rate_per_s` chat
/// messages a second for `seconds` to one online user. Each message's time
/// to acknowledgement and to delivery.
pub async fn open_loop(
    server: &ProsodyServer,
    rate_per_s: u64,
    seconds: u64,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let mut senders = Vec::new();
    for s in users(server, "opensend", OPEN_LOOP_SENDERS).await? {
        senders.push(OpenSender(s));
    }
    let mut receiver = users(server, "openrecv", 1).await?.remove(0);
    let schedule = super::open_loop::Schedule::new(rate_per_s, seconds);
    let following = {
        let schedule = schedule.clone();
        tokio::spawn(async move {
            let mut delivered = Vec::with_capacity(schedule.count() as usize);
            while (delivered.len() as u64) < schedule.count() {
                let e = receiver.element().await?;
                let now = Instant::now();
                let Some(body) = e.split_once("<body>").and_then(|(_, b)| b.split_once("</body>"))
                else {
                    continue;
                };
                let i = body.0.parse::<u64>().context("a message not of the load")?;
                delivered.extend(schedule.since_start(i, now));
            }
            anyhow::Ok(delivered)
        })
    };
    let (acked, _senders) = super::open_loop::run(schedule, senders).await?;
    let delivered = tokio::time::timeout(Duration::from_secs(30), following)
        .await
        .context("deliveries stalled")???;
    Ok((acked, delivered))
}
