//! Clients appending to shared lists and reading them back, with the
//! checks a Jepsen list-append history gets: nothing acknowledged lost,
//! nothing applied twice, no phantom values, each client's writes in its
//! order, and linearizable reads that see every write acknowledged before
//! they began.

use super::cluster::{Cluster, Event};
use super::list_machine::{Append, ListMachine};
use super::violation::Violation;
use super::workload::{Workload, WorkloadStats};
use crate::ids::{NodeId, ProposalId, ReadId};
use crate::raft::{DropOutcome, Output, ReadError, SubmitError};
use crate::session::{Route, SessionConfig, Setback};
use crate::time::Instant;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const OP_TIMEOUT: Duration = Duration::from_millis(1500);
const LISTS: u8 = 2;

#[derive(Debug)]
enum State {
    Idle,
    Appending {
        node: NodeId,
        incarnation: u64,
        proposal: ProposalId,
        deadline: Instant,
    },
    Reading {
        node: NodeId,
        incarnation: u64,
        read: ReadId,
        deadline: Instant,
        list: u8,
        must_see: Vec<u64>,
    },
}

/// What a client waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Awaited {
    Proposal(ProposalId),
    Read(ReadId),
}

impl State {
    /// Where the client's operation is outstanding, and what it waits for.
    fn awaits(&self) -> Option<((NodeId, u64), Awaited)> {
        match self {
            State::Idle => None,
            State::Appending { node, incarnation, proposal, .. } => {
                Some(((*node, *incarnation), Awaited::Proposal(*proposal)))
            }
            State::Reading { node, incarnation, read, .. } => {
                Some(((*node, *incarnation), Awaited::Read(*read)))
            }
        }
    }
}

/// The client waiting for `what` from the node incarnation `at`, if any.
fn waiting_on(clients: &mut [Client], at: (NodeId, u64), what: Awaited) -> Option<&mut Client> {
    clients.iter_mut().find(|c| c.state.awaits() == Some((at, what)))
}

#[derive(Debug)]
struct Client {
    id: u64,
    seq: u64,
    /// Where to send next: the clients' one fail-over rule (`session::Route`).
    route: Option<Route>,
    target: NodeId,
    next_action: Instant,
    /// A value whose earlier attempt definitely did not commit.
    retry: Option<u64>,
    current: Option<u64>,
    state: State,
    acked: Vec<u64>,
}

/// The clients' patience: they run on the cluster's 5 ms steps.
fn route_config() -> SessionConfig {
    SessionConfig {
        attempt_timeout: OP_TIMEOUT,
        patience: None,
        backoff_min: Duration::from_millis(5),
        backoff_max: Duration::from_millis(200),
        ..SessionConfig::default()
    }
}

/// The list-append workload.
#[derive(Debug, Default)]
pub struct ListWorkload {
    clients: Vec<Client>,
    submitted: BTreeSet<u64>,
    acked: BTreeMap<u64, u8>,
    indeterminate: BTreeSet<u64>,
    reads: u64,
    /// Whether clients start new operations (off to let things settle).
    pub active: bool,
}

fn list_of(value: u64) -> u8 {
    ((value >> 32) % u64::from(LISTS)) as u8
}

impl ListWorkload {
    /// `clients` clients, all starting at replica 1.
    pub fn new(clients: u64) -> ListWorkload {
        ListWorkload {
            clients: (1..=clients)
                .map(|id| Client {
                    id,
                    seq: 0,
                    route: None,
                    target: NodeId(1),
                    next_action: Instant::ZERO,
                    retry: None,
                    current: None,
                    state: State::Idle,
                    acked: Vec::new(),
                })
                .collect(),
            active: true,
            ..ListWorkload::default()
        }
    }

    fn act_now(&mut self, cluster: &mut Cluster<ListMachine>) -> Result<(), Violation> {
        for event in cluster.take_events() {
            self.on_event(cluster.now(), event)?;
        }
        let now = cluster.now();
        for i in 0..self.clients.len() {
            self.expire(i, cluster, now);
            let c = &self.clients[i];
            if matches!(c.state, State::Idle)
                && c.next_action <= now
                && (self.active || c.retry.is_some())
            {
                self.start_op(i, cluster);
            }
        }
        Ok(())
    }

    fn expire(&mut self, i: usize, cluster: &mut Cluster<ListMachine>, now: Instant) {
        let c = &mut self.clients[i];
        let (node, incarnation, deadline) = match &c.state {
            State::Idle => return,
            State::Appending { node, incarnation, deadline, .. }
            | State::Reading { node, incarnation, deadline, .. } => {
                (*node, *incarnation, *deadline)
            }
        };
        let lost = !cluster.is_live(node) || cluster.incarnation(node) != incarnation;
        if now >= deadline || lost {
            if let (State::Appending { .. }, Some(v)) = (&c.state, c.current.take()) {
                self.indeterminate.insert(v);
            }
            c.state = State::Idle;
            self.redirect(i, cluster, Setback::Failed);
        }
    }

    fn start_op(&mut self, i: usize, cluster: &mut Cluster<ListMachine>) {
        let now = cluster.now();
        let read = self.clients[i].retry.is_none() && cluster.rng().chance(0.1);
        let c = &mut self.clients[i];
        let target = c.target;
        if read {
            let list = (c.id % u64::from(LISTS)) as u8;
            let must_see =
                self.acked.iter().filter(|(_, l)| **l == list).map(|(v, _)| *v).collect();
            match cluster.read(target, list) {
                Ok(read) => {
                    let incarnation = cluster.incarnation(target);
                    let deadline = now + OP_TIMEOUT;
                    let c = &mut self.clients[i];
                    c.state = State::Reading {
                        node: target,
                        incarnation,
                        read,
                        deadline,
                        list,
                        must_see,
                    };
                }
                Err(ReadError::NotLeader { leader_hint }) => {
                    self.redirect(i, cluster, Setback::NotLeader(leader_hint))
                }
                Err(ReadError::Halted) => self.redirect(i, cluster, Setback::Failed),
                Err(_) => self.redirect(i, cluster, Setback::NotYet),
            }
            return;
        }
        let value = c.retry.take().unwrap_or_else(|| {
            c.seq += 1;
            (c.id << 32) | c.seq
        });
        self.submitted.insert(value);
        match cluster.submit(target, &Append { list: list_of(value), value }) {
            Ok(proposal) => {
                let incarnation = cluster.incarnation(target);
                let c = &mut self.clients[i];
                c.current = Some(value);
                c.state = State::Appending {
                    node: target,
                    incarnation,
                    proposal,
                    deadline: now + OP_TIMEOUT,
                };
            }
            Err(e) => {
                self.clients[i].retry = Some(value);
                let setback = match e {
                    SubmitError::NotLeader { leader_hint } => Setback::NotLeader(leader_hint),
                    SubmitError::Halted => Setback::Failed,
                    _ => Setback::NotYet,
                };
                self.redirect(i, cluster, setback);
            }
        }
    }

    /// Moves client `i` after `setback`, the way every client does.
    fn redirect(&mut self, i: usize, cluster: &mut Cluster<ListMachine>, setback: Setback) {
        let ids = cluster.ids();
        let now = cluster.now();
        let c = &mut self.clients[i];
        let target = c.target;
        let route = c.route.get_or_insert_with(|| {
            let targets = ids.iter().map(|id| Some(*id)).collect();
            let first = ids.iter().position(|id| *id == target).unwrap_or(0);
            Route::new(targets, first, route_config())
        });
        let wait = route.after(setback, cluster.rng());
        c.target = ids[route.target()];
        c.next_action = now + wait;
    }

    fn on_event(&mut self, now: Instant, event: Event<ListMachine>) -> Result<(), Violation> {
        let Event { node, incarnation, output } = event;
        let at = (node, incarnation);
        match output {
            Output::Applied { proposal: Some(p), .. } => {
                let Some(c) = waiting_on(&mut self.clients, at, Awaited::Proposal(p)) else {
                    return Ok(());
                };
                let value = c.current.take().expect("appending has a value");
                if let Some(route) = c.route.as_mut() {
                    route.restart();
                }
                c.acked.push(value);
                c.state = State::Idle;
                c.next_action = now + Duration::from_millis(1 + value % 7);
                self.acked.insert(value, list_of(value));
                self.indeterminate.remove(&value);
            }
            Output::Dropped { proposal: p, outcome } => {
                let Some(c) = waiting_on(&mut self.clients, at, Awaited::Proposal(p)) else {
                    return Ok(());
                };
                let value = c.current.take().expect("appending has a value");
                match outcome {
                    DropOutcome::NotCommitted => c.retry = Some(value),
                    DropOutcome::Unknown => {
                        self.indeterminate.insert(value);
                    }
                }
                c.state = State::Idle;
            }
            Output::ReadReady { read: r, result, .. } => {
                let Some(c) = waiting_on(&mut self.clients, at, Awaited::Read(r)) else {
                    return Ok(());
                };
                let State::Reading { must_see, list, .. } =
                    std::mem::replace(&mut c.state, State::Idle)
                else {
                    unreachable!()
                };
                let seen: BTreeSet<u64> = result.iter().copied().collect();
                if let Some(missing) = must_see.iter().find(|v| !seen.contains(v)) {
                    return Err(Violation { invariant: "linearizable read", detail: format!("read of list {list} at node {node} misses acknowledged value {missing:#x}"), at: now });
                }
                if seen.len() != result.len() {
                    return Err(Violation {
                        invariant: "no duplicate",
                        detail: format!("read of list {list} shows a value twice"),
                        at: now,
                    });
                }
                self.reads += 1;
            }
            Output::ReadFailed { read: r } => {
                if let Some(c) = waiting_on(&mut self.clients, at, Awaited::Read(r)) {
                    c.state = State::Idle;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks the final lists of a converged cluster against the history.
    fn check_lists(&self, lists: &BTreeMap<u8, Vec<u64>>, at: Instant) -> Result<(), Violation> {
        let fail = |invariant, detail| Err(Violation { invariant, detail, at });
        let mut present = BTreeSet::new();
        for (list, values) in lists {
            for v in values {
                if !present.insert(*v) {
                    return fail(
                        "no duplicate",
                        format!("value {v:#x} appears twice (list {list})"),
                    );
                }
                if !self.submitted.contains(v) || list_of(*v) != *list {
                    return fail(
                        "no phantom",
                        format!("value {v:#x} in list {list} was never submitted there"),
                    );
                }
            }
        }
        if let Some(lost) = self.acked.keys().find(|v| !present.contains(v)) {
            return fail(
                "no acknowledged write lost",
                format!("value {lost:#x} was acknowledged but is missing"),
            );
        }
        for c in &self.clients {
            for list in 0..LISTS {
                let mine: Vec<u64> = lists.get(&list).map_or(Vec::new(), |l| {
                    l.iter()
                        .copied()
                        .filter(|v| v >> 32 == c.id && self.acked.contains_key(v))
                        .collect()
                });
                let acked_here: Vec<u64> =
                    c.acked.iter().copied().filter(|v| list_of(*v) == list).collect();
                if mine != acked_here {
                    return fail(
                        "client order",
                        format!(
                            "client {} list {list}: acked {acked_here:x?}, stored {mine:x?}",
                            c.id
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

/// The barrier value: never a client's (client ids start at 1 in the high bits).
const BARRIER: u64 = u64::MAX;

impl Workload<ListMachine> for ListWorkload {
    fn act(&mut self, cluster: &mut Cluster<ListMachine>) -> Result<(), Violation> {
        self.act_now(cluster)
    }

    fn finish(&mut self) {
        self.active = false;
    }

    fn is_quiet(&self) -> bool {
        self.clients.iter().all(|c| matches!(c.state, State::Idle) && c.retry.is_none())
    }

    fn submit_barrier(&mut self, cluster: &mut Cluster<ListMachine>, leader: NodeId) -> bool {
        cluster.submit(leader, &Append { list: 0, value: BARRIER }).is_ok()
    }

    fn barrier_applied(&self, machine: &ListMachine) -> bool {
        machine.list(0).contains(&BARRIER)
    }

    fn check_final(
        &mut self,
        cluster: &mut Cluster<ListMachine>,
        leader: NodeId,
    ) -> Result<(), Violation> {
        let mut lists =
            cluster.node(leader).expect("leader is live").state_machine().lists().clone();
        if let Some(l) = lists.get_mut(&0) {
            l.retain(|v| *v != BARRIER);
        }
        self.check_lists(&lists, cluster.now())
    }

    fn stats(&self) -> WorkloadStats {
        WorkloadStats {
            acked: self.acked.len() as u64,
            indeterminate: self.indeterminate.len() as u64,
            reads: self.reads,
        }
    }
}
