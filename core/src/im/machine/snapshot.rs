//! Snapshots in two forms.
//!
//! - **Embedded**: the summaries plus every entry and message id, streamed
//!   out of the store page by page. It restores anywhere: it is what a
//!   far-behind replica receives, and the local snapshot of a machine whose
//!   store is volatile.
//! - **In store**: a marker naming a log index. A machine with a durable
//!   store commits its summaries and entries there when it snapshots, so
//!   the local snapshot that the Raft log keeps (and rewrites at each
//!   compaction) stays a few bytes however long the history grows.

use super::state::ImState;
use super::ImMachine;
use crate::ids::LogIndex;
use crate::im::history::{Committed, HistoryError, HistoryStore};
use crate::im::protocol::{EntryKind, RoomEntry, RoomId};
use crate::state_machine::{RestoreError, Restored};
use bytes::Bytes;
use serde::ser::{Error as _, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};

/// Snapshot encoding version.
const SNAPSHOT_VERSION: u16 = 2;
/// Entries read from the store at a time while streaming a snapshot out.
const SNAPSHOT_PAGE_ENTRIES: usize = 256;

#[derive(Serialize)]
enum SnapshotOut<'a> {
    Embedded { state: &'a ImState, entries: StoreEntries<'a> },
    InStore { index: u64 },
}

/// The same shapes, owned, for decoding.
#[derive(Deserialize)]
enum SnapshotIn {
    Embedded { state: Box<ImState>, entries: Vec<(RoomId, RoomEntry)> },
    InStore { index: u64 },
}

/// Every entry of every room, read from the store as it is encoded.
struct StoreEntries<'a> {
    state: &'a ImState,
    history: &'a dyn HistoryStore,
}

impl Serialize for StoreEntries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let total: u64 = self.state.rooms.values().map(|r| r.last_seq).sum();
        let total = usize::try_from(total).map_err(S::Error::custom)?;
        let mut seq = s.serialize_seq(Some(total))?;
        for (id, room) in &self.state.rooms {
            let mut from = 1;
            while from <= room.last_seq {
                let page = self
                    .history
                    .range(id, from, room.last_seq, SNAPSHOT_PAGE_ENTRIES)
                    .map_err(S::Error::custom)?;
                let Some(last) = page.last().map(|e| e.seq) else {
                    let missing =
                        format!("entries {from}..={} of a room are missing", room.last_seq);
                    return Err(S::Error::custom(missing));
                };
                for entry in &page {
                    seq.serialize_element(&(id, entry))?;
                }
                from = last + 1;
            }
        }
        seq.end()
    }
}

impl ImMachine {
    /// The self-contained form (see the module documentation).
    pub(super) fn embedded_snapshot(&mut self) -> Bytes {
        let entries = StoreEntries { state: &self.state, history: self.history.as_ref() };
        let out = SnapshotOut::Embedded { state: &self.state, entries };
        let bytes = postcard::to_allocvec(&SNAPSHOT_VERSION).expect("u16 encodes");
        match postcard::to_extend(&out, bytes) {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => {
                self.fail(HistoryError::Corrupt(e.to_string()));
                Bytes::new()
            }
        }
    }

    /// The snapshot the local log keeps: embedded for a volatile store; for
    /// a durable one, a commit of the store at `at` and a marker.
    pub(super) fn local_snapshot(&mut self, at: LogIndex, meta: &[u8]) -> Bytes {
        if !self.history.is_durable() {
            return self.embedded_snapshot();
        }
        if let Err(e) = self.commit(at, meta) {
            self.fail(e);
        }
        let marker = SnapshotOut::InStore { index: at.get() };
        Bytes::from(crate::versioned::encode(SNAPSHOT_VERSION, &marker))
    }

    /// Commits the store with the current summaries as of `at`.
    fn commit(&mut self, at: LogIndex, meta: &[u8]) -> Result<(), HistoryError> {
        let summaries = postcard::to_allocvec(&self.state).expect("the state encodes");
        self.history.commit(&Committed { index: at.get(), summaries, meta: meta.to_vec() })
    }

    /// Restores either form (see [`crate::state_machine::StateMachine::restore`]).
    pub(super) fn restore_snapshot(
        &mut self,
        at: LogIndex,
        meta: &[u8],
        bytes: &[u8],
    ) -> Result<Restored, RestoreError> {
        let store_err = |e: HistoryError| RestoreError::History(e.to_string());
        if bytes.is_empty() {
            self.history.clear().map_err(store_err)?;
            self.state = ImState::default();
            return Ok(Restored::default());
        }
        let (snapshot, _) = crate::versioned::decode::<SnapshotIn>(bytes, SNAPSHOT_VERSION)?;
        match snapshot {
            SnapshotIn::Embedded { state, entries } => {
                self.install_embedded(*state, entries)?;
                if self.history.is_durable() {
                    self.commit(at, meta).map_err(store_err)?;
                }
                Ok(Restored::default())
            }
            SnapshotIn::InStore { index } => {
                if !self.history.is_durable() {
                    return Err(RestoreError::History(
                        "the snapshot's history is in a store this replica does not have".into(),
                    ));
                }
                let committed = self.history.committed().map_err(store_err)?;
                let Some(c) = committed.filter(|c| c.index >= index) else {
                    return Err(RestoreError::History(format!(
                        "the history store is older than the snapshot at index {index} (it was \
                         replaced or lost): move the data directory away and rejoin the replica"
                    )));
                };
                self.state = postcard::from_bytes(&c.summaries)
                    .map_err(|e| RestoreError::History(format!("stored summaries: {e}")))?;
                let ahead = (c.index > index).then_some((LogIndex(c.index), c.meta));
                Ok(Restored { ahead })
            }
        }
    }

    fn install_embedded(
        &mut self,
        state: ImState,
        entries: Vec<(RoomId, RoomEntry)>,
    ) -> Result<(), RestoreError> {
        let store_err = |e: HistoryError| RestoreError::History(e.to_string());
        let mut sum = super::state::HistorySum::default();
        for (room, entry) in &entries {
            sum.add(room, entry);
        }
        let complete =
            state.rooms.values().map(|r| r.last_seq).sum::<u64>() == entries.len() as u64;
        if sum != state.history_sum || !complete {
            return Err(RestoreError::Malformed("the entries do not match their summary".into()));
        }
        self.history.clear().map_err(store_err)?;
        for (room, entry) in &entries {
            self.history.put(room, entry).map_err(store_err)?;
            // Message ids are not sent: every one is its message's.
            if let EntryKind::Message(m) = &entry.kind {
                let place = (room.clone(), entry.seq);
                self.history.put_message_id(entry.author, m.msg_id, &place).map_err(store_err)?;
            }
        }
        self.state = state;
        Ok(())
    }
}
