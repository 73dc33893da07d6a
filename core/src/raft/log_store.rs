//! The in-memory Raft log that raft-rs reads through its `Storage` trait.
//!
//! It always equals the replay of every durable batch the node has emitted
//! (durable or still in flight), so the disk and this store never disagree
//! about content, only about how much of it is durable yet. Memory stays
//! bounded because the node snapshots and compacts past a threshold.

use crate::durable::{DurableHardState, RecoveredLog};
use crate::wire::{FrameError, WireEntry, WireSnapshotMeta};
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use std::cell::Cell;

/// Index (and term) of the initial snapshot written at bootstrap.
pub const BOOTSTRAP_INDEX: u64 = 1;

/// Snapshot, hard state and the entries after the snapshot.
#[derive(Debug, Default)]
pub struct LogStore {
    hard_state: HardState,
    snapshot: Snapshot,
    entries: Vec<Entry>,
    /// Set when raft-rs asked for a snapshot that the stored one cannot
    /// serve (a peer added after it was taken is not in its membership
    /// and would refuse it). The node takes a fresh one.
    fresh_snapshot_wanted: Cell<bool>,
    /// Whether `snapshot` can be sent to a peer. When the state machine's
    /// local snapshot only refers to its own durable store, peers get
    /// `outgoing` instead, built on request and dropped once sent.
    local_not_sendable: bool,
    outgoing: Option<Snapshot>,
}

/// Why recovered disk contents cannot seed a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogStoreError {
    /// An entry failed to map back to raft-rs's type.
    #[error("recovered entry is invalid: {0}")]
    Entry(#[from] FrameError),
}

impl LogStore {
    /// A fresh cluster member's store: an initial snapshot at index 1,
    /// term 1, holding the initial membership. Starting past index 0 means a
    /// replica added later (whose log is empty) can never be sent entries
    /// from index 1 by appends: it always starts from a snapshot, which
    /// carries the membership it could not otherwise learn.
    pub fn bootstrap(conf_state: ConfState) -> LogStore {
        let mut store = LogStore::default();
        let meta = store.snapshot.mut_metadata();
        meta.index = BOOTSTRAP_INDEX;
        meta.term = BOOTSTRAP_INDEX;
        meta.set_conf_state(conf_state);
        store.hard_state.term = BOOTSTRAP_INDEX;
        store.hard_state.commit = BOOTSTRAP_INDEX;
        store
    }

    /// An empty store for a replica waiting to be added to a cluster.
    pub fn empty() -> LogStore {
        LogStore::default()
    }

    /// Rebuilds the store from what recovery read off the disk.
    pub fn from_recovered(log: &RecoveredLog) -> Result<LogStore, LogStoreError> {
        let mut store = LogStore::default();
        if let Some((meta, data)) = &log.snapshot {
            store.snapshot = meta.to_raft(data.clone());
        }
        store.entries =
            log.entries.iter().map(WireEntry::to_raft).collect::<Result<Vec<_>, _>>()?;
        let hs = log.hard_state;
        store.hard_state.term = hs.term;
        store.hard_state.vote = hs.vote;
        // The commit hint may lag the snapshot (a snapshot is committed by
        // definition) or, never in practice, run past the log's end.
        store.hard_state.commit =
            hs.commit.max(store.snapshot_index()).min(store.last_index_value());
        Ok(store)
    }

    /// The index covered by the snapshot.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    /// The current snapshot (metadata and data).
    pub fn snapshot_ref(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The hard state as a durable record.
    pub fn durable_hard_state(&self) -> DurableHardState {
        DurableHardState {
            term: self.hard_state.term,
            vote: self.hard_state.vote,
            commit: self.hard_state.commit,
        }
    }

    /// Replaces the hard state.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// Appends entries, replacing any conflicting suffix.
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        assert!(first.index > self.snapshot_index(), "append below the snapshot");
        assert!(first.index <= self.last_index_value() + 1, "append leaves a gap");
        let keep = (first.index - self.snapshot_index() - 1) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
    }

    /// Installs a snapshot received from the leader: the whole log is replaced.
    pub fn install_snapshot(&mut self, snapshot: Snapshot) {
        let index = snapshot.get_metadata().index;
        self.entries.clear();
        self.snapshot = snapshot;
        self.hard_state.commit = self.hard_state.commit.max(index);
    }

    /// Records a snapshot taken locally at `snapshot`'s index and drops the
    /// entries it covers.
    pub fn compact_to(&mut self, snapshot: Snapshot) {
        let index = snapshot.get_metadata().index;
        assert!(index >= self.snapshot_index(), "compaction moves backwards");
        assert!(index <= self.last_index_value(), "compaction past the log's end");
        let drop = (index - self.snapshot_index()) as usize;
        self.entries.drain(..drop);
        self.snapshot = snapshot;
        self.hard_state.commit = self.hard_state.commit.max(index);
    }

    /// Moves the store up to a snapshot the state machine's durable store is
    /// already at, past the recovered log's own snapshot: entries it covers
    /// are dropped (there may be none left).
    pub fn skip_to(&mut self, snapshot: Snapshot) {
        let index = snapshot.get_metadata().index;
        assert!(index >= self.snapshot_index(), "skipping backwards");
        let drop = ((index - self.snapshot_index()) as usize).min(self.entries.len());
        self.entries.drain(..drop);
        self.snapshot = snapshot;
        self.hard_state.commit = self.hard_state.commit.max(index);
    }

    /// Declares that local snapshots cannot be sent to peers.
    pub fn set_local_not_sendable(&mut self) {
        self.local_not_sendable = true;
    }

    /// Offers a self-contained snapshot to peers that need one.
    pub fn set_outgoing(&mut self, snapshot: Snapshot) {
        self.outgoing = Some(snapshot);
    }

    /// Drops the self-contained snapshot once sent (it may be large).
    pub fn drop_outgoing(&mut self) {
        self.outgoing = None;
    }

    /// Records that a fresher snapshot is wanted.
    pub fn request_fresh_snapshot(&self) {
        self.fresh_snapshot_wanted.set(true);
    }

    /// Whether raft-rs wanted a fresher snapshot than the stored one; clears
    /// the request.
    pub fn take_fresh_snapshot_request(&self) -> bool {
        self.fresh_snapshot_wanted.replace(false)
    }

    /// The entries after the snapshot, as durable records.
    pub fn wire_entries(&self) -> Vec<WireEntry> {
        self.entries.iter().map(WireEntry::from_raft).collect()
    }

    /// The snapshot metadata as a durable record.
    pub fn wire_snapshot_meta(&self) -> WireSnapshotMeta {
        WireSnapshotMeta::from_raft(self.snapshot.get_metadata())
    }

    /// Entries held in memory.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entries are held (only a snapshot).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at `index`, if held.
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        let offset = index.checked_sub(self.snapshot_index() + 1)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    fn last_index_value(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state.clone(),
            conf_state: self.snapshot.get_metadata().get_conf_state().clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.snapshot_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index_value() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let lo = (low - self.snapshot_index() - 1) as usize;
        let hi = (high - self.snapshot_index() - 1) as usize;
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let mut out = Vec::with_capacity(hi - lo);
        let mut size = 0u64;
        for e in &self.entries[lo..hi] {
            size += u64::from(protobuf::Message::compute_size(e));
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < self.snapshot_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.entry(idx).map(|e| e.term).ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot_index() + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index_value())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let candidate =
            if self.local_not_sendable { self.outgoing.as_ref() } else { Some(&self.snapshot) };
        let serves = candidate.filter(|s| {
            let cs = s.get_metadata().get_conf_state();
            let knows_peer = [&cs.voters, &cs.learners, &cs.voters_outgoing, &cs.learners_next]
                .iter()
                .any(|ids| ids.contains(&to));
            s.get_metadata().index >= request_index && knows_peer
        });
        match serves {
            Some(s) => Ok(s.clone()),
            None => {
                self.fresh_snapshot_wanted.set(true);
                Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn entry(index: u64, term: u64) -> Entry {
        Entry { index, term, ..Default::default() }
    }

    #[test]
    fn append_overwrites_suffix_and_compacts() {
        let mut s = LogStore::default();
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 1)]);
        s.append(&[entry(3, 2), entry(4, 2)]);
        assert_eq!(s.term(3).unwrap(), 2);
        assert_eq!(s.last_index().unwrap(), 4);
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 2;
        snap.mut_metadata().term = 1;
        s.compact_to(snap);
        assert_eq!(s.first_index().unwrap(), 3);
        assert_eq!(s.term(2).unwrap(), 1);
        assert!(s.term(1).is_err());
        assert!(s.entries(2, 4, None, GetEntriesContext::empty(false)).is_err());
        assert_eq!(s.entries(3, 5, None, GetEntriesContext::empty(false)).unwrap().len(), 2);
        assert_eq!(s.entries(3, 5, 0, GetEntriesContext::empty(false)).unwrap().len(), 1);
    }
}
