//! The Raft driver: raft-rs's `RawNode` and a [`StateMachine`] behind one
//! sans-I/O contract ([`Node`]), and raft-rs's storage seen through kith's
//! log ([`LogStore`]). See the crate docs for the run loop a driver writes.

mod apply;
mod command_batch;
mod error;
mod inbound;
mod input;
mod log_store;
mod membership;
mod metrics;
mod output;
mod persist_pipeline;
mod proposals;
mod reads;
mod ready;
mod start;

pub use error::{ReadError, StartError, SubmitError};
pub use input::Input;
pub use log_store::{LogStore, LogStoreError, BOOTSTRAP_INDEX};
pub use membership::MembershipChange;
pub use metrics::NodeMetrics;
pub use output::{DropOutcome, Membership, Output, Role};
pub use start::OnEmptyDisk;

use crate::config::{bug_on, Config};
use crate::durable::Record;
use crate::ids::{LogIndex, NodeId, ProposalId, ReadId, Term};
use crate::limits;
use crate::state_machine::{Digest, StateMachine};
use crate::time::Instant;
use crate::wire::{FrameError, PeerBody, PeerFrame, SnapshotAssembler};
use bytes::Bytes;
use persist_pipeline::PersistPipeline;
use proposals::{Placed, Proposals};
use raft::RawNode;
use reads::Reads;
use start::encode_meta;
use std::collections::{BTreeSet, VecDeque};

/// The output type of a node replicating `S`.
pub type NodeOutput<S> = Output<<S as StateMachine>::Response, <S as StateMachine>::QueryResult>;

/// A point-in-time view of a node, for drivers, metrics and checkers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// This node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Highest index known committed.
    pub commit: LogIndex,
    /// Highest index applied to the state machine.
    pub applied: LogIndex,
    /// Highest index in the log.
    pub last_index: LogIndex,
    /// Index covered by the latest snapshot.
    pub snapshot_index: LogIndex,
    /// Membership as of the applied index.
    pub membership: Membership,
}

/// One replica: a Raft driver and the state machine it replicates.
pub struct Node<S: StateMachine> {
    config: Config,
    raw: RawNode<LogStore>,
    machine: S,
    now: Instant,
    next_tick_at: Instant,
    ticks: u64,
    applied: LogIndex,
    /// Bytes of the entries applied since the last snapshot (those replayed
    /// after a restart included), for `Config::snapshot_threshold_bytes`.
    applied_bytes_since_snapshot: u64,
    outputs: VecDeque<NodeOutput<S>>,
    proposals: Proposals,
    reads: Reads<S::Query>,
    persist: PersistPipeline,
    assembler: SnapshotAssembler,
    role: Role,
    leader: Option<NodeId>,
    membership: Membership,
    /// Replicas this node has seen leave its configuration (since it
    /// started) and not come back: it sends them nothing, so a removed
    /// replica that still believes itself a member gets no entries, votes
    /// or acknowledgements from the replicas that removed it.
    removed: BTreeSet<NodeId>,
    halted: Option<String>,
    pending_snapshot_reports: Vec<u64>,
    metrics: NodeMetrics,
    checkpoint: Option<(LogIndex, Digest)>,
}

impl<S: StateMachine> std::fmt::Debug for Node<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("status", &self.status()).finish_non_exhaustive()
    }
}

impl<S: StateMachine> Node<S> {
    /// Feeds one fact from the driver.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.now = self.now.max(now);
        if self.halted.is_some() {
            return;
        }
        match input {
            Input::Received { from, bytes } => self.receive(from, &bytes),
            Input::Persisted { up_to } => {
                self.persist.mark_durable(up_to);
                self.release_persisted();
            }
            Input::PersistFailed { id, reason } => {
                self.halt(format!("persisting batch {id} failed: {reason}"));
                return;
            }
            Input::PeerUnreachable { peer } => {
                self.raw.report_unreachable(peer.get());
                if self.role == Role::Leader {
                    self.raw.report_snapshot(peer.get(), raft::SnapshotStatus::Failure);
                }
            }
        }
        self.drive();
    }

    /// Advances Raft time to `now`; call when [`Self::poll_timeout`] is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.halted.is_some() {
            return;
        }
        let mut ticked = 0;
        while self.next_tick_at <= self.now {
            if ticked < limits::TICKS_CATCH_UP_MAX {
                self.raw.tick();
                self.ticks += 1;
                ticked += 1;
            }
            self.next_tick_at = self.next_tick_at + self.config.tick_interval;
        }
        for read in self.reads.expire(self.ticks) {
            self.outputs.push_back(Output::ReadFailed { read });
        }
        self.drive();
    }

    /// The next command for the driver, if any.
    pub fn poll_output(&mut self) -> Option<NodeOutput<S>> {
        if self.proposals.queued() > 0 && self.halted.is_none() {
            self.flush_proposals();
        }
        self.outputs.pop_front()
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.halted.is_none().then_some(self.next_tick_at)
    }

    /// Submits a command. Accepted commands are batched into log entries
    /// when the driver next polls; the result arrives as `Output::Applied`
    /// (with this proposal id) or `Output::Dropped`.
    pub fn submit(
        &mut self,
        now: Instant,
        command: &S::Command,
    ) -> Result<ProposalId, SubmitError> {
        self.now = self.now.max(now);
        self.check_accepting()?;
        let bytes = postcard::to_allocvec(command).expect("commands always encode");
        if bytes.len() > limits::COMMAND_BYTES_MAX {
            return Err(SubmitError::TooLarge { len: bytes.len(), max: limits::COMMAND_BYTES_MAX });
        }
        if !self.proposals.has_room() || self.outputs.len() >= limits::OUTPUT_QUEUE_MAX {
            return Err(SubmitError::QueueFull);
        }
        let id = self.proposals.allocate();
        self.proposals.enqueue(id, Bytes::from(bytes));
        Ok(id)
    }

    /// Proposes a membership change; the result arrives as
    /// `Output::MembershipChanged` (with this proposal id) or `Output::Dropped`.
    pub fn change_membership(
        &mut self,
        now: Instant,
        change: &MembershipChange,
    ) -> Result<ProposalId, SubmitError> {
        self.now = self.now.max(now);
        self.check_accepting()?;
        if self.raw.raft.has_pending_conf() {
            return Err(SubmitError::MembershipChangePending);
        }
        let cc = change.to_conf_change(&self.membership)?;
        let id = self.proposals.allocate();
        self.raw
            .propose_conf_change(Vec::new(), cc)
            .map_err(|_| SubmitError::MembershipChangePending)?;
        let index = self.raw.raft.raft_log.last_index();
        self.proposals.place(index, Term(self.raw.raft.term), Placed::Membership(id));
        self.drive();
        Ok(id)
    }

    /// Starts a linearizable read; the answer arrives as `Output::ReadReady`
    /// or `Output::ReadFailed`. Works on followers too (the leader confirms).
    pub fn read(&mut self, now: Instant, query: S::Query) -> Result<ReadId, ReadError> {
        self.now = self.now.max(now);
        if self.halted.is_some() {
            return Err(ReadError::Halted);
        }
        if self.leader.is_none() {
            return Err(ReadError::NotLeader { leader_hint: None });
        }
        if !self.reads.has_room() {
            return Err(ReadError::QueueFull);
        }
        let id = self.reads.start(query, self.ticks + self.config.read_timeout_ticks);
        if bug_on!(self.config, serve_reads_locally) {
            self.reads.confirmed(&reads::encode_ctx(id), self.applied.get());
            self.drive();
            return Ok(id);
        }
        self.raw.read_index(reads::encode_ctx(id));
        self.drive();
        Ok(id)
    }

    /// Asks the leader to hand leadership to `to`.
    pub fn transfer_leadership(&mut self, now: Instant, to: NodeId) {
        self.now = self.now.max(now);
        if self.halted.is_none() {
            self.raw.transfer_leader(to.get());
            self.drive();
        }
    }

    /// Starts an election now (used by tests and operators).
    pub fn campaign(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.halted.is_none() && self.raw.campaign().is_ok() {
            self.drive();
        }
    }

    /// This node's view of itself.
    pub fn status(&self) -> NodeStatus {
        let log = &self.raw.raft.raft_log;
        NodeStatus {
            id: self.config.id,
            role: self.role,
            term: Term(self.raw.raft.term),
            leader: self.leader,
            commit: LogIndex(log.committed),
            applied: self.applied,
            last_index: LogIndex(log.last_index()),
            snapshot_index: LogIndex(self.raw.store().snapshot_index()),
            membership: self.membership.clone(),
        }
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Membership as of the applied index (borrowed: cheap enough to ask
    /// for every inbound frame, unlike [`Self::status`]).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The term of the entry at `index`, if this node still holds it.
    pub fn entry_term(&self, index: LogIndex) -> Option<Term> {
        self.raw.raft.raft_log.term(index.get()).ok().map(Term)
    }

    /// The replicated state machine (read-only).
    pub fn state_machine(&self) -> &S {
        &self.machine
    }

    /// A digest of the state machine at the applied index.
    pub fn digest(&self) -> Digest {
        self.machine.digest()
    }

    /// The latest (index, digest) taken under `Config::digest_every_entries`.
    pub fn digest_checkpoint(&self) -> Option<(LogIndex, Digest)> {
        self.checkpoint
    }

    /// Counters about this node.
    pub fn metrics(&self) -> &NodeMetrics {
        &self.metrics
    }

    /// Why the node halted, if it did.
    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    fn check_accepting(&self) -> Result<(), SubmitError> {
        if self.halted.is_some() {
            return Err(SubmitError::Halted);
        }
        if self.role != Role::Leader {
            return Err(SubmitError::NotLeader { leader_hint: self.leader });
        }
        if !self.membership.voters.contains(&self.config.id) {
            // A leader that removed itself is handing over.
            return Err(SubmitError::NotLeader { leader_hint: None });
        }
        Ok(())
    }

    /// Applies a new configuration, remembering who left it.
    fn set_membership(&mut self, new: Membership) {
        let old = std::mem::replace(&mut self.membership, new);
        self.removed.extend(old.members().filter(|id| !self.membership.contains(*id)));
        self.removed.retain(|id| !self.membership.contains(*id));
    }

    fn receive(&mut self, from: NodeId, bytes: &[u8]) {
        self.metrics.frames_received += 1;
        let frame = match PeerFrame::decode(bytes) {
            Ok(frame) => frame,
            Err(e) => return self.count_bad_frame(from, &e),
        };
        if frame.from != from || frame.to != self.config.id || from == self.config.id {
            return self.count_bad_frame(from, &FrameError::Invalid("misaddressed frame"));
        }
        let (message, snapshot_data) = match frame.body {
            PeerBody::Raft(m) if m.snapshot.is_none() => (m, Bytes::new()),
            PeerBody::Raft(_) => {
                return self.count_bad_frame(from, &FrameError::Invalid("snapshot outside chunks"))
            }
            PeerBody::SnapshotChunk(chunk) => match self.assembler.accept(from, chunk) {
                Ok(Some(done)) => done,
                Ok(None) => return,
                Err(e) => return self.count_bad_frame(from, &e),
            },
        };
        let mut message = match message.to_raft(from.get(), self.config.id.get(), snapshot_data) {
            Ok(m) => m,
            Err(e) => return self.count_bad_frame(from, &e),
        };
        if let Err(reason) = inbound::screen(&mut message, self.raw.raft.raft_log.last_index()) {
            return self.count_bad_frame(from, &FrameError::Invalid(reason));
        }
        if let Err(e) = self.raw.step(message) {
            self.metrics.frames_refused += 1;
            tracing::debug!(node = %self.config.id, %from, error = %e, "raft refused a message");
        }
    }

    fn count_bad_frame(&mut self, from: NodeId, error: &FrameError) {
        match error {
            FrameError::Version { .. } => self.metrics.frames_wrong_version += 1,
            FrameError::Malformed(_) | FrameError::TooLarge { .. } => {
                self.metrics.frames_malformed += 1
            }
            FrameError::Invalid(_) => self.metrics.frames_invalid += 1,
        }
        tracing::warn!(node = %self.config.id, %from, %error, "dropped a peer frame");
    }

    fn halt(&mut self, reason: String) {
        tracing::error!(node = %self.config.id, %reason, "node halted");
        self.halted = Some(reason.clone());
        self.outputs.push_back(Output::Halted { reason });
    }

    fn emit_persist(
        &mut self,
        records: &[Record],
        new_segment: bool,
        ready: Option<u64>,
        messages: Vec<raft::eraftpb::Message>,
    ) {
        if let Some(batch) = self.persist.push(records, new_segment, ready, messages) {
            self.metrics.persists += 1;
            self.outputs.push_back(Output::Persist {
                id: batch.id,
                new_segment: batch.new_segment,
                bytes: batch.bytes,
            });
        }
    }
}
