//! Applying committed entries, answering reads, proposing batches, and
//! snapshotting past the threshold.

use super::proposals::{Placed, Resolution};
use super::{command_batch, DropOutcome, Membership, MembershipChange, Node, Output, Role};
use crate::durable::Record;
use crate::ids::{LogIndex, ProposalId, Term};
use crate::state_machine::{ApplyContext, StateMachine};
use crate::wire::decode_local_conf_change;
use raft::eraftpb::{Entry, EntryType, Snapshot};

impl<S: StateMachine> Node<S> {
    pub(super) fn apply_entries(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            if entry.index <= self.applied.get() {
                continue;
            }
            let membership = entry.get_entry_type() != EntryType::EntryNormal;
            let resolution = self.proposals.resolve(entry.index, Term(entry.term), membership);
            self.report_dropped(&resolution);
            if membership {
                self.apply_membership(&entry, resolution.ours);
            } else {
                self.apply_commands(&entry, resolution.ours);
            }
            self.applied = LogIndex(self.applied.get().max(entry.index));
            self.applied_bytes_since_snapshot += entry.data.len() as u64;
            // Raft hands out only committed entries; applying past the
            // commit index would be acting on what a majority may undo.
            assert!(
                self.applied.get() <= self.raw.raft.raft_log.committed,
                "applied {} beyond commit {}",
                self.applied,
                self.raw.raft.raft_log.committed
            );
            if let Some(fault) = self.machine.fault() {
                let reason = format!("applying entry {}: {fault}", entry.index);
                return self.halt(reason);
            }
            let every = self.config.digest_every_entries;
            if every > 0 && entry.index % every == 0 {
                self.checkpoint = Some((LogIndex(entry.index), self.machine.digest()));
            }
        }
    }

    fn report_dropped(&mut self, resolution: &Resolution) {
        for &(proposal, outcome) in &resolution.dropped {
            self.outputs.push_back(Output::Dropped { proposal, outcome });
        }
    }

    fn apply_commands(&mut self, entry: &Entry, ours: Option<Placed>) {
        let ids = match ours {
            Some(Placed::Commands(ids)) => ids,
            _ => Vec::new(),
        };
        if entry.data.is_empty() {
            return; // a new leader's no-op entry
        }
        let Some((stamp_ms, commands)) = command_batch::decode(&entry.data) else {
            self.metrics.entries_malformed += 1;
            tracing::error!(index = entry.index, "committed entry does not decode; skipped");
            self.drop_unknown(&ids);
            return;
        };
        for (position, bytes) in commands.iter().enumerate() {
            let proposal = ids.get(position).copied();
            let Ok(command) = postcard::from_bytes::<S::Command>(bytes) else {
                self.metrics.entries_malformed += 1;
                self.drop_unknown(proposal.as_slice());
                continue;
            };
            let position = u32::try_from(position).expect("batches are bounded");
            let at = ApplyContext {
                index: LogIndex(entry.index),
                term: Term(entry.term),
                position,
                stamp_ms,
            };
            let response = self.machine.apply(at, command);
            self.metrics.commands_applied += 1;
            self.outputs.push_back(Output::Applied {
                index: at.index,
                term: at.term,
                position,
                proposal,
                response,
            });
        }
    }

    fn drop_unknown(&mut self, ids: &[ProposalId]) {
        for &proposal in ids {
            self.outputs.push_back(Output::Dropped { proposal, outcome: DropOutcome::Unknown });
        }
    }

    fn apply_membership(&mut self, entry: &Entry, ours: Option<Placed>) {
        let proposal = match ours {
            Some(Placed::Membership(id)) => Some(id),
            _ => None,
        };
        let cc = decode_local_conf_change(&entry.data);
        match self.raw.apply_conf_change(&cc) {
            Ok(cs) => {
                self.set_membership(Membership::from_conf_state(&cs));
                self.step_down_if_removed();
            }
            Err(e) => {
                tracing::warn!(index = entry.index, error = %e, "membership change not applied")
            }
        }
        self.outputs.push_back(Output::MembershipChanged {
            index: LogIndex(entry.index),
            proposal,
            membership: self.membership.clone(),
        });
    }

    /// Work that may follow any cycle: reads whose index is applied, leaving
    /// a joint configuration, and snapshotting past the threshold.
    pub(super) fn after_apply(&mut self) {
        for (read, index, query) in self.reads.ready(self.applied.get()) {
            let result = self.machine.query(&query);
            self.outputs.push_back(Output::ReadReady { read, index: LogIndex(index), result });
        }
        if self.role == Role::Leader
            && self.membership.is_joint()
            && !self.raw.raft.has_pending_conf()
        {
            if let Ok(cc) = MembershipChange::LeaveJoint.to_conf_change(&self.membership) {
                if self.raw.propose_conf_change(Vec::new(), cc).is_ok() {
                    // One more cycle; the pending change stops recursion.
                    self.drive();
                }
            }
        }
        let since_snapshot = self.applied.get() - self.raw.store().snapshot_index();
        let wanted = self.raw.store().take_fresh_snapshot_request();
        // raft-rs reads entries after *its* applied index (e.g. to look for
        // pending membership changes before campaigning), so the log may only
        // be compacted once raft-rs knows everything up to ours is applied.
        let raft_caught_up = self.raw.raft.raft_log.applied == self.applied.get();
        let bytes_due = self.applied_bytes_since_snapshot >= self.config.snapshot_threshold_bytes;
        if raft_caught_up
            && since_snapshot > 0
            && (since_snapshot >= self.config.snapshot_threshold_entries || bytes_due || wanted)
        {
            self.take_snapshot();
        }
        if wanted && raft_caught_up && !self.machine.snapshot_is_self_contained() {
            self.offer_transfer_snapshot();
        } else if wanted && !raft_caught_up {
            // Ask again on the next cycle.
            self.raw.store().request_fresh_snapshot();
        }
    }

    /// The snapshot metadata for the applied index.
    fn applied_snapshot_meta(&self) -> raft::eraftpb::SnapshotMetadata {
        let index = self.applied.get();
        let term = self.raw.raft.raft_log.term(index).expect("applied entry is in the log");
        let mut meta = raft::eraftpb::SnapshotMetadata { index, term, ..Default::default() };
        let mut cs = self.raw.raft.prs().conf().to_conf_state();
        for ids in
            [&mut cs.voters, &mut cs.learners, &mut cs.voters_outgoing, &mut cs.learners_next]
        {
            ids.sort_unstable();
        }
        meta.set_conf_state(cs);
        meta
    }

    /// Builds the self-contained snapshot a peer asked for (the local one
    /// only refers to this replica's own store) and offers it to raft-rs.
    fn offer_transfer_snapshot(&mut self) {
        let Some(data) = self.machine.transfer_snapshot() else { return };
        if let Some(fault) = self.machine.fault() {
            return self.halt(format!("building a snapshot for a peer: {fault}"));
        }
        let mut snapshot = Snapshot::default();
        snapshot.set_metadata(self.applied_snapshot_meta());
        snapshot.data = data;
        self.raw.mut_store().set_outgoing(snapshot);
    }

    /// raft-rs keeps a leader that removed itself leading a group it is no
    /// longer part of, refusing proposals, and (0.7) panics when such a
    /// leader later persists entries. Step down at once instead, after
    /// asking the most up-to-date voter to take over without waiting for an
    /// election timeout.
    fn step_down_if_removed(&mut self) {
        let me = self.config.id;
        let is_voter =
            self.membership.voters.contains(&me) || self.membership.voters_outgoing.contains(&me);
        if self.raw.raft.state != raft::StateRole::Leader || is_voter {
            return;
        }
        let prs = self.raw.raft.prs();
        let best = self
            .membership
            .voters
            .iter()
            .filter_map(|v| prs.get(v.get()).map(|p| (p.matched, *v)))
            .max();
        if let Some((_, to)) = best {
            self.raw.transfer_leader(to.get());
        }
        let term = self.raw.raft.term;
        self.raw.raft.become_follower(term, raft::INVALID_ID);
    }

    fn take_snapshot(&mut self) {
        let meta = self.applied_snapshot_meta();
        let wire_meta = crate::wire::WireSnapshotMeta::from_raft(&meta);
        let mut snapshot = Snapshot::default();
        // A durable machine commits its store here, before the log below
        // is compacted: the log then always holds what the store lacks.
        snapshot.data =
            self.machine.snapshot(LogIndex(meta.index), &super::encode_meta(&wire_meta));
        if let Some(fault) = self.machine.fault() {
            return self.halt(format!("taking a snapshot: {fault}"));
        }
        snapshot.set_metadata(meta);
        self.raw.mut_store().compact_to(snapshot);
        self.applied_bytes_since_snapshot = 0;
        self.metrics.snapshots_taken += 1;
        self.persist_new_segment();
    }

    /// Writes the log store as it stands (snapshot, hard state, entries)
    /// as the first batch of a new segment; older segments then go.
    pub(super) fn persist_new_segment(&mut self) {
        let store = self.raw.store();
        let records = [
            Record::Snapshot {
                meta: store.wire_snapshot_meta(),
                data: store.snapshot_ref().data.clone(),
            },
            Record::Removed(self.removed.iter().map(|id| id.get()).collect()),
            Record::HardState(store.durable_hard_state()),
            Record::Entries(store.wire_entries()),
        ];
        self.emit_persist(&records, true, None, Vec::new());
    }

    /// Packs queued submissions into entries and proposes them.
    pub(super) fn flush_proposals(&mut self) {
        if self.role != Role::Leader {
            for proposal in self.proposals.drain_queue() {
                self.outputs
                    .push_back(Output::Dropped { proposal, outcome: DropOutcome::NotCommitted });
            }
            return;
        }
        while let Some((ids, commands)) = self.proposals.take_batch() {
            let data = command_batch::encode(self.now.as_micros() / 1000, &commands);
            match self.raw.propose(Vec::new(), data) {
                Ok(()) => {
                    let index = self.raw.raft.raft_log.last_index();
                    self.proposals.place(index, Term(self.raw.raft.term), Placed::Commands(ids));
                }
                Err(_) => {
                    for proposal in ids {
                        let outcome = DropOutcome::NotCommitted;
                        self.outputs.push_back(Output::Dropped { proposal, outcome });
                    }
                }
            }
        }
        self.drive();
    }
}
