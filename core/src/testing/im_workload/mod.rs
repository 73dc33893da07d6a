//! Chat clients on the in-memory cluster: they register, join rooms, send
//! to rooms and to each other, ask each other to be contacts, answer,
//! block and unblock, and one of them invites and kicks. Each
//! client is a [`ClientSession`] talking to the replicas' services
//! ([`ServiceHost`]) in the client protocol, exactly as a real client
//! talks to `kith node`: the session signs each command once, resends the
//! same bytes and picks the next replica, and the service verifies,
//! forwards to the leader, orders and answers. So idempotency, forwarding
//! and fail-over are exercised under every fault. Each client follows its
//! rooms through a live subscription on a "home" replica and moves to
//! another when that one crashes.
//!
//! Checked online: deliveries come in order without gaps or duplicates,
//! across reconnects; a kicked member receives nothing after the kick;
//! each answer is the outcome of the command it answers. At the end the
//! converged state and every client's sends go to the invariants
//! (`Observation::Settled`): every acknowledged message stored exactly
//! once, at its acknowledged position, by its author; no message nobody
//! sent; each client's messages in the order it sent them.

mod follow;

use super::cluster::{Cluster, Event, ServiceHost};
use super::invariant::{ClientSends, StoredMessage};
use super::violation::Violation;
use super::workload::{Workload, WorkloadStats};
use crate::ids::NodeId;
use crate::im::identity::Identity;
use crate::im::protocol::{
    CommandBody, ImError, Operation, Receipt, RoomId, SignedCommand, Target, Visibility,
    IM_PROTOCOL_VERSION,
};
use crate::im::ImMachine;
use crate::replica::{AskerId, ServiceOutput};
use crate::rng::SeededRng;
use crate::session::{ClientSession, Reply, SessionConfig, SessionInput, SessionOutput};
use crate::time::Instant;
use crate::wire::client_protocol::{ClientRequest, RequestFrame};
use follow::Follow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use uuid::Uuid;

fn lobby() -> RoomId {
    RoomId::Group("lobby".into())
}

fn club() -> RoomId {
    RoomId::Group("club".into())
}

/// The clients' patience. An attempt outlives a forward's round trips
/// over the harness's slowest links (30 ms each way) and a commit; one
/// lost datagram costs a resend, not a stall.
fn session_config() -> SessionConfig {
    SessionConfig {
        attempt_timeout: Duration::from_millis(400),
        patience: None,
        backoff_min: Duration::from_millis(5),
        backoff_max: Duration::from_millis(250),
        ..SessionConfig::default()
    }
}

/// One attempt the session sent: where, and the service's name for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Attempt {
    node: NodeId,
    incarnation: u64,
    asker: AskerId,
    request_id: u64,
}

#[derive(Debug)]
struct Client {
    identity: Identity,
    session: ClientSession,
    next_action: Instant,
    script: VecDeque<Operation>,
    /// The command of the call in progress.
    calling: Option<CommandBody>,
    attempt: Option<Attempt>,
    /// Acknowledged sends: (message id, room, seq), in send order.
    sends: Vec<(Uuid, RoomId, u64)>,
    rooms: BTreeSet<RoomId>,
    follow: Follow,
    kicked_at: BTreeMap<RoomId, u64>,
}

/// The chat workload.
#[derive(Debug)]
pub struct ImWorkload {
    clients: Vec<Client>,
    rng: SeededRng,
    active: bool,
    /// The replicas, in the order the sessions' targets name them.
    replicas: Vec<NodeId>,
    sent: BTreeMap<Uuid, usize>,
    acked: u64,
    delivered: u64,
    barrier: Identity,
    barrier_round: u64,
    kicked: BTreeSet<usize>,
}

impl ImWorkload {
    /// `clients` chat clients; client 0 owns the rooms.
    pub fn new(seed: u64, clients: u64) -> ImWorkload {
        let mut rng = SeededRng::new(seed ^ 0x1f83_d9ab_fb41_bd6b);
        let clients = (0..clients.max(2) as usize)
            .map(|i| {
                let mut secret = [0u8; 32];
                secret[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
                secret[8] = i as u8 + 1;
                let mut script = VecDeque::from([Operation::Register { name: format!("user{i}") }]);
                if i == 0 {
                    script.push_back(Operation::CreateRoom {
                        name: "lobby".into(),
                        visibility: Visibility::Public,
                    });
                    script.push_back(Operation::CreateRoom {
                        name: "club".into(),
                        visibility: Visibility::Private,
                    });
                } else {
                    script.push_back(Operation::Join { room: lobby() });
                }
                // Replaced by a session over the cluster's replicas at the first step.
                let session = ClientSession::new(vec![None], 0, rng.next_u64(), session_config());
                Client {
                    identity: Identity::from_secret(secret),
                    session,
                    next_action: Instant::from_millis(if i == 0 { 0 } else { 600 }),
                    script,
                    calling: None,
                    attempt: None,
                    sends: Vec::new(),
                    rooms: BTreeSet::new(),
                    follow: Follow::default(),
                    kicked_at: BTreeMap::new(),
                }
            })
            .collect();
        ImWorkload {
            clients,
            rng,
            active: true,
            replicas: Vec::new(),
            sent: BTreeMap::new(),
            acked: 0,
            delivered: 0,
            barrier: Identity::from_secret([0xba; 32]),
            barrier_round: 0,
            kicked: BTreeSet::new(),
        }
    }

    /// Points every session at the cluster's replicas, each client starting
    /// at its own.
    fn meet(&mut self, cluster: &Cluster<ImMachine>) {
        self.replicas = cluster.ids();
        let targets: Vec<Option<NodeId>> = self.replicas.iter().map(|id| Some(*id)).collect();
        for (i, c) in self.clients.iter_mut().enumerate() {
            c.session.set_targets(targets.clone(), i);
        }
    }

    /// A random next operation for client `i` (after its script).
    fn next_op(&mut self, i: usize) -> Option<Operation> {
        if let Some(op) = self.clients[i].script.pop_front() {
            return Some(op);
        }
        if !self.active {
            return None;
        }
        let n = self.clients.len();
        let other = (i + 1 + self.rng.range(0, n as u64 - 1) as usize) % n;
        let text = format!("m{}", self.rng.next_u64() % 1000);
        let roll = self.rng.range(0, 100);
        let in_club = self.clients[i].rooms.contains(&club());
        Some(match roll {
            0..=59 => Operation::Send { to: Target::Room(lobby()), text },
            60..=66 => {
                Operation::Send { to: Target::User(self.clients[other].identity.user()), text }
            }
            // Contacts, requests and blocks, so that they go through
            // forwarding, retries and fail-over like everything else (a
            // refusal, such as no request to accept, is an answer too).
            67..=69 => {
                let user = self.clients[other].identity.user();
                match self.rng.range(0, 7) {
                    0 | 1 => Operation::RequestContact { user },
                    2 | 3 => Operation::AcceptRequest { user },
                    4 => Operation::DeclineRequest { user },
                    5 => Operation::RemoveContact { user },
                    _ if self.rng.chance(0.5) => Operation::Block { user },
                    _ => Operation::Unblock { user },
                }
            }
            70..=79 if in_club => Operation::Send { to: Target::Room(club()), text },
            80..=84 if i == 0 && !self.kicked.contains(&other) => {
                Operation::Invite { room: club(), user: self.clients[other].identity.user() }
            }
            85..=87 if i == 0 && self.clients[other].rooms.contains(&club()) => {
                self.kicked.insert(other);
                Operation::Kick { room: club(), user: self.clients[other].identity.user() }
            }
            88..=91 if i != 0 && !in_club && !self.kicked.contains(&i) => {
                Operation::Join { room: club() }
            }
            92 if i != 0 && !in_club => Operation::DeclineInvite { room: club() },
            93..=95 => {
                let seq = self.clients[i].follow.cursor(&lobby());
                Operation::MarkRead { room: lobby(), seq }
            }
            // Changes to one of its own lobby messages: live subscribers
            // get edits, reactions and deletions too.
            96..=99 => {
                let mine: Vec<u64> = self.clients[i]
                    .sends
                    .iter()
                    .filter(|(_, room, _)| *room == lobby())
                    .map(|(_, _, seq)| *seq)
                    .collect();
                let Some(&seq) = mine.get(self.rng.range(0, mine.len().max(1) as u64) as usize)
                else {
                    return Some(Operation::Send { to: Target::Room(lobby()), text });
                };
                match roll {
                    96 => Operation::Edit { room: lobby(), seq, text },
                    97 | 98 => Operation::React {
                        room: lobby(),
                        seq,
                        reaction: "+1".into(),
                        add: roll == 97,
                    },
                    _ => Operation::Delete { room: lobby(), seq },
                }
            }
            _ => Operation::Send { to: Target::Room(lobby()), text },
        })
    }

    /// Starts client `i`'s next call: the session signs it once.
    fn start(&mut self, i: usize, now: Instant) {
        let Some(op) = self.next_op(i) else { return };
        let c = &mut self.clients[i];
        let command = c.session.sign(&c.identity, now.as_micros() / 1000, op);
        let body = command.decode_body().expect("the session signs well-formed bodies");
        if matches!(body.op, Operation::Send { .. }) {
            self.sent.insert(body.command_id, i);
        }
        c.calling = Some(body);
        c.session.begin(now, ClientRequest::Submit(command));
    }

    /// Carries out client `i`'s session outputs.
    fn pump(&mut self, i: usize, cluster: &mut Cluster<ImMachine>) -> Result<(), Violation> {
        let now = cluster.now();
        while let Some(output) = self.clients[i].session.poll_output() {
            let c = &mut self.clients[i];
            match output {
                SessionOutput::Send { target, request_id, frame } => {
                    let node = self.replicas[target];
                    let user = c.identity.user();
                    let incarnation = cluster.incarnation(node);
                    let asked =
                        cluster.with_host(node, |h, now| h.client_request(now, user, frame.into()));
                    match asked {
                        Some(asker) => {
                            c.attempt = Some(Attempt { node, incarnation, asker, request_id })
                        }
                        // A replica that is down refuses the connection.
                        None => c.session.handle_input(now, SessionInput::Failed { request_id }),
                    }
                }
                SessionOutput::Finished(Ok(Reply::Applied(outcome))) => {
                    let body = c.calling.take().expect("a call was in progress");
                    c.attempt = None;
                    if outcome.command_id != body.command_id {
                        let detail = format!("client {i} got {outcome:?} for {body:?}");
                        return Err(Violation {
                            invariant: "reply matches request",
                            detail,
                            at: now,
                        });
                    }
                    self.resolve(i, &body, outcome.result, now);
                }
                other => {
                    let detail = format!("client {i}: an honest call ended with {other:?}");
                    return Err(Violation { invariant: "reply matches request", detail, at: now });
                }
            }
        }
        Ok(())
    }

    fn resolve(
        &mut self,
        i: usize,
        body: &CommandBody,
        result: Result<Receipt, ImError>,
        now: Instant,
    ) {
        self.acked += 1;
        let pause = Duration::from_millis(1 + self.rng.range(0, 20));
        let c = &mut self.clients[i];
        c.next_action = now + pause;
        match (&body.op, result) {
            (Operation::Send { .. }, Ok(Receipt::Appended { room, seq })) => {
                c.sends.push((body.command_id, room.clone(), seq));
                if matches!(room, RoomId::Direct(..)) {
                    c.rooms.insert(room);
                }
            }
            (Operation::Send { to: Target::Room(room), .. }, Err(ImError::NotMember))
                if *room == lobby() =>
            {
                c.script.push_back(Operation::Join { room: lobby() });
            }
            (Operation::CreateRoom { name, .. }, Ok(_) | Err(ImError::RoomExists(_))) => {
                c.rooms.insert(RoomId::Group(name.clone()));
            }
            (Operation::Join { room }, Ok(_) | Err(ImError::AlreadyMember)) => {
                c.rooms.insert(room.clone());
            }
            (Operation::Join { room }, Err(ImError::NoSuchRoom)) => {
                c.script.push_back(Operation::Join { room: room.clone() });
                c.next_action = now + Duration::from_millis(200);
            }
            (Operation::Kick { room, user }, Ok(Receipt::Appended { seq, .. })) => {
                if let Some(k) = self.clients.iter_mut().find(|k| k.identity.user() == *user) {
                    k.kicked_at.insert(room.clone(), seq);
                    k.rooms.remove(room);
                }
            }
            _ => {}
        }
    }

    /// Hands each answer and live-stream event to the client it is for.
    fn on_event(&mut self, now: Instant, event: Event<ImMachine>) {
        let Event { node, incarnation, output } = event;
        match output {
            ServiceOutput::Respond { asker, frame } => {
                let at =
                    |a: &Attempt| (a.node, a.incarnation, a.asker) == (node, incarnation, asker);
                if let Some(c) =
                    self.clients.iter_mut().find(|c| c.attempt.as_ref().is_some_and(at))
                {
                    c.attempt = None;
                    c.session.handle_input(now, SessionInput::Answered { frame: frame.into() });
                }
            }
            ServiceOutput::Subscribed { asker, subscription } => {
                for c in &mut self.clients {
                    c.follow.subscribed(node, incarnation, asker, subscription);
                }
            }
            ServiceOutput::LiveRefused { asker, .. } => {
                for c in &mut self.clients {
                    c.follow.refused(node, incarnation, asker, now);
                }
            }
            _ => {}
        }
    }

    /// Client `i`'s attempt went to a replica that crashed: its connection broke.
    fn notice_lost_attempt(&mut self, i: usize, cluster: &Cluster<ImMachine>) {
        let c = &mut self.clients[i];
        let Some(a) = c.attempt else { return };
        if !cluster.is_live(a.node) || cluster.incarnation(a.node) != a.incarnation {
            c.attempt = None;
            let request_id = a.request_id;
            c.session.handle_input(cluster.now(), SessionInput::Failed { request_id });
        }
    }
}

impl Workload<ImMachine> for ImWorkload {
    fn act(&mut self, cluster: &mut Cluster<ImMachine>) -> Result<(), Violation> {
        if self.replicas.is_empty() {
            self.meet(cluster);
        }
        let now = cluster.now();
        for event in cluster.take_events() {
            self.on_event(now, event);
        }
        for i in 0..self.clients.len() {
            self.notice_lost_attempt(i, cluster);
            let c = &mut self.clients[i];
            if c.session.poll_timeout().is_some_and(|t| t <= now) {
                c.session.handle_timeout(now);
            }
            if c.calling.is_none() && c.next_action <= now {
                self.start(i, now);
            }
            self.pump(i, cluster)?;
            let c = &mut self.clients[i];
            let kicked_at = c.kicked_at.clone();
            let delivered = c.follow.step(i, cluster, c.identity.user(), &c.rooms, &kicked_at)?;
            self.delivered += delivered;
        }
        Ok(())
    }

    fn finish(&mut self) {
        self.active = false;
    }

    fn is_quiet(&self) -> bool {
        self.clients.iter().all(|c| c.calling.is_none() && c.script.is_empty())
    }

    /// The barrier goes to the leader's service as a client's command; its
    /// answer is not awaited (the scenario watches for it to apply).
    fn submit_barrier(&mut self, cluster: &mut Cluster<ImMachine>, leader: NodeId) -> bool {
        self.barrier_round += 1;
        let body = CommandBody {
            version: IM_PROTOCOL_VERSION,
            command_id: Uuid::from_u64_pair(0xba, self.barrier_round),
            issued_at_ms: cluster.now().as_micros() / 1000,
            op: Operation::Register { name: format!("barrier{}", self.barrier_round) },
        };
        let request = ClientRequest::Submit(SignedCommand::sign(&self.barrier, &body));
        let frame = RequestFrame { request_id: self.barrier_round, request }.encode();
        let user = self.barrier.user();
        cluster
            .with_host(leader, |h: &mut ServiceHost, now| h.client_request(now, user, frame.into()))
            .is_some()
    }

    fn barrier_applied(&self, machine: &ImMachine) -> bool {
        machine.user_name(self.barrier.user()).is_some()
    }

    fn check_final(
        &mut self,
        cluster: &mut Cluster<ImMachine>,
        leader: NodeId,
    ) -> Result<(), Violation> {
        let machine = cluster.node(leader).expect("leader is live").state_machine();
        let stored = StoredMessage::all_in(machine).map_err(|e| Violation {
            invariant: "history readable",
            detail: e.to_string(),
            at: cluster.now(),
        })?;
        let mut clients: Vec<ClientSends> = self
            .clients
            .iter()
            .map(|c| ClientSends {
                user: c.identity.user(),
                submitted: Vec::new(),
                acked: c.sends.clone(),
            })
            .collect();
        for (&id, &sender) in &self.sent {
            clients[sender].submitted.push(id);
        }
        cluster.settle(&stored, &clients)
    }

    fn stats(&self) -> WorkloadStats {
        WorkloadStats { acked: self.acked, indeterminate: 0, reads: self.delivered }
    }
}
