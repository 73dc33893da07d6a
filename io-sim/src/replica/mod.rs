//! One replica process under madsim: the replica service's run loop
//! (`kith_core::replica`) over a madsim endpoint, the world's simulated
//! disk and a drifting clock. Every decision is the service's; this file
//! moves datagrams, keeps time, reports completions, and feeds the
//! checkers what it carries out.

use crate::chunk_wire::{self, ChunkDatagram};
use crate::datagram::INCARNATION_SHIFT;
use crate::fetches::Fetches;
use crate::live_stream::{self, Stream, Streams};
use crate::operator::{ADMIN_ANSWER, ADMIN_REQUEST};
use crate::world::{
    replica_addr, replica_at, World, TAG_ADMIN, TAG_CLIENT, TAG_GOSSIP, TAG_LIVE, TAG_PEER,
    TAG_PEER_RPC,
};
use bytes::Bytes;
use kith_core::ids::NodeId;
use kith_core::im::identity::UserId;
use kith_core::limits;
use kith_core::raft::Role;
use kith_core::replica::{
    AskerId, FileSource, GossipTopic, OutboundId, ReplicaService, ServiceInput, ServiceOutput,
};
use kith_core::testing::violation::Violation;
use kith_core::time::{DriverClock, Instant};
use madsim::net::Endpoint;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Raft tick length inside the simulation.
pub const TICK: Duration = Duration::from_millis(10);
/// How long a request to another replica may go unanswered (a datagram or
/// its answer may be lost) before the service hears it failed.
const PEER_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Askers the driver remembers at once; the oldest is forgotten beyond it
/// (its client retries, as after a lost datagram).
const ASKERS_MAX: usize = 65_536;

/// A replica-to-replica request or answer, framed for a datagram: kind,
/// correlation id, then the replica-protocol frame.
const RPC_REQUEST: u8 = 0;
const RPC_ANSWER: u8 = 1;

/// Something that arrived on the endpoint.
enum Arrival {
    Raft(NodeId, Bytes),
    PeerRpc(NodeId, Bytes),
    Gossip(Bytes),
    Client(SocketAddr, Bytes),
    Live(SocketAddr, Bytes),
    Admin(SocketAddr, Bytes),
    Chunk(ChunkDatagram),
}

/// Where an answer goes.
#[derive(Clone, Copy)]
enum Reply {
    Client(SocketAddr),
    Replica(NodeId, u64),
    Operator(SocketAddr, u64),
    /// A chunk request: where, its correlation, who asked.
    Chunk(SocketAddr, u64, UserId),
}

/// The driver's bookkeeping between the service and the network.
struct Driver {
    id: NodeId,
    world: World,
    service: Arc<Mutex<ReplicaService>>,
    incarnation: u64,
    endpoint: Arc<Endpoint>,
    clock: Clock,
    askers: BTreeMap<AskerId, Reply>,
    next_asker: u64,
    outbound: BTreeMap<OutboundId, madsim::time::Instant>,
    /// Replicas this incarnation told the service about.
    vouched: BTreeSet<NodeId>,
    /// Live streams open, and those waiting for the service's answer.
    streams: Streams,
    opening: BTreeMap<AskerId, (SocketAddr, u64)>,
    /// File content being fetched into the slot's blob store.
    fetches: Fetches<FileSource>,
    /// This replica's key, which it asks for chunks as.
    me: UserId,
}

/// This replica's view of time: simulated time through its skewed clock.
#[derive(Clone, Copy)]
struct Clock {
    origin: madsim::time::Instant,
    map: DriverClock,
}

impl Clock {
    fn now(&self) -> Instant {
        self.map.at(self.origin.elapsed())
    }

    /// The simulated instant at which this clock reads `at`.
    fn deadline(&self, at: Instant) -> madsim::time::Instant {
        self.origin + self.map.elapsed_at(at)
    }
}

mod files;
mod start;

use start::{start, Start};

/// Runs replica `id` until its process is killed. `epoch` is the world's
/// start, so restarted replicas keep a continuous clock.
pub async fn run_replica(world: World, id: NodeId, epoch: madsim::time::Instant) {
    let endpoint = match Endpoint::bind(replica_addr(id)).await {
        Ok(ep) => Arc::new(ep),
        Err(e) => return fail(&world, id, "bind", e.to_string()),
    };
    // A supervisor restarts a replica whose disk could not be read.
    let mut driver = loop {
        match start(&world, id, epoch, endpoint.clone()) {
            Start::Running(driver) => break driver,
            Start::Unreadable => madsim::time::sleep(Duration::from_millis(200)).await,
            Start::Failed | Start::Stopped => return,
        }
    };
    let (tx, mut rx) = mpsc::channel::<Arrival>(1024);
    // madsim's recv is not cancellation safe: receive in dedicated tasks.
    for tag in [TAG_PEER, TAG_PEER_RPC, TAG_GOSSIP, TAG_CLIENT, TAG_LIVE, TAG_ADMIN] {
        let (ep, tx) = (endpoint.clone(), tx.clone());
        madsim::task::spawn(async move {
            let mut buf = vec![0u8; limits::FRAME_BYTES_MAX + 64];
            while let Ok((len, from)) = ep.recv_from(tag, &mut buf).await {
                let bytes = Bytes::copy_from_slice(&buf[..len]);
                let arrival = match (tag, replica_at(from)) {
                    (TAG_PEER, Some(peer)) => Arrival::Raft(peer, bytes),
                    (TAG_PEER_RPC, Some(peer)) => Arrival::PeerRpc(peer, bytes),
                    (TAG_GOSSIP, Some(_)) => Arrival::Gossip(bytes),
                    (TAG_PEER | TAG_PEER_RPC | TAG_GOSSIP, None) => continue,
                    (TAG_LIVE, _) => Arrival::Live(from, bytes),
                    (TAG_ADMIN, _) => Arrival::Admin(from, bytes),
                    _ => Arrival::Client(from, bytes),
                };
                if tx.send(arrival).await.is_err() {
                    return;
                }
            }
        });
    }
    let mut chunks = chunk_wire::receive(endpoint.clone());
    madsim::task::spawn(async move {
        while let Some(datagram) = chunks.recv().await {
            if tx.send(Arrival::Chunk(datagram)).await.is_err() {
                return;
            }
        }
    });
    loop {
        driver.flush().await;
        let wake = driver.next_wake();
        tokio::select! {
            biased;
            arrival = rx.recv() => match arrival {
                Some(a) => driver.arrive(a),
                None => return,
            },
            _ = madsim::time::sleep_until(wake) => driver.wake(),
        }
    }
}

fn fail(world: &World, id: NodeId, invariant: &'static str, detail: String) {
    world.lock().fail(Violation {
        invariant,
        detail: format!("node {id}: {detail}"),
        at: Instant::ZERO,
    });
}

impl Driver {
    fn service(&self) -> std::sync::MutexGuard<'_, ReplicaService> {
        self.service.lock().expect("single-threaded")
    }

    fn next_wake(&self) -> madsim::time::Instant {
        let timer = self.service().poll_timeout();
        let disk = self.world.lock().replicas[&self.id].disk.next_completion();
        let at = [timer, disk].into_iter().flatten().min();
        let wake = at.map_or_else(
            || madsim::time::Instant::now() + Duration::from_secs(3600),
            |t| self.clock.deadline(t),
        );
        let silent = self.streams.values().map(|s| s.heard + live_stream::SILENCE_MAX);
        let fetches = self.fetches_wake();
        let others = self.outbound.values().copied().chain(silent).chain(fetches);
        others.chain([wake]).min().unwrap_or(wake)
    }

    fn wake(&mut self) {
        let now = self.clock.now();
        let durable =
            self.world.lock().replicas.get_mut(&self.id).expect("exists").disk.complete_due(now);
        let real_now = madsim::time::Instant::now();
        let expired: Vec<OutboundId> =
            self.outbound.iter().filter(|(_, at)| **at <= real_now).map(|(id, _)| *id).collect();
        self.wake_fetches(now);
        let silent: Vec<(SocketAddr, u64)> = self
            .streams
            .iter()
            .filter(|(_, s)| s.heard + live_stream::SILENCE_MAX <= real_now)
            .map(|(k, _)| *k)
            .collect();
        let mut service = self.service.lock().expect("single-threaded");
        for key in silent {
            if let Some(stream) = self.streams.remove(&key) {
                let subscription = stream.subscription;
                service.handle_input(now, ServiceInput::SubscriberLeft { subscription });
            }
        }
        if let Some(up_to) = durable {
            service.handle_input(now, ServiceInput::Persisted { up_to });
        }
        for request in expired {
            self.outbound.remove(&request);
            service.handle_input(now, ServiceInput::PeerRequestFailed { request, sent: true });
        }
        if service.poll_timeout().is_some_and(|t| t <= now) {
            service.handle_timeout(now);
        }
    }

    fn arrive(&mut self, arrival: Arrival) {
        let now = self.clock.now();
        if let Arrival::Raft(from, _) | Arrival::PeerRpc(from, _) = &arrival {
            self.vouch(now, *from);
        }
        let input = match arrival {
            Arrival::Raft(from, frame) => ServiceInput::RaftFrameReceived { from, frame },
            Arrival::PeerRpc(from, bytes) => match self.peer_rpc(from, bytes) {
                Some(input) => input,
                None => return,
            },
            // Gossip datagrams: a topic byte, then the message.
            Arrival::Gossip(bytes) => {
                let Some(topic) = bytes.first().and_then(|t| GossipTopic::ALL.get(usize::from(*t)))
                else {
                    return;
                };
                ServiceInput::GossipReceived { topic: *topic, data: bytes.slice(1..) }
            }
            Arrival::Live(addr, bytes) => match self.live_datagram(addr, &bytes) {
                Some(input) => input,
                None => return,
            },
            // The sim's transport "authenticates" a client by prefixing its user id.
            Arrival::Client(addr, bytes) => {
                let Some((user, _)) = bytes.split_first_chunk::<32>() else { return };
                let user = Some(UserId(*user));
                let frame = bytes.slice(32..);
                let asker = self.asker(Reply::Client(addr));
                ServiceInput::ClientRequested { asker, user, frame }
            }
            // Admin datagrams: kind, correlation, the operator's user id, the frame.
            Arrival::Admin(addr, bytes) => {
                let Some((ADMIN_REQUEST, correlation, payload)) = crate::datagram::split(&bytes)
                else {
                    return;
                };
                let Some((user, _)) = payload.split_first_chunk::<32>() else { return };
                let operator = Some(UserId(*user));
                let frame = payload.slice(32..);
                let asker = self.asker(Reply::Operator(addr, correlation));
                ServiceInput::AdminRequested { asker, operator, frame }
            }
            Arrival::Chunk(datagram) => match self.chunk_arrival(now, datagram) {
                Some(input) => input,
                None => return,
            },
        };
        self.service().handle_input(now, input);
    }

    /// The simulation's directory is the operator's list of replicas (the
    /// real node learns its own from members): a replica on it is vouched
    /// for, as a member's directory would, the first time it is heard from.
    fn vouch(&mut self, now: Instant, from: NodeId) {
        if self.vouched.contains(&from) || !self.world.lock().serving().contains(&from) {
            return;
        }
        self.vouched.insert(from);
        let name = format!("n{from}");
        self.service().handle_input(now, ServiceInput::ReplicaVouched { id: from, name });
    }

    /// A live-stream datagram from a client: a new stream becomes a fact
    /// for the service; an acknowledgement moves the stream's window.
    fn live_datagram(&mut self, addr: SocketAddr, bytes: &Bytes) -> Option<ServiceInput> {
        let (kind, key, payload) = live_stream::split(bytes)?;
        match kind {
            live_stream::SUBSCRIBE if !self.streams.contains_key(&(addr, key)) => {
                let (user, _) = payload.split_first_chunk::<32>()?;
                let user = Some(UserId(*user));
                let frame = payload.slice(32..);
                self.next_asker += 1;
                let asker = AskerId(self.next_asker);
                self.opening.insert(asker, (addr, key));
                Some(ServiceInput::SubscribeRequested { asker, user, frame })
            }
            live_stream::ACK => {
                let (acked, _) = live_stream::number(&payload)?;
                let answer = match self.streams.get_mut(&(addr, key)) {
                    Some(stream) => {
                        stream.acked = stream.acked.max(acked.min(stream.next - 1));
                        stream.heard = madsim::time::Instant::now();
                        live_stream::datagram(
                            live_stream::HEARTBEAT,
                            key,
                            &[&stream.next.to_le_bytes()],
                        )
                    }
                    None => live_stream::datagram(live_stream::UNKNOWN, key, &[]),
                };
                self.send_later(addr, TAG_LIVE, answer);
                None
            }
            _ => None,
        }
    }

    /// Sends each open stream what the service has for it, as far as its
    /// window allows.
    fn pump_live(&mut self) {
        let mut service = self.service.lock().expect("single-threaded");
        for ((addr, key), stream) in &mut self.streams {
            while stream.has_room() {
                let Some(frame) = service.poll_live(stream.subscription) else { break };
                let number = stream.next.to_le_bytes();
                let datagram =
                    live_stream::datagram(live_stream::FRAME, *key, &[&number, &frame.encode()]);
                let (ep, to) = (self.endpoint.clone(), *addr);
                madsim::task::spawn(async move {
                    let _ = ep.send_to(to, TAG_LIVE, &datagram).await;
                });
                stream.next += 1;
            }
        }
    }

    /// Unframes a replica-to-replica datagram.
    fn peer_rpc(&mut self, from: NodeId, bytes: Bytes) -> Option<ServiceInput> {
        let (kind, correlation, frame) = crate::datagram::split(&bytes)?;
        match kind {
            RPC_REQUEST => {
                let asker = self.asker(Reply::Replica(from, correlation));
                Some(ServiceInput::PeerRequested { asker, from, frame })
            }
            RPC_ANSWER => {
                // An answer to an earlier incarnation's request (datagrams
                // outlive processes) must not pass for this one's.
                if correlation >> INCARNATION_SHIFT != self.incarnation {
                    return None;
                }
                let request = OutboundId(correlation & ((1 << INCARNATION_SHIFT) - 1));
                self.outbound.remove(&request)?;
                Some(ServiceInput::PeerAnswered { request, frame })
            }
            _ => None,
        }
    }

    fn asker(&mut self, reply: Reply) -> AskerId {
        self.next_asker += 1;
        if self.askers.len() >= ASKERS_MAX {
            self.askers.pop_first();
        }
        let id = AskerId(self.next_asker);
        self.askers.insert(id, reply);
        id
    }

    /// Carries out every output of the service, checking invariants as it goes.
    async fn flush(&mut self) {
        loop {
            loop {
                let output = self.service().poll_output();
                let Some(output) = output else { break };
                self.carry_out(output).await;
            }
            // A download that ended is a fact with outputs of its own.
            if !self.pump_fetches(self.clock.now()) {
                break;
            }
        }
        self.pump_live();
        let mut w = self.world.lock();
        let service = self.service();
        if let Err(v) = w.checker.on_status(service.node(), self.incarnation) {
            w.fail(v);
        }
    }

    async fn carry_out(&mut self, output: ServiceOutput) {
        let now = self.clock.now();
        let at = madsim::time::Instant::now().duration_since(self.clock.origin).as_micros() as u64;
        match output {
            ServiceOutput::Respond { asker, frame } => match self.askers.remove(&asker) {
                Some(Reply::Client(addr)) => self.send_later(addr, TAG_CLIENT, frame),
                Some(Reply::Operator(addr, correlation)) => {
                    let datagram = crate::datagram::datagram(ADMIN_ANSWER, correlation, &[&frame]);
                    self.send_later(addr, TAG_ADMIN, datagram)
                }
                Some(Reply::Replica(to, correlation)) => {
                    let datagram = crate::datagram::datagram(RPC_ANSWER, correlation, &[&frame]);
                    self.send_later(replica_addr(to), TAG_PEER_RPC, datagram)
                }
                Some(Reply::Chunk(to, correlation, _)) => {
                    chunk_wire::send_answer(&self.world, &self.endpoint, to, correlation, &frame)
                }
                None => {}
            },
            ServiceOutput::SendPeerRequest { to, request, frame } => {
                self.world.lock().forwards += 1;
                let deadline = madsim::time::Instant::now() + PEER_REQUEST_TIMEOUT;
                self.outbound.insert(request, deadline);
                let correlation = (self.incarnation << INCARNATION_SHIFT) | request.0;
                let datagram = crate::datagram::datagram(RPC_REQUEST, correlation, &[&frame]);
                self.send_later(replica_addr(to), TAG_PEER_RPC, datagram);
            }
            ServiceOutput::SendRaft { to, frame } => self.send_raft(at, to, frame).await,
            ServiceOutput::Publish { topic, data } => self.publish(topic, &data),
            ServiceOutput::Subscribed { asker, subscription } => {
                if let Some(key) = self.opening.remove(&asker) {
                    let heard = madsim::time::Instant::now();
                    self.streams.insert(key, Stream { subscription, next: 1, acked: 0, heard });
                }
            }
            ServiceOutput::LiveRefused { asker, frame } => {
                if let Some((addr, key)) = self.opening.remove(&asker) {
                    let one = 1u64.to_le_bytes();
                    let datagram = live_stream::datagram(live_stream::FRAME, key, &[&one, &frame]);
                    self.send_later(addr, TAG_LIVE, datagram);
                }
            }
            ServiceOutput::Persist { id, new_segment, bytes } => {
                let written = {
                    let mut w = self.world.lock();
                    w.trace(at, self.id, "persist", &bytes);
                    if let Err(v) = w.checker.on_persist(self.id, &bytes) {
                        w.fail(v);
                    }
                    let w = &mut *w;
                    let slot = w.replicas.get_mut(&self.id).expect("exists");
                    slot.disk.write(now, &mut w.rng, id, new_segment, bytes)
                };
                if let Err(full) = written {
                    let reason = full.to_string();
                    self.service().handle_input(now, ServiceInput::PersistFailed { id, reason });
                }
            }
            ServiceOutput::Applied { index, term, position, .. } => {
                let mut w = self.world.lock();
                w.applied_high = w.applied_high.max(index);
                let index_bytes = Bytes::copy_from_slice(&index.get().to_le_bytes());
                w.trace(at, self.id, "applied", &index_bytes);
                if let Err(v) =
                    w.checker.on_applied(self.id, self.incarnation, index, term, position)
                {
                    w.fail(v);
                }
            }
            ServiceOutput::MembershipChanged { membership, .. } => {
                let mut w = self.world.lock();
                if let Err(v) = w.checker.on_membership(self.id, self.incarnation, &membership) {
                    w.fail(v);
                }
            }
            ServiceOutput::RoleChanged { role: Role::Leader, term, .. } => {
                let mut w = self.world.lock();
                let service = self.service();
                if let Err(v) = w.checker.on_leader(service.node(), term) {
                    w.fail(v);
                }
            }
            ServiceOutput::ServeChunks { asker, file, groups } => {
                self.serve_chunks(now, asker, file, groups)
            }
            ServiceOutput::FetchFile { file, sources } => self.fetch_file(now, file, sources),
            ServiceOutput::ListBlobs { after, max } => self.list_blobs(now, after, max),
            ServiceOutput::RemoveBlob { file, why } => self.remove_blob(file, why),
            ServiceOutput::Halted { reason } => {
                // Stopping on a failed write is the only right answer to a
                // full disk (the controller restarts the replica once there
                // is space again); any other halt is a bug.
                let full = self.world.lock().replicas[&self.id].disk.full;
                if !full {
                    fail(&self.world, self.id, "no halt", reason);
                }
            }
            _ => {}
        }
    }

    async fn send_raft(&self, at: u64, to: NodeId, frame: Bytes) {
        let twice = {
            let mut w = self.world.lock();
            w.trace(at, self.id, "send", &frame);
            if let Err(v) = w.checker.on_send(self.id, self.incarnation, to, &frame) {
                w.fail(v);
            }
            let p = w.duplicate;
            w.rng.chance(p)
        };
        let _ = self.endpoint.send_to(replica_addr(to), TAG_PEER, &frame).await;
        if twice {
            // madsim's network never duplicates; the driver does.
            let _ = self.endpoint.send_to(replica_addr(to), TAG_PEER, &frame).await;
        }
    }

    /// Gossip, as flooding to every other replica on the operator's list:
    /// best effort, like gossipsub (a lost datagram is not resent; clients
    /// renew presence before it lapses).
    fn publish(&self, topic: GossipTopic, data: &[u8]) {
        let index = GossipTopic::ALL.iter().position(|t| *t == topic).expect("a known topic");
        let mut datagram = Vec::with_capacity(1 + data.len());
        datagram.push(index as u8);
        datagram.extend_from_slice(data);
        let others: Vec<NodeId> = {
            let mut w = self.world.lock();
            w.gossip += 1;
            w.serving().into_iter().filter(|id| *id != self.id).collect()
        };
        for to in others {
            self.send_later(replica_addr(to), TAG_GOSSIP, datagram.clone());
        }
    }

    /// Sends without waiting, so answering never blocks the loop.
    fn send_later(&self, to: SocketAddr, tag: u64, datagram: Vec<u8>) {
        let ep = self.endpoint.clone();
        madsim::task::spawn(async move {
            let _ = ep.send_to(to, tag, &datagram).await;
        });
    }
}
