//! The client session: one user's device talking to a cluster, sans I/O.
//!
//! A command is signed once and resent unchanged (same command id) until a
//! replica gives its outcome, so a leader change, a lost answer or a
//! crashed replica never turns into a lost or doubled message: the state
//! machine applies a command id at most once. Where to send next is decided
//! here, once, for every driver (the real client in `kith-io-tokio`, the
//! simulated clients in `kith-io-sim`, the harness's chat clients): a final
//! answer (anything but `NotLeader`, `Retry` or `Busy`) ends the call;
//! every other answer, a timeout or a broken connection is a [`Setback`]
//! the [`Route`] turns into the next replica and a backoff.
//!
//! # The run loop a driver writes
//!
//! ```text
//! session.begin(now, request);
//! loop {
//!     while let Some(output) = session.poll_output() {
//!         match output {
//!             Send { target, request_id, frame } => connect to targets[target] if needed
//!                 and send frame; later report Answered { frame } or
//!                 Failed { request_id } (a dial that fails is Failed at once),
//!             Finished(reply) => return reply, // Ok(Reply) or Err(CallError)
//!             GaveUp { patience } => return a timeout error,
//!         }
//!     }
//!     wait for the answer or session.poll_timeout(); report it:
//!     session.handle_input(now, ..) or session.handle_timeout(now)
//! }
//! ```

mod reply;
mod route;
#[cfg(test)]
mod tests;

pub use reply::{reply_to, CallError, Reply, StoreReply};
pub use route::{Route, Setback};

use crate::ids::NodeId;
use crate::im::identity::Identity;
use crate::im::protocol::{CommandBody, Operation, SignedCommand, IM_PROTOCOL_VERSION};
use crate::rng::SeededRng;
use crate::time::Instant;
use crate::wire::client_protocol::{ClientRequest, ClientResponse, RequestFrame, ResponseFrame};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Duration;

/// How patient a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// How long one attempt waits for its answer.
    pub attempt_timeout: Duration,
    /// How long a call keeps trying; None: until it has a final answer.
    pub patience: Option<Duration>,
    /// The first backoff between attempts.
    pub backoff_min: Duration,
    /// The longest backoff between attempts.
    pub backoff_max: Duration,
    /// "Not yet" answers in a row from one replica before trying another.
    pub misses_before_fail_over: u32,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            attempt_timeout: Duration::from_secs(10),
            patience: Some(Duration::from_secs(30)),
            backoff_min: Duration::from_millis(25),
            backoff_max: Duration::from_secs(1),
            misses_before_fail_over: 3,
        }
    }
}

/// A fact the driver reports.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SessionInput {
    /// An answer arrived (untrusted bytes, as received; the frame says
    /// which request it answers, and one for an earlier attempt is ignored).
    Answered {
        /// The response frame.
        frame: Bytes,
    },
    /// The attempt failed: the connection broke or could not be made.
    Failed {
        /// The attempt.
        request_id: u64,
    },
}

/// A command for the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionOutput {
    /// Send `frame` to the replica at `target` in the driver's list
    /// (connecting first if it is not the one connected).
    Send {
        /// Index in the list of replicas.
        target: usize,
        /// The attempt's request id (inside the frame too).
        request_id: u64,
        /// The encoded request frame.
        frame: Vec<u8>,
    },
    /// The call is over: its final answer, read for the request it answers.
    Finished(Result<Reply, CallError>),
    /// No final answer within the session's patience.
    GaveUp {
        /// How long it tried.
        patience: Duration,
    },
}

/// What the call in progress is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the answer to attempt `request_id` until `until`.
    Waiting { request_id: u64, until: Instant },
    /// Waiting out a backoff before the next attempt.
    Backoff { until: Instant },
}

#[derive(Clone, Debug)]
struct Call {
    request: ClientRequest,
    started: Instant,
    deadline: Option<Instant>,
    phase: Phase,
}

/// One client's session with a cluster. See the module docs.
#[derive(Debug)]
pub struct ClientSession {
    route: Route,
    rng: SeededRng,
    config: SessionConfig,
    next_request_id: u64,
    call: Option<Call>,
    outputs: VecDeque<SessionOutput>,
}

impl ClientSession {
    /// A session over `targets` (the driver's list of replicas, each with
    /// its Raft id where the driver knows it, so leader hints can be
    /// followed), starting at `first`. `seed` drives command ids and jitter.
    pub fn new(
        targets: Vec<Option<NodeId>>,
        first: usize,
        seed: u64,
        config: SessionConfig,
    ) -> Self {
        ClientSession {
            route: Route::new(targets, first, config),
            rng: SeededRng::new(seed),
            config,
            next_request_id: 0,
            call: None,
            outputs: VecDeque::new(),
        }
    }

    /// Signs `op` with a fresh command id, stamped `now_ms` (the client's
    /// wall clock: the state machine refuses commands far from its own).
    ///
    /// The id is time-ordered (UUID version 7: `now_ms`, then 74 random
    /// bits): replicas index placed messages by `(author, command_id)`, and
    /// ids that grow with time put an author's new keys side by side, so a
    /// history commit rewrites a few index pages instead of one per message
    /// (with random ids a replica's load rate fell as its history grew:
    /// docs/PERFORMANCE.md, section 4).
    pub fn sign(&mut self, identity: &Identity, now_ms: u64, op: Operation) -> SignedCommand {
        let command_id = time_ordered_id(now_ms, self.rng.next_u64(), self.rng.next_u64());
        let body =
            CommandBody { version: IM_PROTOCOL_VERSION, command_id, issued_at_ms: now_ms, op };
        SignedCommand::sign(identity, &body)
    }

    /// Starts a call: `request` is sent, and resent unchanged, until a final
    /// answer or the session's patience runs out. A call already in
    /// progress is a driver bug.
    pub fn begin(&mut self, now: Instant, request: ClientRequest) {
        self.begin_within(now, request, self.config.patience);
    }

    /// [`Self::begin`] with its own patience (None: until a final answer).
    pub fn begin_within(
        &mut self,
        now: Instant,
        request: ClientRequest,
        patience: Option<Duration>,
    ) {
        assert!(self.call.is_none(), "a session runs one call at a time");
        let deadline = patience.map(|p| now + p);
        let phase = Phase::Backoff { until: now };
        self.route.restart();
        self.call = Some(Call { request, started: now, deadline, phase });
        self.attempt(now);
    }

    /// Ends the call in progress, if any, without an answer: its driver
    /// stopped waiting for it (a call dropped half-way, say, because
    /// another connection already had what it asked). Answers to it that
    /// arrive later are ignored.
    pub fn abandon(&mut self) {
        self.call = None;
        self.outputs.clear();
    }

    /// Reports a fact about the attempt in progress.
    pub fn handle_input(&mut self, now: Instant, input: SessionInput) {
        let Some(Phase::Waiting { request_id: waiting, .. }) = self.call.as_ref().map(|c| c.phase)
        else {
            return;
        };
        match input {
            SessionInput::Answered { frame } => match ResponseFrame::decode(&frame) {
                // A replica answers a request it could not decode as request 0.
                Ok(f) if f.request_id == waiting || f.request_id == 0 => {
                    self.on_answer(now, f.response)
                }
                Ok(_) => {}
                Err(_) => self.retry(now, Setback::Failed),
            },
            SessionInput::Failed { request_id } if request_id == waiting => {
                self.retry(now, Setback::Failed)
            }
            _ => {}
        }
    }

    /// Advances time; call when [`Self::poll_timeout`] is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(call) = self.call.as_ref() else { return };
        match call.phase {
            Phase::Waiting { until, .. } if until <= now => self.retry(now, Setback::Failed),
            Phase::Backoff { until } if until <= now => self.attempt(now),
            _ => {}
        }
    }

    /// The next command for the driver.
    pub fn poll_output(&mut self) -> Option<SessionOutput> {
        self.outputs.pop_front()
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.call.as_ref().map(|c| match c.phase {
            Phase::Waiting { until, .. } | Phase::Backoff { until } => until,
        })
    }

    /// The replica (index in the list) the session talks to now.
    pub fn target(&self) -> usize {
        self.route.target()
    }

    /// Replaces the list of replicas (an operator changed it); the session
    /// stays with its current replica if it is still on the list.
    pub fn set_targets(&mut self, targets: Vec<Option<NodeId>>, current: usize) {
        self.route.set_targets(targets, current);
    }

    fn on_answer(&mut self, now: Instant, response: ClientResponse) {
        let setback = match response {
            ClientResponse::NotLeader { leader_hint } => Setback::NotLeader(leader_hint),
            ClientResponse::Retry { .. } | ClientResponse::Busy => Setback::NotYet,
            ClientResponse::RateLimited { retry_after_ms } => {
                Setback::Wait(Duration::from_millis(retry_after_ms))
            }
            done => {
                let Some(call) = self.call.take() else { return };
                let reply = reply_to(&call.request, done);
                self.outputs.push_back(SessionOutput::Finished(reply));
                return;
            }
        };
        self.retry(now, setback);
    }

    /// Schedules the next attempt after the route's backoff, where it says.
    fn retry(&mut self, now: Instant, setback: Setback) {
        let Some(call) = self.call.as_mut() else { return };
        let until = now + self.route.after(setback, &mut self.rng);
        if let Some(deadline) = call.deadline.filter(|d| until > *d) {
            let patience = deadline.saturating_since(call.started);
            self.call = None;
            self.outputs.push_back(SessionOutput::GaveUp { patience });
            return;
        }
        call.phase = Phase::Backoff { until };
    }

    fn attempt(&mut self, now: Instant) {
        let Some(call) = self.call.as_mut() else { return };
        self.next_request_id += 1;
        let request_id = self.next_request_id;
        let until = now + self.config.attempt_timeout;
        call.phase = Phase::Waiting { request_id, until };
        let frame = RequestFrame { request_id, request: call.request.clone() }.encode();
        let target = self.route.target();
        self.outputs.push_back(SessionOutput::Send { target, request_id, frame });
    }
}

/// A UUID version 7 from `unix_ms` and two random words (74 of their bits
/// are used): ids made later sort after ids made earlier, to the
/// millisecond.
fn time_ordered_id(unix_ms: u64, random_high: u64, random_low: u64) -> uuid::Uuid {
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&random_high.to_le_bytes());
    random[8..].copy_from_slice(&random_low.to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(unix_ms, &random).into_uuid()
}
