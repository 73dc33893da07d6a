//! A chat client process under madsim: the core's client session decides
//! where each request goes and when it is resent (the same rules the real
//! client follows); this file moves its datagrams and keeps its time. It
//! records what was acknowledged for the final checks, and checks
//! read-your-writes and monotonic reads as it goes.

use crate::history::{EventType, HistoryEvent, Mop};
use crate::lobby::{lobby, lobby_name, LobbySeat, LOBBY_READ_LIMIT};
use crate::world::{client_ip, replica_addr, World, TAG_CLIENT};
use kith_core::ids::NodeId;
use kith_core::im::identity::{Identity, UserId};
use kith_core::im::presence::{PresenceBody, PresenceStatus, SignedPresence};
use kith_core::im::protocol::{
    CommandBody, EntryKind, ImError, Operation, QueryKind, QueryReply, Receipt, RoomId,
    SignedCommand, Target, Visibility, IM_PROTOCOL_VERSION,
};
use kith_core::im::typing::{SignedTyping, TypingBody};
use kith_core::rng::SeededRng;
use kith_core::session::{
    CallError, ClientSession, Reply, SessionConfig, SessionInput, SessionOutput,
};
use kith_core::testing::violation::Violation;
use kith_core::time::Instant;
use kith_core::wire::client_protocol::ClientRequest;
use madsim::net::Endpoint;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Port clients bind.
pub const CLIENT_PORT: u16 = 9000;
/// How long a client waits for one answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(800);
/// How long a checked read keeps trying before it is recorded as failed.
pub(crate) const READ_PATIENCE: Duration = Duration::from_secs(3);

/// What one client did, for the final checks.
#[derive(Debug, Default)]
pub struct ClientHistory {
    /// Every message id the client ever submitted.
    pub submitted: Vec<Uuid>,
    /// Acknowledged sends in order: (message id, room, seq).
    pub acked: Vec<(Uuid, RoomId, u64)>,
    /// Commands with a definite result.
    pub completed: u64,
    /// Linearizable reads checked.
    pub reads: u64,
    /// Whether the client is idle with nothing outstanding.
    pub idle: bool,
    /// Jepsen list-append events.
    pub events: Vec<HistoryEvent>,
    /// The transaction invoked and not yet completed.
    pub open: Option<Vec<Mop>>,
    /// Messages sent so far (for unique values).
    pub sent: u64,
    /// The presence announcement renewed after the heal, once taken: the
    /// time stamped on it, and when it was taken.
    pub presence_renewed: Option<(u64, madsim::time::Instant)>,
    /// The users it blocks, as the answers to its `Block` and `Unblock`
    /// said.
    pub blocked: BTreeSet<UserId>,
}

impl ClientHistory {
    fn record(
        &mut self,
        process: usize,
        kind: EventType,
        mops: Vec<Mop>,
        epoch: madsim::time::Instant,
    ) {
        let time_nanos = epoch.elapsed().as_nanos() as u64;
        self.open = (kind == EventType::Invoke).then(|| mops.clone());
        self.events.push(HistoryEvent { process, kind, time_nanos, mops });
    }
}

/// Shared handles a client runs with.
#[derive(Clone, Debug)]
pub struct ClientCtx {
    /// The world (for reporting violations).
    pub world: World,
    /// This client's index.
    pub index: usize,
    /// Its identity.
    pub identity: Identity,
    /// Its history.
    pub history: Arc<Mutex<ClientHistory>>,
    /// Cleared to stop starting new operations.
    pub active: Arc<AtomicBool>,
    /// Seed of its choices.
    pub seed: u64,
    /// How many clients the run has (for direct messages).
    pub clients: usize,
    /// The world's start: commands are stamped with time since then, the
    /// clock the replicas' stamps also count from.
    pub epoch: madsim::time::Instant,
    /// Pause between operations, drawn from this range (ms).
    pub pause_ms: (u64, u64),
}

/// A client's connection: its endpoint, its session and where it sends.
pub(crate) struct Conn {
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) responses: mpsc::Receiver<bytes::Bytes>,
    pub(crate) session: ClientSession,
    /// The replicas the session's targets are, in its order.
    pub(crate) targets: Vec<NodeId>,
    /// Talks to its targets only (the final reads ask each replica in turn).
    pub(crate) pinned: bool,
}

impl ClientCtx {
    /// The replicas it may talk to: every one not replaced, as an operator
    /// keeps the client's list current.
    pub(crate) fn replicas(&self) -> Vec<NodeId> {
        self.world.lock().serving()
    }

    /// Now, on the clock the replicas' stamps count from.
    pub(crate) fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros() as u64)
    }
}

/// The session's timing for simulated clients: the same rules as the real
/// client, with a shorter wait per attempt and a lower backoff cap, since a
/// simulated run lasts seconds, not hours.
pub(crate) fn session_config() -> SessionConfig {
    SessionConfig {
        attempt_timeout: REQUEST_TIMEOUT,
        patience: None,
        backoff_max: Duration::from_millis(250),
        ..SessionConfig::default()
    }
}

/// Runs one client until the simulation ends.
pub async fn run_client(ctx: ClientCtx) {
    let Ok(endpoint) = Endpoint::bind(SocketAddr::new(client_ip(ctx.index), CLIENT_PORT)).await
    else {
        return;
    };
    let endpoint = Arc::new(endpoint);
    let follower = crate::follower::FollowerCtx {
        world: ctx.world.clone(),
        index: ctx.index,
        identity: ctx.identity.clone(),
    };
    madsim::task::spawn(crate::follower::follow_live(follower, endpoint.clone()));
    let rx = crate::world::receive(endpoint.clone(), TAG_CLIENT);
    let targets = ctx.replicas();
    let known = targets.iter().map(|id| Some(*id)).collect();
    let session = ClientSession::new(known, ctx.index, ctx.seed ^ 0x5e55_1011, session_config());
    let mut conn = Conn { endpoint, responses: rx, session, targets, pinned: false };
    let mut rng = SeededRng::new(ctx.seed);
    let mut seat = LobbySeat::new(ctx.index == 0);
    let mut script = vec![Operation::Register { name: format!("user{}", ctx.index) }];
    script.push(if ctx.index == 0 {
        Operation::CreateRoom { name: lobby_name(0), visibility: Visibility::Public }
    } else {
        Operation::Join { room: seat.room() }
    });
    script.reverse();
    loop {
        if script.is_empty() {
            let moves = seat.catch_up(&ctx.world.lock().lobby);
            script.extend(moves.into_iter().rev());
        }
        let op = match script.pop() {
            Some(op) => op,
            None if ctx.active.load(Ordering::Relaxed) => random_op(&ctx, &mut rng, &seat),
            None => {
                let renewed = ctx.history.lock().expect("single-threaded").presence_renewed;
                if renewed.is_none() {
                    renew_presence(&ctx, &mut conn).await;
                    continue;
                }
                ctx.history.lock().expect("single-threaded").idle = true;
                madsim::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        ctx.history.lock().expect("single-threaded").idle = false;
        let result = submit(&ctx, &mut conn, &mut rng, op.clone()).await;
        // Not in the lobby yet (it may not even exist yet): join first.
        let joinable = matches!(op, Operation::Join { .. } | Operation::Send { .. });
        let outside = matches!(result, Err(ImError::NoSuchRoom | ImError::NotMember));
        if joinable && outside && ctx.active.load(Ordering::Relaxed) {
            madsim::time::sleep(Duration::from_millis(100)).await;
            script.push(Operation::Join { room: seat.room() });
        }
        if let Ok(Receipt::Appended { room, seq }) = &result {
            let opens = seat.after_ack(&mut ctx.world.lock().lobby, room, *seq);
            script.extend(opens.into_iter().rev());
        }
        if rng.chance(0.1) {
            let generation = seat.generation();
            if let Some(read) = read_lobby(&ctx, &mut conn, &mut rng, generation).await {
                check_reads(&ctx, generation, &read, &mut seat);
            }
        }
        // Only while the workload runs: after the heal, the announcement
        // each client renews must stay its newest (seed 338, 5 voters,
        // announced again while catching up with a lobby rotation).
        if ctx.active.load(Ordering::Relaxed) && rng.chance(0.1) {
            ephemeral(&ctx, &mut conn, &mut rng, &seat).await;
        }
        madsim::time::sleep(Duration::from_millis(rng.range(ctx.pause_ms.0, ctx.pause_ms.1))).await;
    }
}

fn random_op(ctx: &ClientCtx, rng: &mut SeededRng, seat: &LobbySeat) -> Operation {
    let text = format!("hello {}", rng.next_u64() % 10_000);
    // Now and then, change one of this client's messages in its lobby, so
    // live subscribers get edits, reactions and deletions too.
    let room = seat.room();
    let mine: Vec<u64> = {
        let h = ctx.history.lock().expect("single-threaded");
        h.acked.iter().filter(|(_, r, _)| *r == room).map(|(_, _, seq)| *seq).collect()
    };
    if !mine.is_empty() && rng.chance(0.15) {
        let seq = mine[rng.range(0, mine.len() as u64) as usize];
        return match rng.range(0, 10) {
            0..=3 => Operation::Edit { room, seq, text },
            4..=8 => {
                let reaction = ["+1", "ok", "?"][rng.range(0, 3) as usize].to_string();
                Operation::React { room, seq, reaction, add: rng.chance(0.7) }
            }
            _ => Operation::Delete { room, seq },
        };
    }
    if rng.chance(0.05) && ctx.clients > 1 {
        return crate::contacts::contact_op(ctx, rng);
    }
    if rng.chance(0.2) && ctx.clients > 1 {
        let other = (ctx.index + 1 + rng.range(0, ctx.clients as u64 - 1) as usize) % ctx.clients;
        let peer = Identity::from_secret(client_secret(ctx.seed_base(), other)).user();
        Operation::Send { to: Target::User(peer), text }
    } else {
        Operation::Send { to: Target::Room(seat.room()), text }
    }
}

/// Key material of client `i` in a run (deterministic from the seed).
pub fn client_secret(seed_base: u64, i: usize) -> [u8; 32] {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&seed_base.to_le_bytes());
    secret[8] = i as u8 + 1;
    secret
}

impl ClientCtx {
    fn seed_base(&self) -> u64 {
        self.world.lock().seed
    }
}

/// Sends one command until it has a definite result. Messages and file
/// messages are recorded as submitted, and as acknowledged once they are.
pub(crate) async fn submit(
    ctx: &ClientCtx,
    conn: &mut Conn,
    rng: &mut SeededRng,
    op: Operation,
) -> Result<Receipt, ImError> {
    let result = submit_within(ctx, conn, rng, op, None).await;
    result.expect("without a limit, a command ends with a result")
}

/// Like [`submit`], giving up after `patience` (`None`: the outcome is not
/// known; the command may yet be applied).
pub(crate) async fn submit_within(
    ctx: &ClientCtx,
    conn: &mut Conn,
    rng: &mut SeededRng,
    op: Operation,
    patience: Option<Duration>,
) -> Option<Result<Receipt, ImError>> {
    let body = CommandBody {
        version: IM_PROTOCOL_VERSION,
        command_id: Uuid::from_u64_pair(rng.next_u64(), rng.next_u64()),
        issued_at_ms: ctx.epoch.elapsed().as_millis() as u64,
        op,
    };
    // Messages and file messages: a message id the checkers look for.
    let is_send = matches!(body.op, Operation::Send { .. } | Operation::SendFile { .. });
    if is_send {
        ctx.history.lock().expect("single-threaded").submitted.push(body.command_id);
    }
    let append = match &body.op {
        Operation::Send { to, .. } => {
            let key = match to {
                Target::Room(room) => room.to_string(),
                Target::User(peer) => RoomId::direct(ctx.identity.user(), *peer).to_string(),
            };
            let mut h = ctx.history.lock().expect("single-threaded");
            h.sent += 1;
            let value = (ctx.index as u64 + 1) * 1_000_000 + h.sent;
            ctx.world.lock().values.insert(body.command_id, value);
            let mops = vec![Mop::Append { key, value }];
            h.record(ctx.index, EventType::Invoke, mops.clone(), ctx.epoch);
            Some(mops)
        }
        _ => None,
    };
    let command = SignedCommand::sign(&ctx.identity, &body);
    let response = call(ctx, conn, ClientRequest::Submit(command), patience).await;
    match response {
        Some(Ok(Reply::Applied(outcome))) => {
            let mut h = ctx.history.lock().expect("single-threaded");
            h.completed += 1;
            if let (true, Ok(Receipt::Appended { room, seq })) = (is_send, &outcome.result) {
                h.acked.push((body.command_id, room.clone(), *seq));
            }
            match (&body.op, &outcome.result) {
                (Operation::Block { user }, Ok(_)) => {
                    h.blocked.insert(*user);
                }
                (Operation::Unblock { user }, Ok(_)) => {
                    h.blocked.remove(user);
                }
                _ => {}
            }
            if let Some(mops) = append {
                let kind = if outcome.result.is_ok() { EventType::Ok } else { EventType::Fail };
                h.record(ctx.index, kind, mops, ctx.epoch);
            }
            Some(outcome.result)
        }
        None if patience.is_some() => None,
        other => {
            let detail = format!("client {} command not admitted: {other:?}", ctx.index);
            ctx.world.lock().fail(Violation {
                invariant: "honest commands admitted",
                detail,
                at: Instant::ZERO,
            });
            Some(Err(ImError::Malformed))
        }
    }
}

/// One call through the session: the request is resent, wherever the
/// session says, until a final answer (None: `patience` ran out).
pub(crate) async fn call(
    ctx: &ClientCtx,
    conn: &mut Conn,
    request: ClientRequest,
    patience: Option<Duration>,
) -> Option<Result<Reply, CallError>> {
    refresh_targets(ctx, conn);
    // A call whose future was dropped half-way left its session busy.
    conn.session.abandon();
    conn.session.begin_within(ctx.now(), request, patience);
    loop {
        while let Some(output) = conn.session.poll_output() {
            match output {
                SessionOutput::Send { target, frame, .. } => {
                    let mut datagram = ctx.identity.user().0.to_vec();
                    datagram.extend(frame);
                    let to = replica_addr(conn.targets[target]);
                    let _ = conn.endpoint.send_to(to, TAG_CLIENT, &datagram).await;
                }
                SessionOutput::Finished(reply) => return Some(reply),
                _ => return None,
            }
        }
        let wake = conn.session.poll_timeout().map_or(Duration::from_secs(1), |at| {
            Duration::from_micros(at.as_micros().saturating_sub(ctx.now().as_micros()))
        });
        let arrived = madsim::time::timeout(wake, conn.responses.recv()).await;
        // Before the session picks its next replica: a call can outlast
        // every replica it started with (seed 569: all were replaced while
        // one client retried, and it asked the replaced ones forever).
        refresh_targets(ctx, conn);
        match arrived {
            Ok(Some(frame)) => {
                conn.session.handle_input(ctx.now(), SessionInput::Answered { frame })
            }
            Ok(None) => return None,
            Err(_) => conn.session.handle_timeout(ctx.now()),
        }
    }
}

/// Gives the session the operator's current list of replicas, staying with
/// the one it talks to if that one is still on it.
fn refresh_targets(ctx: &ClientCtx, conn: &mut Conn) {
    if conn.pinned {
        return;
    }
    let targets = ctx.replicas();
    if targets != conn.targets {
        let current = conn.targets.get(conn.session.target()).copied();
        let at = current.and_then(|c| targets.iter().position(|t| *t == c)).unwrap_or(0);
        conn.session.set_targets(targets.iter().map(|id| Some(*id)).collect(), at);
        conn.targets = targets;
    }
}

/// After the heal, a client announces its presence once more (as a real
/// client renews it), so that every replica can be checked to show it
/// (`presence converges`). It waits a moment after it is taken, for the
/// gossip to land, before it calls itself idle.
async fn renew_presence(ctx: &ClientCtx, conn: &mut Conn) {
    let issued_at_ms = ctx.now().as_micros() / 1000;
    let body = PresenceBody { status: PresenceStatus::Online, issued_at_ms, ttl_ms: 120_000 };
    let announcement = SignedPresence::sign(&ctx.identity, &body);
    let answer = call(ctx, conn, ClientRequest::Presence(announcement), Some(READ_PATIENCE)).await;
    if matches!(answer, Some(Ok(Reply::Taken))) {
        let taken = madsim::time::Instant::now();
        madsim::time::sleep(Duration::from_millis(300)).await;
        ctx.history.lock().expect("single-threaded").presence_renewed = Some((issued_at_ms, taken));
    }
}

/// Presence and typing, through the same service paths production takes:
/// announce a status (renewed well before it lapses), look up another
/// client's, or say this client is typing in its lobby. Each has one right
/// answer for an honest client; anything else is a violation.
async fn ephemeral(ctx: &ClientCtx, conn: &mut Conn, rng: &mut SeededRng, seat: &LobbySeat) {
    let issued_at_ms = ctx.now().as_micros() / 1000;
    let request = match rng.range(0, 3) {
        0 => {
            let status = [PresenceStatus::Online, PresenceStatus::Away][rng.range(0, 2) as usize];
            let body = PresenceBody { status, issued_at_ms, ttl_ms: 60_000 };
            ClientRequest::Presence(SignedPresence::sign(&ctx.identity, &body))
        }
        1 => {
            let other = rng.range(0, ctx.clients as u64) as usize;
            let user = Identity::from_secret(client_secret(ctx.seed_base(), other)).user();
            ClientRequest::PresenceOf(vec![user])
        }
        _ => {
            let body = TypingBody { room: seat.room(), active: rng.chance(0.8), issued_at_ms };
            ClientRequest::Typing(SignedTyping::sign(&ctx.identity, &body))
        }
    };
    // Typing before joining the lobby (it rotated) is refused, rightly.
    let typing = matches!(request, ClientRequest::Typing(_));
    let answer = call(ctx, conn, request, Some(READ_PATIENCE)).await;
    // No answer in time is no violation (the replica may be cut off).
    let Some(Err(e)) = answer else { return };
    if !(typing && e.to_string().contains("not a member")) {
        let detail = format!("client {}: unexpected answer: {e}", ctx.index);
        ctx.world.lock().fail(Violation {
            invariant: "ephemeral requests answered",
            detail,
            at: Instant::ZERO,
        });
    }
}

/// Reads the whole of lobby `generation` linearizably, recording it in the
/// history.
async fn read_lobby(
    ctx: &ClientCtx,
    conn: &mut Conn,
    rng: &mut SeededRng,
    generation: u64,
) -> Option<Vec<u64>> {
    let _ = rng;
    read_room(ctx, conn, lobby(generation), false).await
}

/// Reads the whole of `room` linearizably, recording it in the history as
/// a read of the room's list. A read that needs more than one page is
/// recorded only when `paged` (after the run, when nothing else writes:
/// pages read one after another are not one atomic read otherwise).
async fn read_room(
    ctx: &ClientCtx,
    conn: &mut Conn,
    room: RoomId,
    paged: bool,
) -> Option<Vec<u64>> {
    let key = room.to_string();
    let invoke = vec![Mop::Read { key: key.clone(), value: None }];
    ctx.history.lock().expect("single-threaded").record(
        ctx.index,
        EventType::Invoke,
        invoke.clone(),
        ctx.epoch,
    );
    let mut values = Vec::new();
    let mut after = None;
    loop {
        let query =
            QueryKind::History { room: room.clone(), after, before: None, limit: LOBBY_READ_LIMIT };
        let answer = call(ctx, conn, ClientRequest::Query(query), Some(READ_PATIENCE)).await;
        let Some(Ok(Reply::Answer(Ok(QueryReply::Page(page))))) = answer else { break };
        let w = ctx.world.lock();
        values.extend(page.entries.iter().filter_map(|e| match &e.kind {
            EntryKind::Message(m) => Some(w.values.get(&m.msg_id).copied().unwrap_or(0)),
            _ => None,
        }));
        drop(w);
        match page.next {
            None => {
                let mops = vec![Mop::Read { key, value: Some(values.clone()) }];
                ctx.history.lock().expect("single-threaded").record(
                    ctx.index,
                    EventType::Ok,
                    mops,
                    ctx.epoch,
                );
                return Some(values);
            }
            Some(next) if paged => after = Some(next),
            Some(_) => break,
        }
    }
    // A read that got no answer had no effect.
    ctx.history.lock().expect("single-threaded").record(
        ctx.index,
        EventType::Fail,
        invoke,
        ctx.epoch,
    );
    None
}

/// Jepsen's final reads: after the run, every room the clients could have
/// written (each lobby generation, each pair's direct room) is read in full
/// through each of `replicas` in turn, as one more process, so that an
/// outside checker can verify every acknowledged append from the exported
/// history alone. Direct rooms are read as one of their two members (the
/// simulated transport authenticates by the prefixed user id). Sets `done`
/// at the end.
pub async fn run_final_reads(
    ctx: ClientCtx,
    replicas: Vec<NodeId>,
    generations: u64,
    done: Arc<AtomicBool>,
) {
    let Ok(endpoint) = Endpoint::bind(SocketAddr::new(client_ip(ctx.index), CLIENT_PORT)).await
    else {
        return;
    };
    let endpoint = Arc::new(endpoint);
    let mut responses = crate::world::receive(endpoint.clone(), TAG_CLIENT);
    let seed_base = ctx.seed_base();
    let member = |i: usize| Identity::from_secret(client_secret(seed_base, i));
    let mut rooms: Vec<(RoomId, Identity)> =
        (0..=generations).map(|g| (lobby(g), member(0))).collect();
    for a in 0..ctx.clients {
        for b in a + 1..ctx.clients {
            rooms.push((RoomId::direct(member(a).user(), member(b).user()), member(a)));
        }
    }
    for replica in replicas {
        let seed = ctx.seed ^ replica.get();
        let session = ClientSession::new(vec![Some(replica)], 0, seed, session_config());
        let mut conn = Conn {
            endpoint: endpoint.clone(),
            responses,
            session,
            targets: vec![replica],
            pinned: true,
        };
        for (room, identity) in &rooms {
            let reader = ClientCtx { identity: identity.clone(), ..ctx.clone() };
            read_room(&reader, &mut conn, room.clone(), true).await;
        }
        responses = conn.responses;
    }
    done.store(true, Ordering::Relaxed);
}

/// Read-your-writes and monotonic reads for this client's session, on a
/// whole read of lobby `generation`.
fn check_reads(ctx: &ClientCtx, generation: u64, read: &[u64], seat: &mut LobbySeat) {
    let mut h = ctx.history.lock().expect("single-threaded");
    h.reads += 1;
    let room = lobby(generation);
    let seen: BTreeSet<u64> = read.iter().copied().collect();
    let w = ctx.world.lock();
    let missing = h
        .acked
        .iter()
        .filter(|(_, r, _)| *r == room)
        .filter_map(|(id, _, _)| w.values.get(id))
        .find(|v| !seen.contains(v))
        .copied();
    drop(w);
    drop(h);
    let shrunk = seat.saw_read(generation, read.len());
    let problem = if let Some(v) = missing {
        Some((
            "read your writes",
            format!("client {} read {room} without its acknowledged write {v}", ctx.index),
        ))
    } else {
        shrunk.map(|before| {
            let detail = format!(
                "client {} read {} messages of {room} after reading {before}",
                ctx.index,
                read.len(),
            );
            ("monotonic reads", detail)
        })
    };
    if let Some((invariant, detail)) = problem {
        ctx.world.lock().fail(Violation { invariant, detail, at: Instant::ZERO });
    }
}

/// Every client's history, by index.
pub type Histories = BTreeMap<usize, Arc<Mutex<ClientHistory>>>;
