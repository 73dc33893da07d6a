//! Chat clients on the in-memory cluster: they register, join rooms, send
//! to rooms and to each other, and one of them invites and kicks. Every
//! command is signed and checked at ingress like a replica would, and
//! retried with the same command id until it has a definite result, so
//! idempotency is exercised under every fault. Each client follows its
//! rooms through a live subscription on a "home" replica and moves to
//! another replica when that one crashes.
//!
//! Checked online: deliveries come in order without gaps or duplicates,
//! across reconnects; a kicked member receives nothing after the kick.
//! At the end the converged state and every client's sends go to the
//! invariants (`Observation::Settled`): every acknowledged message stored
//! exactly once, at its acknowledged position, by its author; no message
//! nobody sent; each client's messages in the order it sent them.

use super::cluster::{Cluster, Event};
use super::invariant::{ClientSends, StoredMessage};
use super::violation::Violation;
use super::workload::{Workload, WorkloadStats};
use crate::ids::{NodeId, ProposalId};
use crate::im::identity::Identity;
use crate::im::protocol::{
    CommandBody, ImError, Operation, Receipt, RoomId, SignedCommand, Target, Visibility,
    IM_PROTOCOL_VERSION,
};
use crate::im::ImMachine;
use crate::raft::{Output, SubmitError};
use crate::replica::subscriptions::{Delivery, SubscriptionHub, SubscriptionId};
use crate::rng::SeededRng;
use crate::time::Instant;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use uuid::Uuid;

const OP_TIMEOUT: Duration = Duration::from_millis(1500);

fn lobby() -> RoomId {
    RoomId::Group("lobby".into())
}

fn club() -> RoomId {
    RoomId::Group("club".into())
}

#[derive(Debug)]
struct Pending {
    command: SignedCommand,
    body: CommandBody,
    /// Where it was last submitted, once accepted there.
    at: Option<(NodeId, u64, ProposalId, Instant)>,
}

#[derive(Debug)]
struct Follow {
    home: NodeId,
    incarnation: u64,
    id: SubscriptionId,
    rooms: BTreeSet<RoomId>,
}

#[derive(Debug)]
struct Client {
    identity: Identity,
    target: NodeId,
    next_action: Instant,
    script: VecDeque<Operation>,
    pending: Option<Pending>,
    /// Acknowledged sends: (message id, room, seq), in send order.
    sends: Vec<(Uuid, RoomId, u64)>,
    rooms: BTreeSet<RoomId>,
    follow: Option<Follow>,
    cursors: BTreeMap<RoomId, u64>,
    kicked_at: BTreeMap<RoomId, u64>,
}

/// The chat workload.
#[derive(Debug)]
pub struct ImWorkload {
    clients: Vec<Client>,
    rng: SeededRng,
    active: bool,
    hubs: BTreeMap<NodeId, (u64, SubscriptionHub)>,
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
                Client {
                    identity: Identity::from_secret(secret),
                    target: NodeId(1),
                    next_action: Instant::from_millis(if i == 0 { 0 } else { 600 }),
                    script,
                    pending: None,
                    sends: Vec::new(),
                    rooms: BTreeSet::new(),
                    follow: None,
                    cursors: BTreeMap::new(),
                    kicked_at: BTreeMap::new(),
                }
            })
            .collect();
        ImWorkload {
            clients,
            rng,
            active: true,
            hubs: BTreeMap::new(),
            sent: BTreeMap::new(),
            acked: 0,
            delivered: 0,
            barrier: Identity::from_secret([0xba; 32]),
            barrier_round: 0,
            kicked: BTreeSet::new(),
        }
    }

    fn violation(&self, invariant: &'static str, detail: String, at: Instant) -> Violation {
        Violation { invariant, detail, at }
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
            60..=69 => {
                Operation::Send { to: Target::User(self.clients[other].identity.user()), text }
            }
            70..=79 if in_club => Operation::Send { to: Target::Room(club()), text },
            80..=84 if i == 0 && !self.kicked.contains(&other) => {
                Operation::Invite { room: club(), user: self.clients[other].identity.user() }
            }
            85..=87 if i == 0 && self.clients[other].rooms.contains(&club()) => {
                self.kicked.insert(other);
                Operation::Kick { room: club(), user: self.clients[other].identity.user() }
            }
            88..=92 if i != 0 && !in_club && !self.kicked.contains(&i) => {
                Operation::Join { room: club() }
            }
            93..=95 => {
                let seq = self.clients[i].cursors.get(&lobby()).copied().unwrap_or(0);
                Operation::MarkRead { room: lobby(), seq }
            }
            _ => Operation::Send { to: Target::Room(lobby()), text },
        })
    }

    fn start(&mut self, i: usize, cluster: &mut Cluster<ImMachine>) {
        let Some(op) = self.next_op(i) else { return };
        let body = CommandBody {
            version: IM_PROTOCOL_VERSION,
            command_id: Uuid::from_u64_pair(self.rng.next_u64(), self.rng.next_u64()),
            issued_at_ms: cluster.now().as_micros() / 1000,
            op,
        };
        if matches!(body.op, Operation::Send { .. }) {
            self.sent.insert(body.command_id, i);
        }
        let command = SignedCommand::sign(&self.clients[i].identity, &body);
        // What a receiving replica checks before proposing (once: the check
        // is a pure function of the bytes, and retries resend these bytes).
        command
            .verify(Some(self.clients[i].identity.user()))
            .expect("honest clients sign correctly");
        self.clients[i].pending = Some(Pending { command, body, at: None });
        self.submit(i, cluster);
    }

    /// (Re)submits client `i`'s pending command, verified at ingress first.
    fn submit(&mut self, i: usize, cluster: &mut Cluster<ImMachine>) {
        let now = cluster.now();
        let c = &mut self.clients[i];
        let Some(p) = c.pending.as_mut() else { return };
        match cluster.submit(c.target, &p.command) {
            Ok(proposal) => {
                let incarnation = cluster.incarnation(c.target);
                p.at = Some((c.target, incarnation, proposal, now + OP_TIMEOUT));
            }
            Err(e) => {
                p.at = None;
                let hint =
                    if let SubmitError::NotLeader { leader_hint } = e { leader_hint } else { None };
                let ids = cluster.ids();
                c.target =
                    hint.unwrap_or_else(|| ids[self.rng.range(0, ids.len() as u64) as usize]);
                c.next_action = now + Duration::from_millis(5);
            }
        }
    }

    fn on_event(
        &mut self,
        cluster: &Cluster<ImMachine>,
        event: Event<ImMachine>,
    ) -> Result<(), Violation> {
        let Event { node, incarnation, output } = event;
        match output {
            Output::Applied { proposal, response, .. } => {
                let (hub_inc, hub) = self
                    .hubs
                    .entry(node)
                    .or_insert_with(|| (incarnation, SubscriptionHub::default()));
                if *hub_inc != incarnation {
                    *hub_inc = incarnation;
                    *hub = SubscriptionHub::default();
                }
                if let Some(machine) = cluster.node(node).map(|n| n.state_machine()) {
                    hub.on_events(machine, &response.events);
                }
                let Some(p) = proposal else { return Ok(()) };
                let here = |c: &Client| {
                    c.pending
                        .as_ref()
                        .and_then(|p| p.at)
                        .is_some_and(|(n, inc, id, _)| (n, inc, id) == (node, incarnation, p))
                };
                let Some(i) = self.clients.iter().position(here) else { return Ok(()) };
                let pending = self.clients[i].pending.take().expect("matched");
                if response.command_id != pending.body.command_id
                    || response.author != self.clients[i].identity.user()
                {
                    return Err(self.violation(
                        "reply matches request",
                        format!("client {i} got {response:?}"),
                        cluster.now(),
                    ));
                }
                self.resolve(i, &pending.body, response.result, cluster.now());
            }
            Output::Dropped { proposal, .. } => {
                // Definitely not applied, or unknown: retrying the same
                // command id is safe either way.
                if let Some(c) = self.clients.iter_mut().find(|c| {
                    c.pending.as_ref().and_then(|p| p.at).is_some_and(|(n, inc, id, _)| {
                        (n, inc, id) == (node, incarnation, proposal)
                    })
                }) {
                    if let Some(p) = c.pending.as_mut() {
                        p.at = None;
                    }
                }
            }
            _ => {}
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

    /// Keeps client `i` subscribed to its rooms on a live home replica and
    /// checks what it receives.
    fn follow(&mut self, i: usize, cluster: &Cluster<ImMachine>) -> Result<(), Violation> {
        let now = cluster.now();
        let c = &mut self.clients[i];
        let stale = c.follow.as_ref().is_none_or(|f| {
            f.rooms != c.rooms
                || cluster.incarnation(f.home) != f.incarnation
                || !cluster.is_live(f.home)
        });
        if stale && !c.rooms.is_empty() {
            if let Some(f) = c.follow.take() {
                if let Some((_, hub)) = self.hubs.get_mut(&f.home) {
                    hub.unsubscribe(f.id);
                }
            }
            let live: Vec<NodeId> =
                cluster.ids().into_iter().filter(|id| cluster.is_live(*id)).collect();
            let Some(&home) = live.get(i % live.len().max(1)) else { return Ok(()) };
            let incarnation = cluster.incarnation(home);
            let machine = cluster.node(home).expect("live").state_machine();
            let (hub_inc, hub) =
                self.hubs.entry(home).or_insert_with(|| (incarnation, SubscriptionHub::default()));
            if *hub_inc != incarnation {
                *hub_inc = incarnation;
                *hub = SubscriptionHub::default();
            }
            let rooms: Vec<(RoomId, u64)> = c
                .rooms
                .iter()
                .map(|r| (r.clone(), c.cursors.get(r).copied().unwrap_or(0)))
                .collect();
            // A lagging replica may not know a room yet; try again later.
            if let Ok(id) = hub.subscribe(machine, c.identity.user(), &rooms) {
                c.follow = Some(Follow { home, incarnation, id, rooms: c.rooms.clone() });
            }
        }
        let Some(f) = c.follow.as_ref() else { return Ok(()) };
        let Some(node) = cluster.node(f.home) else { return Ok(()) };
        let Some((_, hub)) = self.hubs.get_mut(&f.home) else { return Ok(()) };
        while let Some(d) = hub.poll(node.state_machine(), f.id) {
            let Delivery::Entry { room, entry } = d else { continue };
            let cursor = c.cursors.entry(room.clone()).or_default();
            if entry.seq != *cursor + 1 {
                let detail = format!("client {i} got {room} seq {} after {}", entry.seq, *cursor);
                return Err(Violation { invariant: "gap-free delivery", detail, at: now });
            }
            *cursor = entry.seq;
            if c.kicked_at.get(&room).is_some_and(|k| entry.seq > *k) {
                let detail =
                    format!("client {i} received {room} seq {} after being kicked", entry.seq);
                return Err(Violation {
                    invariant: "removed members receive nothing",
                    detail,
                    at: now,
                });
            }
            self.delivered += 1;
        }
        Ok(())
    }
}

impl Workload<ImMachine> for ImWorkload {
    fn act(&mut self, cluster: &mut Cluster<ImMachine>) -> Result<(), Violation> {
        for event in cluster.take_events() {
            self.on_event(cluster, event)?;
        }
        let now = cluster.now();
        for i in 0..self.clients.len() {
            let c = &mut self.clients[i];
            let mut resubmit = false;
            if let Some(p) = c.pending.as_mut() {
                if let Some((node, inc, _, deadline)) = p.at {
                    if now >= deadline || !cluster.is_live(node) || cluster.incarnation(node) != inc
                    {
                        p.at = None;
                        let ids = cluster.ids();
                        c.target = ids[self.rng.range(0, ids.len() as u64) as usize];
                    }
                }
                resubmit = p.at.is_none() && c.next_action <= now;
            } else if c.next_action <= now {
                self.start(i, cluster);
            }
            if resubmit {
                self.submit(i, cluster);
            }
            self.follow(i, cluster)?;
        }
        Ok(())
    }

    fn finish(&mut self) {
        self.active = false;
    }

    fn is_quiet(&self) -> bool {
        self.clients.iter().all(|c| c.pending.is_none() && c.script.is_empty())
    }

    fn submit_barrier(&mut self, cluster: &mut Cluster<ImMachine>, leader: NodeId) -> bool {
        self.barrier_round += 1;
        let body = CommandBody {
            version: IM_PROTOCOL_VERSION,
            command_id: Uuid::from_u64_pair(0xba, self.barrier_round),
            issued_at_ms: cluster.now().as_micros() / 1000,
            op: Operation::Register { name: format!("barrier{}", self.barrier_round) },
        };
        cluster.submit(leader, &SignedCommand::sign(&self.barrier, &body)).is_ok()
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
