//! The file workload: three more clients, when a seed draws it. The room's
//! owner and a member send files into a room (uploading through the core's
//! `Offer` and `Upload`, a majority of replicas asked at once, then a file
//! message), send some contents again,
//! delete some, and fetch each other's (now and then "crashing" mid-way and
//! resuming from their store's saved progress). An outsider, who never
//! joins, asks replicas for every file it hears of and must get nothing.
//! After the heal the owner fetches every file whose message stands, from
//! the replicas alone; the checkers get the outcomes.

mod fetching;
mod file_world;
mod offer_server;
mod sending;
mod uploading;

pub use file_world::{files_room, FileCounts, FileWorld, SentFile};

use crate::chunk_wire;
use crate::client::{client_secret, submit, ClientCtx, Conn};
use bytes::Bytes;
use kith_core::im::identity::Identity;
use kith_core::im::protocol::{ImError, Operation, Visibility};
use kith_core::rng::SeededRng;
use kith_core::testing::blob_disk::SimBlobStore;
use kith_core::testing::disk::DiskConfig;
use kith_core::testing::file_observation::FileObservation;
use kith_core::testing::violation::Violation;
use kith_core::time::Instant;
use offer_server::{serve_offer, Offered};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The file workload's clients (`FileRole`: one of each).
pub const FILE_CLIENTS: usize = 3;
/// How long the owner may take to fetch every standing file after the heal
/// (well inside the liveness phase; 400 seeds took at most 0.6 s).
const FINAL_FETCHES_WITHIN: Duration = Duration::from_secs(10);
/// How long a file message may wait for its answer (the content on a
/// majority) before the client gives up.
const SEND_PATIENCE: Duration = Duration::from_secs(15);
/// How long an upload may take nothing from the client before it gives
/// up (the real client's is two minutes; a simulated run lasts seconds).
const STORE_STALL: Duration = Duration::from_secs(15);

/// What a file client does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileRole {
    /// Creates the room, sends, deletes, fetches; fetches everything after
    /// the heal.
    Owner,
    /// Joins the room, sends, deletes, fetches.
    Member,
    /// Never joins; asks for every file and must get nothing.
    Outsider,
}

/// One file client's process.
struct FileClient {
    ctx: ClientCtx,
    conn: Conn,
    rng: SeededRng,
    offer: Offered,
    answers: mpsc::Receiver<(u64, Bytes)>,
    blobs: SimBlobStore,
    /// Bumped by every simulated crash, so a previous life's answers are
    /// not taken for this one's.
    lives: u64,
    /// Group bytes the offer has served, all uploads.
    served: Arc<AtomicU64>,
    /// Uploads begun (their helpers' ports follow from it).
    uploads: u64,
}

/// Runs a file client until the simulation ends.
pub async fn run_file_client(ctx: ClientCtx, role: FileRole) {
    let addr = SocketAddr::new(crate::world::client_ip(ctx.index), crate::client::CLIENT_PORT);
    let Ok(endpoint) = madsim::net::Endpoint::bind(addr).await else { return };
    let endpoint = Arc::new(endpoint);
    ctx.world.lock().files.client_addrs.insert(ctx.identity.user(), addr);
    let offer = Offered::default();
    let (answers_tx, answers) = mpsc::channel(256);
    let chunks = chunk_wire::receive(endpoint.clone());
    let served = Arc::new(AtomicU64::new(0));
    madsim::task::spawn(serve_offer(
        ctx.world.clone(),
        endpoint.clone(),
        (offer.clone(), served.clone()),
        chunks,
        answers_tx,
    ));
    let responses = crate::world::receive(endpoint.clone(), crate::world::TAG_CLIENT);
    let targets = ctx.replicas();
    let known = targets.iter().map(|id| Some(*id)).collect();
    let session = kith_core::session::ClientSession::new(
        known,
        ctx.index,
        ctx.seed ^ 0x5e55_1011,
        crate::client::session_config(),
    );
    let conn = Conn { endpoint, responses, session, targets, pinned: false };
    let rng = SeededRng::new(ctx.seed);
    let blobs = SimBlobStore::new(DiskConfig::default());
    let mut client =
        FileClient { ctx, conn, rng, offer, answers, blobs, lives: 0, served, uploads: 0 };
    client.run(role).await;
}

impl FileClient {
    /// The outsider writes to a chat client, or asks it to be a contact
    /// (blocked or not: it cannot tell).
    async fn bother(&mut self) {
        if self.ctx.clients == 0 || !self.rng.chance(0.3) {
            return;
        }
        let seed = self.ctx.world.lock().seed;
        let target = self.rng.range(0, self.ctx.clients as u64) as usize;
        let op = crate::contacts::stranger_op(&mut self.rng, seed, target);
        let _ = submit(&self.ctx, &mut self.conn, &mut self.rng, op).await;
    }

    async fn run(&mut self, role: FileRole) {
        self.set_idle(false);
        self.join(role).await;
        while self.ctx.active.load(Ordering::Relaxed) {
            let pause = self.rng.range(100, 400);
            madsim::time::sleep(Duration::from_millis(pause)).await;
            if role == FileRole::Outsider {
                self.snoop().await;
                self.bother().await;
                continue;
            }
            match self.rng.range(0, 100) {
                0..=39 => self.send_new().await,
                40..=54 => self.send_again().await,
                55..=69 => self.delete().await,
                _ => self.fetch_one().await,
            }
        }
        self.ctx.world.lock().files.finished += 1;
        if role == FileRole::Owner {
            // Every send answered first, so the list of files is final.
            while self.ctx.world.lock().files.finished < FILE_CLIENTS {
                madsim::time::sleep(Duration::from_millis(50)).await;
            }
            self.fetch_all().await;
        }
        self.set_idle(true);
    }

    fn set_idle(&self, idle: bool) {
        self.ctx.history.lock().expect("single-threaded").idle = idle;
    }

    fn fail(&self, invariant: &'static str, detail: String) {
        self.ctx.world.lock().fail(Violation { invariant, detail, at: Instant::ZERO });
    }

    fn observe(&self, observation: FileObservation<'_>) {
        let mut w = self.ctx.world.lock();
        if let Err(v) = w.checker.on_file(observation) {
            w.fail(v);
        }
    }

    /// Registers; the owner creates the (private) room and invites the
    /// member, who joins once it can. The outsider stays outside.
    async fn join(&mut self, role: FileRole) {
        let name = format!("filer{}", self.ctx.index);
        let _ =
            submit(&self.ctx, &mut self.conn, &mut self.rng, Operation::Register { name }).await;
        let room = files_room();
        let steps = match role {
            FileRole::Owner => {
                let member = self.ctx.index + 1;
                let seed = self.ctx.world.lock().seed;
                let user = Identity::from_secret(client_secret(seed, member)).user();
                vec![
                    Operation::CreateRoom { name: "files".into(), visibility: Visibility::Private },
                    Operation::Invite { room, user },
                ]
            }
            FileRole::Member => vec![Operation::Join { room }],
            FileRole::Outsider => {
                self.ctx.world.lock().files.outsider = Some(self.ctx.identity.user());
                return;
            }
        };
        for op in steps {
            // Until it is done: the invitee may ask before the room exists
            // or before the invitation (and the invitation may come before
            // the invitee registered).
            while self.ctx.active.load(Ordering::Relaxed) {
                let result = submit(&self.ctx, &mut self.conn, &mut self.rng, op.clone()).await;
                if result.is_ok()
                    || matches!(result, Err(ImError::AlreadyMember | ImError::RoomExists(_)))
                {
                    break;
                }
                madsim::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
