//! The client side: what the `kith` command uses to talk to one replica.
//!
//! A [`Client`] dials one replica and keeps its swarm running in a task.
//! The core's client session (`kith_core::session`) decides where each
//! request goes and when it is resent (the same rules the simulated clients
//! follow); this file dials, moves frames and keeps time. Commands are
//! signed once and resent unchanged, so a leader change or a lost answer
//! never turns into a lost or doubled message.

use crate::files::chunk_stream;
use crate::files::fetch::{fetch, FetchError, Fetched};
use crate::files::local_files::LocalFiles;
use crate::key_file::KeyFile;
use crate::net::behaviour::{
    build_swarm, BehaviourEvent, SwarmOptions, LIVE_PROTOCOL, SESSION_PROTOCOL,
};
use crate::net::codec::{read_frame, write_frame};
use crate::net::read_budget::HeldFrame;
use crate::net::session_link::{Fallback, LinkTo, Pending, SessionLink};
use crate::storage::BlobStore;
use futures::StreamExt;
use kith_core::files::download::Progress;
use kith_core::files::FileId;
use kith_core::im::identity::Identity;
use kith_core::im::protocol::{Operation, QueryKind, QueryResult, SignedCommand};
use kith_core::limits;
use kith_core::session::{
    CallError, ClientSession, Reply, SessionConfig, SessionInput, SessionOutput, StoreReply,
};
use kith_core::time::{DriverClock, Instant};
use kith_core::wire::client_protocol::{
    ClientRequest, CommandOutcome, LiveFrame, RoomFrom, SubscribeFrame,
};
use kith_core::wire::replica_protocol::{self, AdminRequest, AdminResponse};
use libp2p::request_response::{Event, Message, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Attempts to open a live stream and send its subscribe frame.
const SUBSCRIBE_TRIES: u32 = 5;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The replica could not be reached.
    #[error("cannot reach the replica at {addr}: {reason}. Is `kith node` (or `kith dev`) running there?")]
    Connect {
        /// The address dialed.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// No answer in time (the cluster may have no leader).
    #[error("no answer within {0:?}; the cluster may have lost its majority")]
    Timeout(Duration),
    /// The command was refused before ordering.
    #[error("refused: {0}")]
    Refused(String),
    /// The replica did not understand us, or we did not understand it.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The connection failed mid-request (the replica may have crashed).
    #[error("connection lost: {0}")]
    Transport(String),
}

impl From<CallError> for ClientError {
    fn from(e: CallError) -> ClientError {
        match e {
            CallError::Refused(e) => ClientError::Refused(e.to_string()),
            other => ClientError::Protocol(other.to_string()),
        }
    }
}

/// Where one attempt's answer (or why there is none) arrives.
type Answer = oneshot::Receiver<Result<Vec<u8>, String>>;

enum Call {
    Client(Vec<u8>, Pending),
    Admin(Vec<u8>, Pending),
}

/// A connection to one replica.
pub struct Client {
    key: KeyFile,
    identity: Identity,
    /// Replicas to try, in order; `current` is the one connected.
    addrs: Vec<Multiaddr>,
    current: usize,
    replica: PeerId,
    calls: mpsc::Sender<Call>,
    /// Client requests go on the replica's session stream.
    link: SessionLink,
    control: libp2p_stream::Control,
    session: ClientSession,
    /// The session's clock: time since the client started.
    started: tokio::time::Instant,
    /// How long a call keeps retrying.
    pub patience: Duration,
    /// What this client serves while uploading.
    files: Arc<LocalFiles>,
}

impl Client {
    /// Dials the replica at `addr` as the user (or operator) whose key is `key`.
    pub async fn connect(key: &KeyFile, addr: Multiaddr) -> Result<Client, ClientError> {
        Client::connect_any(key, vec![addr]).await
    }

    /// Dials the first reachable replica of `addrs`. When a replica fails
    /// mid-call, the client moves on to the next one and resends the same
    /// request (commands keep their id, so this is safe).
    pub async fn connect_any(key: &KeyFile, addrs: Vec<Multiaddr>) -> Result<Client, ClientError> {
        let mut last = None;
        let files = Arc::new(LocalFiles::default());
        for i in 0..addrs.len() {
            match Client::connect_at(key, &addrs, i, &files).await {
                Ok(client) => return Ok(client),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Protocol("no replica address given".into())))
    }

    /// Dials `addrs[i]`, serving `files` on the connection.
    async fn connect_at(
        key: &KeyFile,
        addrs: &[Multiaddr],
        i: usize,
        files: &Arc<LocalFiles>,
    ) -> Result<Client, ClientError> {
        let Dialed { replica, calls, link, control } =
            dial(key, addrs[i].clone(), addrs, files).await?;
        // A replica's Raft id follows from the PeerId its address names, so
        // leader hints can be followed to it.
        let targets = addrs
            .iter()
            .map(|a| crate::peer_ids::named_peer(a).map(|p| crate::peer_ids::node_id_of(&p)))
            .collect();
        // Command ids must be unique across runs: seed from the OS.
        let seed = uuid::Uuid::new_v4().as_u64_pair().0;
        let session = ClientSession::new(targets, i, seed, SessionConfig::default());
        Ok(Client {
            key: key.clone(),
            identity: key.identity(),
            addrs: addrs.to_vec(),
            current: i,
            replica,
            calls,
            link,
            control,
            session,
            started: tokio::time::Instant::now(),
            patience: Duration::from_secs(30),
            files: files.clone(),
        })
    }

    /// How to open another connection, to the replica `step` places after
    /// this one in its list, that serves the same offered files: several
    /// replicas can then store one upload at once, each fetching from this
    /// client. Owned, so the connection can be opened beside this one's
    /// calls.
    pub fn companion(&self, step: usize) -> Companion {
        Companion {
            key: self.key.clone(),
            addrs: self.addrs.clone(),
            at: (self.current + step) % self.addrs.len().max(1),
            files: self.files.clone(),
        }
    }

    /// The replica addresses this client was given.
    pub fn addr_count(&self) -> usize {
        self.addrs.len()
    }

    /// Connects to the next replica in the list that answers.
    async fn fail_over(&mut self) -> Result<(), ClientError> {
        let mut last = None;
        for step in 1..=self.addrs.len() {
            let i = (self.current + step) % self.addrs.len();
            match dial(&self.key, self.addrs[i].clone(), &self.addrs, &self.files).await {
                Ok(dialed) => {
                    tracing::info!(addr = %self.addrs[i], "connected to another replica");
                    self.current = i;
                    self.use_connection(dialed);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one address"))
    }

    /// Connects to the replica at `target` in the list, unless connected.
    async fn connect_to(&mut self, target: usize) -> Result<(), ClientError> {
        if target == self.current {
            return Ok(());
        }
        let dialed = dial(&self.key, self.addrs[target].clone(), &self.addrs, &self.files).await?;
        tracing::info!(addr = %self.addrs[target], "connected to another replica");
        self.current = target;
        self.use_connection(dialed);
        Ok(())
    }

    fn use_connection(&mut self, dialed: Dialed) {
        let Dialed { replica, calls, link, control } = dialed;
        (self.replica, self.calls, self.link, self.control) = (replica, calls, link, control);
    }

    fn now(&self) -> Instant {
        DriverClock::new(0, 0).at(self.started.elapsed())
    }

    /// The replica's PeerId.
    pub fn replica(&self) -> PeerId {
        self.replica
    }

    /// Signs `op` with a fresh command id.
    pub fn sign(&mut self, op: Operation) -> SignedCommand {
        self.session.sign(&self.identity, now_ms(), op)
    }

    /// Signs `op` once and submits it until its outcome is known.
    pub async fn submit(&mut self, op: Operation) -> Result<CommandOutcome, ClientError> {
        let command = self.sign(op);
        self.submit_signed(&command).await
    }

    /// Submits an already signed command until its outcome is known.
    pub async fn submit_signed(
        &mut self,
        command: &SignedCommand,
    ) -> Result<CommandOutcome, ClientError> {
        match self.call(ClientRequest::Submit(command.clone())).await? {
            Reply::Applied(outcome) => Ok(outcome),
            other => {
                Err(ClientError::Protocol(format!("an answer for another request: {other:?}")))
            }
        }
    }

    /// Asks the replica to store `file`, which this client must be
    /// offering ([`Self::local_files`]); ask again while it is `Storing`.
    pub async fn store_file(&mut self, file: FileId) -> Result<StoreReply, ClientError> {
        match self.call(ClientRequest::StoreFile(file)).await? {
            Reply::Store(reply) => Ok(reply),
            other => {
                Err(ClientError::Protocol(format!("an answer for another request: {other:?}")))
            }
        }
    }

    /// A linearizable query, retried across leader changes.
    pub async fn query(&mut self, kind: QueryKind) -> Result<QueryResult, ClientError> {
        match self.call(ClientRequest::Query(kind)).await? {
            Reply::Answer(result) => Ok(result),
            other => {
                Err(ClientError::Protocol(format!("an answer for another request: {other:?}")))
            }
        }
    }

    /// Runs one call through the session: the request is resent, wherever
    /// the session says, until a final answer, read by the session for the
    /// request it answers.
    pub async fn call(&mut self, request: ClientRequest) -> Result<Reply, ClientError> {
        let now = self.now();
        // A call whose future was dropped half-way left its session busy.
        self.session.abandon();
        self.session.begin_within(now, request, Some(self.patience));
        let mut in_flight: Option<(u64, Answer)> = None;
        loop {
            while let Some(output) = self.session.poll_output() {
                match output {
                    SessionOutput::Send { target, request_id, frame } => {
                        in_flight = None;
                        let sent = match self.connect_to(target).await {
                            Ok(()) => self.send_frame(frame).await,
                            Err(e) => Err(e.to_string()),
                        };
                        match sent {
                            Ok(rx) => in_flight = Some((request_id, rx)),
                            Err(e) => {
                                tracing::debug!(error = %e, "request not sent; trying another replica");
                                let now = self.now();
                                self.session.handle_input(now, SessionInput::Failed { request_id });
                            }
                        }
                    }
                    SessionOutput::Finished(reply) => {
                        tracing::debug!(?reply, "answer");
                        return reply.map_err(ClientError::from);
                    }
                    SessionOutput::GaveUp { patience } => {
                        return Err(ClientError::Timeout(patience))
                    }
                    _ => {}
                }
            }
            let wake = self.session.poll_timeout().map_or(Duration::from_secs(1), |at| {
                DriverClock::new(0, 0).elapsed_at(at).saturating_sub(self.started.elapsed())
            });
            let answer = match in_flight.as_mut() {
                Some((_, rx)) => tokio::time::timeout(wake, rx).await.ok(),
                None => {
                    tokio::time::sleep(wake).await;
                    None
                }
            };
            let now = self.now();
            match (answer, in_flight.take()) {
                (Some(Ok(Ok(frame))), _) => {
                    self.session.handle_input(now, SessionInput::Answered { frame: frame.into() })
                }
                (Some(_), Some((request_id, _))) => {
                    self.session.handle_input(now, SessionInput::Failed { request_id })
                }
                (None, still) => {
                    in_flight = still;
                    self.session.handle_timeout(now)
                }
                (Some(_), None) => self.session.handle_timeout(now),
            }
        }
    }

    /// Hands one client frame to the session stream; the receiver gets
    /// the answer's bytes, or why there will be none.
    async fn send_frame(&mut self, frame: Vec<u8>) -> Result<Answer, String> {
        let (tx, rx) = Pending::waiter();
        self.link.send(frame, tx).await?;
        Ok(rx)
    }

    /// An operator request on `/kith/admin/1`, retried while the cluster
    /// has no leader.
    pub async fn admin(&mut self, request: AdminRequest) -> Result<AdminResponse, ClientError> {
        let deadline = tokio::time::Instant::now() + self.patience;
        loop {
            let (tx, rx) = Pending::waiter();
            let frame = replica_protocol::encode(&request);
            let sent = self.calls.send(Call::Admin(frame, tx)).await.is_ok();
            let answer = match rx.await {
                Ok(answer) if sent => answer,
                _ => Err("connection closed".to_string()),
            };
            match answer.map(|b| replica_protocol::decode::<AdminResponse>(&b)) {
                Ok(Ok(AdminResponse::Retry(why))) => tracing::debug!(%why, "retrying"),
                Ok(Ok(r)) => return Ok(r),
                Ok(Err(e)) => return Err(ClientError::Protocol(e.to_string())),
                Err(e) => {
                    tracing::debug!(error = %e, "admin request failed; trying another replica");
                    let _ = self.fail_over().await;
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ClientError::Timeout(self.patience));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Follows `rooms` from their cursors (a change cursor of 0 resumes
    /// every change to the entries up to the sequence cursor); frames
    /// arrive on the receiver until the stream ends.
    pub async fn subscribe(
        &mut self,
        rooms: Vec<RoomFrom>,
    ) -> Result<mpsc::Receiver<LiveFrame>, ClientError> {
        let frame = SubscribeFrame { rooms }.encode();
        // libp2p-stream drops an inbound stream when the replica's acceptor
        // has not yet taken the one before (its queue holds one), which a
        // busy replica shows as this stream failing at once: open another.
        let mut tries = 0;
        let mut stream = loop {
            tries += 1;
            let opened = async {
                let mut stream = self.control.open_stream(self.replica, LIVE_PROTOCOL).await?;
                write_frame(&mut stream, &frame).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(stream)
            };
            match opened.await {
                Ok(stream) => break stream,
                Err(e) if tries >= SUBSCRIBE_TRIES => {
                    return Err(ClientError::Transport(e.to_string()))
                }
                Err(e) => {
                    tracing::debug!(error = %e, tries, "live stream failed at once; opening another");
                    tokio::time::sleep(Duration::from_millis(10 << tries)).await;
                }
            }
        };
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Ok(bytes) = read_frame(&mut stream, limits::FRAME_BYTES_MAX).await {
                let Ok(frame) = LiveFrame::decode(&bytes) else { return };
                if tx.send(frame).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    /// The signing identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The files this client serves to replicas while it uploads them.
    pub fn local_files(&self) -> &Arc<LocalFiles> {
        &self.files
    }

    /// The replicas this client knows by PeerId: the one it is connected
    /// to and every one its addresses name.
    pub fn replicas(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> =
            self.addrs.iter().filter_map(crate::peer_ids::named_peer).collect();
        peers.push(self.replica);
        peers.sort();
        peers.dedup();
        peers
    }

    /// Fetches `file` into `store` from every replica this client knows
    /// (resuming what an earlier fetch left there); `progress` hears each
    /// step. The replicas check that this user may read it.
    pub async fn fetch_file(
        &self,
        store: &BlobStore,
        file: FileId,
        progress: impl FnMut(Progress),
    ) -> Result<Fetched, FetchError> {
        fetch(&self.control, store, file, &self.replicas(), progress).await
    }
}

/// Another connection a client may open: see [`Client::companion`].
pub struct Companion {
    key: KeyFile,
    addrs: Vec<Multiaddr>,
    at: usize,
    files: Arc<LocalFiles>,
}

impl Companion {
    /// Dials the replica it names.
    pub async fn connect(&self) -> Result<Client, ClientError> {
        Client::connect_at(&self.key, &self.addrs, self.at, &self.files).await
    }
}

/// A connection to one replica, and the ways to use it.
struct Dialed {
    replica: PeerId,
    /// The connection task: request-response requests.
    calls: mpsc::Sender<Call>,
    link: SessionLink,
    control: libp2p_stream::Control,
}

/// Connects to one replica and starts the task that drives the swarm. The
/// swarm learns every replica address that names its peer (a fetch may
/// ask any of them) and serves `files` to them.
async fn dial(
    key: &KeyFile,
    addr: Multiaddr,
    all: &[Multiaddr],
    files: &Arc<LocalFiles>,
) -> Result<Dialed, ClientError> {
    let connect_err = |reason: String| ClientError::Connect { addr: addr.clone(), reason };
    let options =
        SwarmOptions { request_timeout: Some(Duration::from_secs(10)), ..SwarmOptions::default() };
    let mut swarm = build_swarm(key.keypair(), &options).map_err(|e| connect_err(e.to_string()))?;
    for known in all {
        if let Some(peer) = crate::peer_ids::named_peer(known) {
            swarm.add_peer_address(peer, known.clone());
        }
    }
    files.serve(chunk_stream::accept(swarm.behaviour().stream.new_control()));
    swarm.dial(addr.clone()).map_err(|e| connect_err(e.to_string()))?;
    // The replica is the peer the address names last: through a relay, the
    // first connection is to the relay, which may itself be a replica of
    // another cluster.
    let named = crate::peer_ids::named_peer(&addr);
    let replica = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. }
                    if named.is_none_or(|p| p == peer_id) =>
                {
                    return Ok(peer_id)
                }
                SwarmEvent::OutgoingConnectionError { peer_id, error, .. }
                    if named.is_none() || peer_id == named =>
                {
                    return Err(error.to_string())
                }
                _ => {}
            }
        }
    })
    .await
    .map_err(|_| connect_err("timed out".into()))?
    .map_err(connect_err)?;
    let control = swarm.behaviour().stream.new_control();
    let link_control = swarm.behaviour().stream.new_control();
    let (calls, rx) = mpsc::channel(64);
    tokio::spawn(drive(swarm, replica, addr, rx));
    let link = session_link(link_control, replica, calls.clone());
    Ok(Dialed { replica, calls, link, control })
}

/// The session stream to `replica`, falling back on `/kith/client/1`
/// through the connection task when the replica has none.
fn session_link(
    control: libp2p_stream::Control,
    replica: PeerId,
    calls: mpsc::Sender<Call>,
) -> SessionLink {
    let fallback =
        Fallback { to: calls, wrap: Box::new(|(frame, answer)| Call::Client(frame, answer)) };
    let to = LinkTo {
        peer: replica,
        protocol: SESSION_PROTOCOL,
        in_flight_max: limits::SESSION_REQUESTS_IN_FLIGHT_MAX,
    };
    SessionLink::start(control, to, 64, fallback)
}

/// Milliseconds since the UNIX epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

async fn drive(
    mut swarm: libp2p::Swarm<crate::net::behaviour::Behaviour>,
    replica: PeerId,
    addr: Multiaddr,
    mut calls: mpsc::Receiver<Call>,
) {
    // The address goes with every request: request-response forgets an
    // address after a failed dial, and a dropped connection is redialed.
    let mut pending: BTreeMap<OutboundRequestId, Pending> = BTreeMap::new();
    loop {
        tokio::select! {
            call = calls.recv() => match call {
                Some(Call::Client(frame, tx)) => {
                    let to = vec![addr.clone()];
                    let id = swarm.behaviour_mut().client.send_request_with_addresses(&replica, HeldFrame::new(frame), to);
                    pending.insert(id, tx);
                }
                Some(Call::Admin(frame, tx)) => {
                    let to = vec![addr.clone()];
                    let id = swarm.behaviour_mut().admin.send_request_with_addresses(&replica, HeldFrame::new(frame), to);
                    pending.insert(id, tx);
                }
                None => return,
            },
            event = swarm.select_next_some() => {
                let event = match event {
                    SwarmEvent::Behaviour(BehaviourEvent::Client(e)) => e,
                    SwarmEvent::Behaviour(BehaviourEvent::Admin(e)) => e,
                    _ => continue,
                };
                match event {
                    Event::Message { message: Message::Response { request_id, response }, .. } => {
                        if let Some(tx) = pending.remove(&request_id) {
                            tx.send(Ok(response));
                        }
                    }
                    Event::OutboundFailure { request_id, error, .. } => {
                        if let Some(tx) = pending.remove(&request_id) {
                            tx.send(Err(error.to_string()));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}
