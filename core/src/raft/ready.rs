//! The Ready cycle (raft-rs's asynchronous-persistence variant).
//!
//! For each Ready: send `messages` at once (the leader replicates while it
//! persists); install a snapshot; apply committed entries (raft-rs caps them
//! at the locally persisted index); append entries and hard state to the
//! store and emit them as one `Persist` batch; hold `persisted_messages`
//! until the driver reports that batch durable; `advance_append_async`.
//! When a batch becomes durable, `on_persist_ready` lets raft-rs count the
//! leader's own copy and commit further.

use super::{Node, Output, Role};
use crate::config::bug_on;
use crate::durable::Record;
use crate::ids::{LogIndex, NodeId, Term};
use crate::limits;
use crate::state_machine::StateMachine;
use crate::wire::{PeerBody, PeerFrame, SnapshotChunk, WireEntry, WireMessage, WireSnapshotMeta};
use raft::eraftpb::{Message, MessageType, Snapshot};
use raft::StateRole;

impl<S: StateMachine> Node<S> {
    /// Runs Ready cycles until raft-rs has nothing more to say.
    pub(super) fn drive(&mut self) {
        while self.halted.is_none()
            && self.persist.in_flight() < limits::PERSISTS_IN_FLIGHT_MAX
            && self.raw.has_ready()
        {
            self.handle_ready();
        }
        for to in std::mem::take(&mut self.pending_snapshot_reports) {
            self.raw.report_snapshot(to, raft::SnapshotStatus::Finish);
        }
        if self.halted.is_none() {
            self.after_apply();
        }
    }

    fn handle_ready(&mut self) {
        let mut rd = self.raw.ready();
        if let Some(ss) = rd.ss() {
            let (role, leader) = (ss.raft_state, ss.leader_id);
            self.observe_role(role, leader);
        }
        for m in rd.take_messages() {
            self.send_raft(m);
        }
        let mut records = Vec::new();
        let mut new_segment = false;
        if !rd.snapshot().is_empty() {
            let snapshot = rd.snapshot().clone();
            let local = match self.install_snapshot(&snapshot) {
                Ok(local) => local,
                Err(reason) => {
                    self.halt(reason);
                    return;
                }
            };
            records.push(Record::Snapshot {
                meta: WireSnapshotMeta::from_raft(local.get_metadata()),
                data: local.data,
            });
            new_segment = true;
        }
        let committed = rd.take_committed_entries();
        self.apply_entries(committed);
        if !rd.entries().is_empty() {
            self.raw.mut_store().append(rd.entries());
            records.push(Record::Entries(rd.entries().iter().map(WireEntry::from_raft).collect()));
        }
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().set_hard_state(hs.clone());
            records.push(Record::HardState(self.raw.store().durable_hard_state()));
        }
        for rs in rd.take_read_states() {
            self.reads.confirmed(&rs.request_ctx, rs.index);
        }
        let mut persisted_messages = rd.take_persisted_messages();
        let number = rd.number();
        self.raw.advance_append_async(rd);
        if new_segment {
            // An installed snapshot replaces the log at once, but raft-rs
            // only learns it is applied once it counts it persisted, and in
            // between it may read entries after its old applied index (to
            // look for pending membership changes before campaigning): they
            // are gone. So count it persisted now, while the messages that
            // promise durability (the acknowledgement to the leader) still
            // wait for the disk below. Earlier batches are superseded by the
            // snapshot; a crash before it lands costs only a resend.
            self.raw.on_persist_ready(number);
            self.report_applied();
        }
        if bug_on!(self.config, ack_before_persist) {
            for m in persisted_messages.drain(..) {
                self.send_raft(m);
            }
        }
        self.emit_persist(&records, new_segment, Some(number), persisted_messages);
        self.release_persisted();
    }

    /// Tells raft-rs how far the state machine has applied. An installed
    /// snapshot counts only once raft-rs knows it is persisted.
    fn report_applied(&mut self) {
        let log = &self.raw.raft.raft_log;
        let reportable = self.applied.get().min(log.persisted).min(log.committed);
        if reportable > log.applied {
            self.raw.advance_apply_to(reportable);
        }
    }

    /// Sends whatever durable batches released and tells raft-rs.
    pub(super) fn release_persisted(&mut self) {
        let released = self.persist.release();
        for m in released.messages {
            self.send_raft(m);
        }
        if let Some(number) = released.ready {
            self.raw.on_persist_ready(number);
        }
        self.report_applied();
    }

    fn observe_role(&mut self, role: StateRole, leader: u64) {
        let role = match role {
            StateRole::Follower => Role::Follower,
            StateRole::PreCandidate => Role::PreCandidate,
            StateRole::Candidate => Role::Candidate,
            StateRole::Leader => Role::Leader,
        };
        let leader = (leader != 0).then_some(NodeId(leader));
        if self.role == Role::Leader && role != Role::Leader {
            for proposal in self.proposals.drain_queue() {
                let outcome = super::DropOutcome::NotCommitted;
                self.outputs.push_back(Output::Dropped { proposal, outcome });
            }
        }
        if leader != self.leader {
            self.metrics.leader_changes += 1;
        }
        self.role = role;
        self.leader = leader;
        let term = Term(self.raw.raft.term);
        self.outputs.push_back(Output::RoleChanged { role, term, leader });
    }

    fn send_raft(&mut self, mut m: Message) {
        let to = NodeId(m.to);
        if self.removed.contains(&to)
            && self.leader != Some(to)
            && !bug_on!(self.config, talk_to_removed)
        {
            // Decided before the removal was applied, or an answer to a
            // removed replica that still campaigns: dropped, as the
            // network might have. Not so to a leader this replica follows:
            // it won an election after the removal, so a majority chose it
            // (typically it was added back, and this replica has not yet
            // applied that); refusing it would leave this replica behind
            // for good, never learning of the return.
            self.metrics.frames_to_removed += 1;
            return;
        }
        let Some(wire) = WireMessage::from_raft(&m) else {
            return;
        };
        let from = self.config.id;
        if m.get_msg_type() == MessageType::MsgSnapshot {
            let data = m.take_snapshot().take_data();
            self.raw.mut_store().drop_outgoing();
            self.metrics.snapshots_sent += 1;
            for frame in SnapshotChunk::into_frames(from, to, wire, data) {
                self.outputs.push_back(Output::Send { to, frame });
            }
            // Report at once: if chunks are lost the follower rejects the
            // next append and the leader simply sends the snapshot again.
            self.pending_snapshot_reports.push(to.get());
            return;
        }
        let frame = PeerFrame { from, to, body: PeerBody::Raft(wire) };
        self.outputs.push_back(Output::Send { to, frame: frame.encode() });
    }

    /// Restores a snapshot from the leader; returns the form the local log
    /// keeps (for a machine with a durable store, a reference to it).
    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<Snapshot, String> {
        let meta = snapshot.get_metadata();
        let at = LogIndex(meta.index);
        self.machine
            .restore(&snapshot.data)
            .map_err(|e| format!("snapshot at index {} from the leader: {e}", meta.index))?;
        let mut local = snapshot.clone();
        if !self.machine.snapshot_is_self_contained() {
            let encoded = super::encode_meta(&WireSnapshotMeta::from_raft(meta));
            local.data = self.machine.snapshot(at, &encoded);
        }
        if let Some(fault) = self.machine.fault() {
            return Err(format!("installing a snapshot: {fault}"));
        }
        self.raw.mut_store().install_snapshot(local.clone());
        self.applied = LogIndex(meta.index);
        self.applied_bytes_since_snapshot = 0;
        let membership = super::Membership::from_conf_state(meta.get_conf_state());
        if membership != self.membership {
            self.set_membership(membership.clone());
            // Drivers (and checkers) learn of it as of any applied change.
            self.outputs.push_back(Output::MembershipChanged {
                index: at,
                proposal: None,
                membership,
            });
        }
        self.metrics.snapshots_installed += 1;
        for (proposal, outcome) in self.proposals.covered_by_snapshot(meta.index) {
            self.outputs.push_back(Output::Dropped { proposal, outcome });
        }
        Ok(local)
    }
}
