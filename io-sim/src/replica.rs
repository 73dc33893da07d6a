//! One replica process under madsim: the run loop documented in
//! `kith_core`, over a madsim endpoint, the world's simulated disk and a
//! drifting clock. All decisions stay in the core; this file only moves
//! bytes, keeps time and reports completions.

use crate::world::{replica_addr, replica_at, World, TAG_CLIENT, TAG_PEER};
use bytes::Bytes;
use kith_core::config::Config;
use kith_core::durable::RecoveryError;
use kith_core::ids::{NodeId, ProposalId, ReadId};
use kith_core::im::client_protocol::{ClientRequest, ClientResponse, RequestFrame, ResponseFrame};
use kith_core::im::identity::UserId;
use kith_core::im::protocol::ImQuery;
use kith_core::im::verified_commands::VerifiedCommands;
use kith_core::im::ImMachine;
use kith_core::limits;
use kith_core::node::{Input, Node, NodeOutput, Output, Role};
use kith_core::testing::sim_machine::SimMachine;
use kith_core::testing::violation::Violation;
use kith_core::time::Instant;
use madsim::net::Endpoint;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Raft tick length inside the simulation.
pub const TICK: Duration = Duration::from_millis(10);

/// Something that arrived on the endpoint.
enum Arrival {
    Peer(NodeId, Bytes),
    Client(SocketAddr, Bytes),
}

/// Where to answer a client.
#[derive(Clone, Copy)]
struct Asker {
    addr: SocketAddr,
    request_id: u64,
}

/// The driver's bookkeeping between the node and its clients.
struct Driver {
    id: NodeId,
    world: World,
    node: Arc<Mutex<Node<ImMachine>>>,
    incarnation: u64,
    endpoint: Arc<Endpoint>,
    clock: Clock,
    proposals: BTreeMap<ProposalId, Asker>,
    reads: BTreeMap<ReadId, Asker>,
    /// Commands whose signatures this incarnation checked.
    verified: VerifiedCommands,
}

/// This replica's view of time: simulated time scaled by its skew.
#[derive(Clone, Copy)]
struct Clock {
    origin: madsim::time::Instant,
    /// Where this incarnation's clock starts (simulated time since the world began).
    base_micros: u64,
    skew_ppm: i64,
}

impl Clock {
    fn now(&self) -> Instant {
        let elapsed = self.origin.elapsed().as_micros() as i64;
        let skewed = elapsed + elapsed * self.skew_ppm / 1_000_000;
        Instant::from_micros(self.base_micros + skewed.max(0) as u64)
    }

    /// The simulated instant at which this clock reads `at`.
    fn deadline(&self, at: Instant) -> madsim::time::Instant {
        let local = at.as_micros().saturating_sub(self.base_micros) as i64;
        let real = local * 1_000_000 / (1_000_000 + self.skew_ppm);
        self.origin + Duration::from_micros(real.max(0) as u64)
    }
}

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
    for tag in [TAG_PEER, TAG_CLIENT] {
        let (ep, tx) = (endpoint.clone(), tx.clone());
        madsim::task::spawn(async move {
            let mut buf = vec![0u8; limits::FRAME_BYTES_MAX + 64];
            while let Ok((len, from)) = ep.recv_from(tag, &mut buf).await {
                let bytes = Bytes::copy_from_slice(&buf[..len]);
                let arrival = match (tag, replica_at(from)) {
                    (TAG_PEER, Some(peer)) => Arrival::Peer(peer, bytes),
                    (TAG_PEER, None) => continue,
                    _ => Arrival::Client(from, bytes),
                };
                if tx.send(arrival).await.is_err() {
                    return;
                }
            }
        });
    }
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

/// How a start attempt went.
enum Start {
    Running(Driver),
    /// The disk could not be read this time; try again.
    Unreadable,
    /// Recorded as a violation.
    Failed,
    /// The replica must not run: its disk is beyond repair (an operator
    /// replaces it, see `simulation::rebuild`) or it was replaced.
    Stopped,
}

/// Recovers (or bootstraps) the node from its disk.
fn start(
    world: &World,
    id: NodeId,
    epoch: madsim::time::Instant,
    endpoint: Arc<Endpoint>,
) -> Start {
    let mut w = world.lock();
    let slot = w.replicas.get_mut(&id).expect("replica exists");
    if slot.retired || slot.beyond_repair {
        return Start::Stopped;
    }
    if slot.disk.read_fails() {
        return Start::Unreadable;
    }
    let seed = w.seed ^ w.rng.next_u64();
    let voters = w.voters.clone();
    let snapshot_threshold = w.snapshot_threshold_entries;
    #[cfg(feature = "bug-switches")]
    let bugs = w.bugs;
    let slot = w.replicas.get_mut(&id).expect("replica exists");
    slot.incarnation += 1;
    let clock = Clock {
        origin: madsim::time::Instant::now(),
        base_micros: epoch.elapsed().as_micros() as u64,
        skew_ppm: slot.skew_ppm,
    };
    let now = clock.now();
    let mut config = Config::new(id, seed);
    config.tick_interval = TICK;
    config.snapshot_threshold_entries = snapshot_threshold;
    // The chat state grows with history: digest it at fixed indexes only.
    config.digest_every_entries = 32;
    #[cfg(feature = "bug-switches")]
    {
        config.bugs = bugs;
    }
    let machine = ImMachine::boot(slot.history.as_ref());
    #[cfg(feature = "bug-switches")]
    let machine = machine.with_bugs(config.bugs);
    let recovered = slot.disk.recover();
    let node = match recovered {
        // Rot at rest is found, never trusted: the replica stays down.
        // Damage the simulation did not inject is a bug.
        Err(RecoveryError::Corrupt { .. }) if slot.disk.corruptions > 0 => {
            slot.beyond_repair = true;
            return Start::Stopped;
        }
        Err(e) => Err(format!("recovery failed: {e}")),
        Ok(log) if log.snapshot.is_some() || !log.entries.is_empty() => {
            Node::recover(config.clone(), &log, machine, now).map_err(|e| e.to_string())
        }
        // Nothing durable, so nothing promised: an initial voter starts
        // over as it was started (as `kith dev` passes --bootstrap again),
        // or voters that all crashed before their bootstrap record landed
        // could never elect anyone.
        Ok(_) if slot.bootstrap => {
            Node::bootstrap(config.clone(), &voters, machine, now).map_err(|e| e.to_string())
        }
        Ok(_) => Node::join(config.clone(), machine, now).map_err(|e| e.to_string()),
    };
    let node = match node {
        Ok(node) => Arc::new(Mutex::new(node)),
        Err(detail) => {
            drop(w);
            fail(world, id, "restart", detail);
            return Start::Failed;
        }
    };
    slot.node = Some(node.clone());
    let incarnation = slot.incarnation;
    drop(w);
    Start::Running(Driver {
        id,
        world: world.clone(),
        node,
        incarnation,
        endpoint,
        clock,
        proposals: BTreeMap::new(),
        reads: BTreeMap::new(),
        verified: VerifiedCommands::default(),
    })
}

impl Driver {
    fn next_wake(&self) -> madsim::time::Instant {
        let node_timer = self.node.lock().expect("single-threaded").poll_timeout();
        let disk = self.world.lock().replicas[&self.id].disk.next_completion();
        let at = [node_timer, disk].into_iter().flatten().min();
        at.map_or_else(
            || madsim::time::Instant::now() + Duration::from_secs(3600),
            |t| self.clock.deadline(t),
        )
    }

    fn wake(&mut self) {
        let now = self.clock.now();
        let durable =
            self.world.lock().replicas.get_mut(&self.id).expect("exists").disk.complete_due(now);
        let mut node = self.node.lock().expect("single-threaded");
        if let Some(up_to) = durable {
            node.handle_input(now, Input::Persisted { up_to });
        }
        if node.poll_timeout().is_some_and(|t| t <= now) {
            node.handle_timeout(now);
        }
    }

    fn arrive(&mut self, arrival: Arrival) {
        let now = self.clock.now();
        match arrival {
            Arrival::Peer(from, bytes) => {
                self.node
                    .lock()
                    .expect("single-threaded")
                    .handle_input(now, Input::Received { from, bytes });
            }
            Arrival::Client(addr, bytes) => self.client_request(addr, &bytes),
        }
    }

    /// The sim's transport "authenticates" a client by prefixing its user id.
    fn client_request(&mut self, addr: SocketAddr, bytes: &[u8]) {
        let Some((user, frame)) = bytes.split_first_chunk::<32>().map(|(u, f)| (UserId(*u), f))
        else {
            return;
        };
        let frame = match RequestFrame::decode(frame) {
            Ok(f) => f,
            Err(e) => {
                return self.respond_later(
                    Asker { addr, request_id: 0 },
                    ClientResponse::BadRequest(e.to_string()),
                )
            }
        };
        let asker = Asker { addr, request_id: frame.request_id };
        let now = self.clock.now();
        let mut node = self.node.lock().expect("single-threaded");
        let response = match frame.request {
            ClientRequest::Submit(command) => match self.verified.verify(&command, Some(user)) {
                Err(e) => Some(ClientResponse::Refused(e)),
                Ok(_) => match node.submit(now, &command) {
                    Ok(proposal) => {
                        self.proposals.insert(proposal, asker);
                        None
                    }
                    Err(e) => Some(e.into()),
                },
            },
            ClientRequest::Query(kind) => match node.read(now, ImQuery { as_user: user, kind }) {
                Ok(read) => {
                    self.reads.insert(read, asker);
                    None
                }
                Err(e) => Some(e.into()),
            },
            ClientRequest::Presence(_) => Some(ClientResponse::PresenceTaken),
            _ => Some(ClientResponse::BadRequest("unsupported request".into())),
        };
        drop(node);
        if let Some(r) = response {
            self.respond_later(asker, r);
        }
    }

    fn respond_later(&self, asker: Asker, response: ClientResponse) {
        let frame = ResponseFrame { request_id: asker.request_id, response }.encode();
        let ep = self.endpoint.clone();
        madsim::task::spawn(async move {
            let _ = ep.send_to(asker.addr, TAG_CLIENT, &frame).await;
        });
    }

    /// Carries out every output of the node, checking invariants as it goes.
    async fn flush(&mut self) {
        loop {
            let output = self.node.lock().expect("single-threaded").poll_output();
            let Some(output) = output else { break };
            self.carry_out(output).await;
        }
        let mut w = self.world.lock();
        let node = self.node.lock().expect("single-threaded");
        if let Err(v) = w.checker.on_status(&*node, self.incarnation) {
            w.fail(v);
        }
    }

    async fn carry_out(&mut self, output: NodeOutput<ImMachine>) {
        let now = self.clock.now();
        let at = madsim::time::Instant::now().duration_since(self.clock.origin).as_micros() as u64;
        match output {
            Output::Send { to, frame } => {
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
            Output::Persist { id, new_segment, bytes } => {
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
                    let mut node = self.node.lock().expect("single-threaded");
                    node.handle_input(now, Input::PersistFailed { id, reason });
                }
            }
            Output::Applied { index, term, position, proposal, response } => {
                {
                    let mut w = self.world.lock();
                    w.trace(
                        at,
                        self.id,
                        "applied",
                        &Bytes::copy_from_slice(&index.get().to_le_bytes()),
                    );
                    if let Err(v) =
                        w.checker.on_applied(self.id, self.incarnation, index, term, position)
                    {
                        w.fail(v);
                    }
                }
                if let Some(asker) = proposal.and_then(|p| self.proposals.remove(&p)) {
                    self.respond_later(asker, response.into());
                }
            }
            Output::Dropped { proposal, outcome } => {
                if let Some(asker) = self.proposals.remove(&proposal) {
                    self.respond_later(asker, ClientResponse::dropped(outcome));
                }
            }
            Output::ReadReady { read, result, .. } => {
                if let Some(asker) = self.reads.remove(&read) {
                    self.respond_later(asker, ClientResponse::Answer(result));
                }
            }
            Output::ReadFailed { read } => {
                if let Some(asker) = self.reads.remove(&read) {
                    self.respond_later(asker, ClientResponse::Retry { maybe_applied: false });
                }
            }
            Output::MembershipChanged { membership, .. } => {
                let mut w = self.world.lock();
                if let Err(v) = w.checker.on_membership(self.id, self.incarnation, &membership) {
                    w.fail(v);
                }
            }
            Output::RoleChanged { role: Role::Leader, term, .. } => {
                let mut w = self.world.lock();
                let node = self.node.lock().expect("single-threaded");
                if let Err(v) = w.checker.on_leader(&*node, term) {
                    w.fail(v);
                }
            }
            Output::Halted { reason } => {
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
}
