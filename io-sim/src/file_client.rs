//! The file workload: three more clients, when a seed draws it. The room's
//! owner and a member send files into a room (uploading through the core's
//! `Offer` and `StoreFile`, then a file message), send some contents again,
//! delete some, and fetch each other's (now and then "crashing" mid-way and
//! resuming from their store's saved progress). An outsider, who never
//! joins, asks replicas for every file it hears of and must get nothing.
//! After the heal the owner fetches every file whose message stands, from
//! the replicas alone; the checkers get the outcomes.

use crate::chunk_wire::{self, ChunkDatagram};
use crate::client::{call, client_secret, submit, submit_within, ClientCtx, Conn, READ_PATIENCE};
use crate::fetches::Fetches;
use crate::world::{replica_addr, World};
use bytes::Bytes;
use kith_core::files::{outboard_of, ChunkResponse, FileId, Geometry, Offer, OfferDecision};
use kith_core::ids::{LogIndex, NodeId};
use kith_core::im::identity::{Identity, UserId};
use kith_core::im::protocol::{FileInfo, ImError, Operation, Receipt, RoomId, Target, Visibility};
use kith_core::rng::SeededRng;
use kith_core::session::{Reply, StoreReply};
use kith_core::testing::blob_disk::SimBlobStore;
use kith_core::testing::disk::DiskConfig;
use kith_core::testing::file_observation::FileObservation;
use kith_core::testing::violation::Violation;
use kith_core::time::Instant;
use kith_core::wire::chunk_protocol::{ChunkAnswer, ChunkRequest};
use kith_core::wire::client_protocol::ClientRequest;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The room the file clients share.
pub fn files_room() -> RoomId {
    RoomId::Group("files".into())
}

/// The file workload's clients (`FileRole`: one of each).
pub const FILE_CLIENTS: usize = 3;
/// How long the owner may take to fetch every standing file after the heal
/// (well inside the liveness phase; 400 seeds took at most 0.6 s).
const FINAL_FETCHES_WITHIN: Duration = Duration::from_secs(10);
/// How long a file message may wait for its answer (the content on a
/// majority) before the client gives up.
const SEND_PATIENCE: Duration = Duration::from_secs(15);
/// How long an upload may wait to be stored before the client gives up.
const STORE_PATIENCE: Duration = Duration::from_secs(15);

/// What the file workload shares through the world.
#[derive(Debug)]
pub struct FileWorld {
    /// Draws the chunk wire's faults and the blob stores' latencies (a
    /// stream of its own, so seeds without files replay as before).
    pub rng: SeededRng,
    /// Probability that a chunk answer has a bit flipped on the way.
    pub corrupt: f64,
    /// Answers corrupted so far.
    pub corrupted: u64,
    /// Where each file client listens, for replicas fetching an upload.
    pub client_addrs: BTreeMap<UserId, SocketAddr>,
    /// Every acknowledged file message.
    pub sent: Vec<SentFile>,
    /// What the owner fetched after the heal, once it has.
    pub retrieved: Option<Vec<(FileId, Result<(), String>)>>,
    /// File clients whose workload has ended (their last send answered).
    pub finished: usize,
    /// Downloads clients completed, verified.
    pub fetched: u64,
    /// Stored copies a fault rotted.
    pub rotted: u64,
}

/// What the file workload did in one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileCounts {
    /// File messages acknowledged.
    pub sent: u64,
    /// Downloads clients completed, verified.
    pub fetched: u64,
    /// Chunk answers corrupted on the wire.
    pub corrupted: u64,
    /// Stored copies rotted on a replica's disk.
    pub rotted: u64,
}

impl std::fmt::Display for FileCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "files {} sent {} fetched {} answers corrupted {} copies rotted",
            self.sent, self.fetched, self.corrupted, self.rotted
        )
    }
}

impl FileWorld {
    /// No files yet.
    pub fn new(seed: u64) -> FileWorld {
        FileWorld {
            rng: SeededRng::new(seed ^ 0x6669_6c65_7321),
            corrupt: 0.0,
            corrupted: 0,
            client_addrs: BTreeMap::new(),
            sent: Vec::new(),
            retrieved: None,
            finished: 0,
            fetched: 0,
            rotted: 0,
        }
    }

    /// What the workload did so far.
    pub fn counts(&self) -> FileCounts {
        FileCounts {
            sent: self.sent.len() as u64,
            fetched: self.fetched,
            corrupted: self.corrupted,
            rotted: self.rotted,
        }
    }

    /// Contents some acknowledged message refers to whose deletion nobody
    /// asked for, each once.
    fn standing(&self) -> Vec<FileId> {
        let mut files: Vec<FileId> =
            self.sent.iter().filter(|s| !s.deleting).map(|s| s.info.id).collect();
        files.sort();
        files.dedup();
        files
    }
}

/// An acknowledged file message.
#[derive(Clone, Debug)]
pub struct SentFile {
    /// What it carries.
    pub info: FileInfo,
    /// Its room and position.
    pub room: RoomId,
    /// Its position.
    pub seq: u64,
    /// The client that sent it.
    pub by: usize,
    /// Its deletion was submitted.
    pub deleting: bool,
}

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

/// A content a client offers while uploading it.
struct Content {
    data: Vec<u8>,
    outboard: Vec<u8>,
}

type Offered = Arc<Mutex<Offer<Arc<Content>>>>;

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
    madsim::task::spawn(serve_offer(
        ctx.world.clone(),
        endpoint.clone(),
        offer.clone(),
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
    let mut client = FileClient { ctx, conn, rng, offer, answers, blobs, lives: 0 };
    client.run(role).await;
}

/// Answers replicas' chunk requests from the offer, and passes answers to
/// this client's own requests on.
async fn serve_offer(
    world: World,
    endpoint: Arc<madsim::net::Endpoint>,
    offer: Offered,
    mut chunks: mpsc::Receiver<ChunkDatagram>,
    answers: mpsc::Sender<(u64, Bytes)>,
) {
    while let Some(datagram) = chunks.recv().await {
        let (from, correlation, user, frame) = match datagram {
            ChunkDatagram::Answer { correlation, frame } => {
                // Full: the loop is busy elsewhere; the request times out.
                let _ = answers.try_send((correlation, frame));
                continue;
            }
            ChunkDatagram::Request { from, correlation, user, frame } => {
                (from, correlation, user, frame)
            }
        };
        let answer = match offer.lock().expect("single-threaded").answer(&frame) {
            OfferDecision::Answer(answer) => answer,
            OfferDecision::Serve { local, groups } => {
                let file = ChunkRequest::decode(&frame).map(|r| r.file);
                match (file, encode(local, &frame, groups)) {
                    (Ok(file), Ok(response)) => {
                        let mut w = world.lock();
                        let applied = LogIndex(0);
                        let served = FileObservation::Served {
                            node: None,
                            applied,
                            to: user,
                            file,
                            response: &response,
                        };
                        if let Err(v) = w.checker.on_file(served) {
                            w.fail(v);
                        }
                        ChunkAnswer::Groups(response)
                    }
                    _ => ChunkAnswer::NotHere,
                }
            }
        };
        chunk_wire::send_answer(&world, &endpoint, from, correlation, &answer.encode());
    }
}

/// Encodes `groups` of an offered content.
fn encode(local: &Content, frame: &[u8], groups: Range<u64>) -> Result<ChunkResponse, String> {
    let file = ChunkRequest::decode(frame).map_err(|e| e.to_string())?.file;
    let geometry = Geometry::new(file).map_err(|e| e.to_string())?;
    ChunkResponse::encode(&geometry, groups, &local.data[..], &local.outboard[..])
        .map_err(|e| e.to_string())
}

impl FileClient {
    async fn run(&mut self, role: FileRole) {
        self.set_idle(false);
        self.join(role).await;
        while self.ctx.active.load(Ordering::Relaxed) {
            let pause = self.rng.range(100, 400);
            madsim::time::sleep(Duration::from_millis(pause)).await;
            if role == FileRole::Outsider {
                self.snoop().await;
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
            FileRole::Outsider => return,
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

    /// Makes a new content, uploads it and sends it.
    async fn send_new(&mut self) {
        let sizes = [1, 16_383, 16_384, 16_385, 3 * 16_384 + 7];
        let size = match self.rng.range(0, 8) {
            i @ 0..=4 => sizes[i as usize],
            _ => self.rng.range(1, 70_000),
        };
        let data: Vec<u8> = (0..size).map(|_| self.rng.next_u64() as u8).collect();
        let mut outboard = Vec::new();
        let Ok(file) = outboard_of(size, &data[..], &mut outboard) else {
            return self.fail("files made", format!("no hash tree for {size} bytes"));
        };
        self.observe(FileObservation::Created { file, content: &data });
        let n = self.rng.next_u64() % 1000;
        let info = FileInfo {
            id: file,
            name: format!("f{n}.bin"),
            media_type: "application/octet-stream".into(),
        };
        let content = Arc::new(Content { data, outboard });
        if self.offer.lock().expect("single-threaded").add(file, content).is_err() {
            return;
        }
        if self.store(file).await {
            self.send_file(info).await;
        }
        // Sent (stored on a majority) or given up: the sender goes away.
        self.offer.lock().expect("single-threaded").remove(file);
    }

    /// Asks a replica to store `file` until it is stored; false if it gave
    /// up (out of patience, or the run's workload ended).
    async fn store(&mut self, file: FileId) -> bool {
        let until = madsim::time::Instant::now() + STORE_PATIENCE;
        while madsim::time::Instant::now() < until && self.ctx.active.load(Ordering::Relaxed) {
            let request = ClientRequest::StoreFile(file);
            let answer = call(&self.ctx, &mut self.conn, request, Some(READ_PATIENCE)).await;
            match answer {
                Some(Ok(Reply::Store(StoreReply::Stored))) => return true,
                // Still fetching, not heard, or failed (asking again
                // starts over): ask again in a while.
                None
                | Some(Ok(Reply::Store(StoreReply::Storing)))
                | Some(Ok(Reply::Store(StoreReply::Refused(ImError::StoreFailed { .. })))) => {
                    madsim::time::sleep(Duration::from_millis(200)).await;
                }
                other => {
                    let detail = format!("client {}: storing {file}: {other:?}", self.ctx.index);
                    self.fail("uploads answered", detail);
                    return false;
                }
            }
        }
        false
    }

    /// Sends a file message for a stored content.
    async fn send_file(&mut self, info: FileInfo) {
        let file = info.id;
        self.observe(FileObservation::SendSubmitted { file });
        let op = Operation::SendFile {
            to: Target::Room(files_room()),
            file: info.clone(),
            caption: String::new(),
        };
        // A content lost before it reached a majority (its only holder's
        // disk gone) is never stored: the send is never answered, and its
        // client gives up without knowing.
        let (ctx, conn, rng) = (&self.ctx, &mut self.conn, &mut self.rng);
        let result = submit_within(ctx, conn, rng, op, Some(SEND_PATIENCE)).await;
        if let Some(Ok(Receipt::Appended { room, seq })) = result {
            self.observe(FileObservation::Sent { file, room: &room, seq });
            let by = self.ctx.index;
            let sent = SentFile { info, room, seq, by, deleting: false };
            self.ctx.world.lock().files.sent.push(sent);
        }
    }

    /// This client's standing file messages.
    fn mine(&self) -> Vec<SentFile> {
        let w = self.ctx.world.lock();
        w.files.sent.iter().filter(|s| s.by == self.ctx.index && !s.deleting).cloned().collect()
    }

    /// Sends a content again as a new message (two messages then share it).
    async fn send_again(&mut self) {
        let mine = self.mine();
        if mine.is_empty() {
            return self.send_new().await;
        }
        let pick = mine[self.rng.range(0, mine.len() as u64) as usize].clone();
        self.send_file(pick.info).await;
    }

    /// Deletes one of this client's file messages; if no message stands
    /// for its content any more, asks a replica for it (the checkers
    /// object if a replica that applied the deletion serves it).
    async fn delete(&mut self) {
        let mine = self.mine();
        if mine.is_empty() {
            return;
        }
        let pick = mine[self.rng.range(0, mine.len() as u64) as usize].clone();
        {
            let mut w = self.ctx.world.lock();
            let entry = w.files.sent.iter_mut().find(|s| s.room == pick.room && s.seq == pick.seq);
            entry.expect("listed").deleting = true;
        }
        self.observe(FileObservation::DeleteSubmitted { room: &pick.room, seq: pick.seq });
        let op = Operation::Delete { room: pick.room.clone(), seq: pick.seq };
        if submit(&self.ctx, &mut self.conn, &mut self.rng, op).await.is_err() {
            return;
        }
        // Every replica that has applied this far has applied the deletion.
        let applied = self.applied_max();
        self.observe(FileObservation::Deleted { room: &pick.room, seq: pick.seq, applied });
        if !self.ctx.world.lock().files.standing().contains(&pick.info.id) {
            let file = pick.info.id;
            let replicas = self.ctx.replicas();
            let to = replicas[self.rng.range(0, replicas.len() as u64) as usize];
            self.ask(to, file, 0..1);
        }
    }

    /// The greatest index any running replica has applied.
    fn applied_max(&self) -> LogIndex {
        let w = self.ctx.world.lock();
        let services = w.replicas.values().filter_map(|s| s.service.clone());
        let applied =
            services.map(|s| s.lock().expect("single-threaded").node().status().applied).max();
        applied.unwrap_or(LogIndex(0))
    }

    /// Sends one chunk request outside any download; returns its
    /// correlation.
    fn ask(&mut self, to: NodeId, file: FileId, groups: Range<u64>) -> u64 {
        let correlation = self.rng.next_u64() | (1 << 63);
        let request = ChunkRequest {
            file,
            first_group: groups.start,
            group_count: groups.end - groups.start,
        };
        let user = self.ctx.identity.user();
        let (world, endpoint) = (&self.ctx.world, &self.conn.endpoint);
        chunk_wire::send_request(
            world,
            endpoint,
            replica_addr(to),
            correlation,
            user,
            &request.encode(),
        );
        correlation
    }

    /// Fetches a file some message stands for, sometimes crashing mid-way.
    async fn fetch_one(&mut self) {
        let standing = self.ctx.world.lock().files.standing();
        if standing.is_empty() {
            return;
        }
        let file = standing[self.rng.range(0, standing.len() as u64) as usize];
        let crash = self.rng.chance(0.3);
        // During the faults a fetch may fail (a partition, every holder
        // down); only the one after the heal must succeed.
        let _ = self.fetch(file, crash, Duration::from_secs(10)).await;
    }

    /// After the heal: every content a standing message refers to, fetched
    /// from the replicas and verified; the outcomes go to the world.
    async fn fetch_all(&mut self) {
        let standing = self.ctx.world.lock().files.standing();
        let until = madsim::time::Instant::now() + FINAL_FETCHES_WITHIN;
        let mut fetched = Vec::new();
        for file in standing {
            let left = until.saturating_duration_since(madsim::time::Instant::now());
            let result = self.fetch(file, false, left).await;
            fetched.push((file, result));
        }
        self.ctx.world.lock().files.retrieved = Some(fetched);
    }

    /// Fetches `file` from the replicas into this client's store, within
    /// `patience`; with `crash`, the process "dies" once mid-way (what was
    /// not synced is lost) and resumes from the saved progress.
    async fn fetch(&mut self, file: FileId, crash: bool, patience: Duration) -> Result<(), String> {
        let until = madsim::time::Instant::now() + patience;
        let mut crash_at = crash
            .then(|| madsim::time::Instant::now() + Duration::from_millis(self.rng.range(5, 300)));
        let mut fetches = self.restart(file)?;
        loop {
            if let Some(result) = self.pump(&mut fetches) {
                self.blobs.remove(file);
                if result.is_ok() {
                    self.ctx.world.lock().files.fetched += 1;
                }
                return result;
            }
            let now = madsim::time::Instant::now();
            if now >= until {
                self.blobs.remove(file);
                return Err(format!("not fetched within {patience:?}"));
            }
            if crash_at.is_some_and(|at| at <= now) {
                crash_at = None;
                self.blobs.crash(&mut self.rng);
                fetches = self.restart(file)?;
                continue;
            }
            let wake = self.fetch_wake(&fetches).into_iter().chain(crash_at).chain([until]).min();
            let wake = wake.unwrap_or(until);
            tokio::select! {
                Some((correlation, frame)) = self.answers.recv() => {
                    fetches.answered(self.ctx.now(), correlation, &frame);
                }
                () = madsim::time::sleep_until(wake) => {
                    let now = self.ctx.now();
                    for landed in self.blobs.complete_due(now) {
                        fetches.completed(now, landed);
                    }
                    fetches.expire(now);
                }
            }
        }
    }

    /// A new life's download of `file`, resumed from the store.
    fn restart(&mut self, file: FileId) -> Result<Fetches<NodeId>, String> {
        self.lives += 1;
        let mut fetches = Fetches::new(self.lives);
        fetches.start(self.ctx.now(), &mut self.blobs, file, self.ctx.replicas())?;
        Ok(fetches)
    }

    /// Carries out what the download asks; its result once it ended.
    fn pump(&mut self, fetches: &mut Fetches<NodeId>) -> Option<Result<(), String>> {
        let step = fetches.pump(self.ctx.now(), &mut self.blobs, &mut self.rng);
        for (file, offset, data) in &step.written {
            self.observe(FileObservation::Written { file: *file, offset: *offset, data });
        }
        let user = self.ctx.identity.user();
        for (to, correlation, frame) in &step.requests {
            let (world, endpoint) = (&self.ctx.world, &self.conn.endpoint);
            chunk_wire::send_request(world, endpoint, replica_addr(*to), *correlation, user, frame);
        }
        step.done.into_iter().next().map(|(_, result)| result)
    }

    /// When the download next needs the loop, on the simulation's clock.
    fn fetch_wake(&self, fetches: &Fetches<NodeId>) -> Option<madsim::time::Instant> {
        let (timer, deadline) = fetches.next_wake();
        let landing = self.blobs.next_completion();
        let core = [timer, landing].into_iter().flatten().min();
        let core = core.map(|t| self.ctx.epoch + Duration::from_micros(t.as_micros()));
        [core, deadline].into_iter().flatten().min()
    }

    /// The outsider asks a replica for a file it never could read; an
    /// answer with any of it is a violation.
    async fn snoop(&mut self) {
        let files: Vec<FileId> =
            self.ctx.world.lock().files.sent.iter().map(|s| s.info.id).collect();
        if files.is_empty() {
            return;
        }
        let file = files[self.rng.range(0, files.len() as u64) as usize];
        let replicas = self.ctx.replicas();
        let to = replicas[self.rng.range(0, replicas.len() as u64) as usize];
        let correlation = self.ask(to, file, 0..1);
        let until = madsim::time::Instant::now() + Duration::from_secs(1);
        loop {
            let left = until.saturating_duration_since(madsim::time::Instant::now());
            let Ok(Some((answered, frame))) =
                madsim::time::timeout(left, self.answers.recv()).await
            else {
                return;
            };
            if answered != correlation {
                continue;
            }
            if let Ok(ChunkAnswer::Groups(_)) = ChunkAnswer::decode(&frame) {
                let detail =
                    format!("n{to} served {file} to client {}, not a member", self.ctx.index);
                self.fail("non-members refused", detail);
            }
            return;
        }
    }
}
