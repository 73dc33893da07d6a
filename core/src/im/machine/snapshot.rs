//! Snapshots in two forms.
//!
//! - **Embedded**: the summaries plus every entry and message id, then
//!   every change record (version 3), streamed out of the store page by
//!   page. It restores anywhere: it is what a
//!   far-behind replica receives, and the local snapshot of a machine whose
//!   store is volatile.
//! - **In store**: a marker naming a log index. A machine with a durable
//!   store commits its summaries and entries there when it snapshots, so
//!   the local snapshot that the Raft log keeps (and rewrites at each
//!   compaction) stays a few bytes however long the history grows.

use super::file_table::{FileTable, Reference};
use super::rates::Rates;
use super::social::Social;
use super::state::ImState;
use super::{ImMachine, CHANGE_RECORD};
use crate::ids::LogIndex;
use crate::im::history::{Committed, HistoryError, HistoryStore};
use crate::im::protocol::{EntryKind, RoomEntry, RoomId};
use crate::state_machine::{RestoreError, Restored};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::ser::{Error as _, SerializeSeq};
use serde::{Serialize, Serializer};

/// Snapshot encoding version. Version 5 appends contacts, requests and
/// blocks, then the replicated rate buckets, after the holdings; version 4 appends which replicas hold which
/// file content after the change records; versions 4 (no contacts: from
/// before them), 3 (change records, no holdings: from before files) and 2
/// (neither) are still read, so a replica of an earlier release can still
/// send this one a snapshot (with version 2, live subscribers cannot resume
/// its changes and get them from now on).
const SNAPSHOT_VERSION: u16 = 5;
const SNAPSHOT_VERSION_WITHOUT_SOCIAL: u16 = 4;
const SNAPSHOT_VERSION_WITHOUT_HOLDINGS: u16 = 3;
const SNAPSHOT_VERSION_WITHOUT_CHANGES: u16 = 2;
/// Entries read from the store at a time while streaming a snapshot out.
const SNAPSHOT_PAGE_ENTRIES: usize = 256;

#[derive(Serialize)]
enum SnapshotOut<'a> {
    Embedded { state: &'a ImState, entries: StoreEntries<'a> },
    InStore { index: u64 },
}

/// `SnapshotOut`'s variant numbers, as postcard writes them.
const EMBEDDED: u32 = 0;
const IN_STORE: u32 = 1;

fn take<'a, T: DeserializeOwned>(
    bytes: &'a [u8],
    what: &str,
) -> Result<(T, &'a [u8]), RestoreError> {
    postcard::take_from_bytes(bytes).map_err(|e| RestoreError::Malformed(format!("{what}: {e}")))
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
        match self.write_embedded_snapshot() {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => {
                self.fail(e);
                Bytes::new()
            }
        }
    }

    fn write_embedded_snapshot(&self) -> Result<Vec<u8>, HistoryError> {
        let entries = StoreEntries { state: &self.state, history: self.history.as_ref() };
        let out = SnapshotOut::Embedded { state: &self.state, entries };
        let bytes = postcard::to_allocvec(&SNAPSHOT_VERSION).expect("u16 encodes");
        let mut bytes =
            postcard::to_extend(&out, bytes).map_err(|e| HistoryError::Corrupt(e.to_string()))?;
        // Change records follow in pages, ended by an empty page: how many
        // there are is not known without reading them all twice.
        for room in self.state.rooms.keys() {
            let mut after = 0;
            loop {
                let page = self.history.changes(room, after, SNAPSHOT_PAGE_ENTRIES)?;
                let Some(&(last, _)) = page.last() else { break };
                let records: Vec<(&RoomId, u64, u64)> =
                    page.iter().map(|&(change, seq)| (room, change, seq)).collect();
                bytes = postcard::to_extend(&records, bytes).expect("change records encode");
                after = last;
            }
        }
        let end: &[(RoomId, u64, u64)] = &[];
        let bytes = postcard::to_extend(&end, bytes).expect("an empty page encodes");
        let bytes = postcard::to_extend(&self.files.holdings, bytes).expect("holdings encode");
        let bytes = postcard::to_extend(&self.social, bytes).expect("contacts encode");
        Ok(postcard::to_extend(&self.rates, bytes).expect("rates encode"))
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
        // The file table follows the state, so summaries stored before
        // files existed (nothing after the state) still read.
        let summaries = postcard::to_allocvec(&self.state).expect("the state encodes");
        let summaries =
            postcard::to_extend(&self.files, summaries).expect("the file table encodes");
        let summaries = postcard::to_extend(&self.social, summaries).expect("contacts encode");
        let summaries = postcard::to_extend(&self.rates, summaries).expect("rates encode");
        self.history.commit(&Committed { index: at.get(), summaries, meta: meta.to_vec() })
    }

    /// Restores either form (see [`crate::state_machine::StateMachine::restore`]).
    pub(super) fn restore_snapshot(&mut self, bytes: &[u8]) -> Result<Restored, RestoreError> {
        let store_err = |e: HistoryError| RestoreError::History(e.to_string());
        if bytes.is_empty() {
            self.history.clear().map_err(store_err)?;
            self.state = ImState::default();
            self.files = FileTable::default();
            self.social = Social::default();
            self.rates = Rates::default();
            return Ok(Restored::default());
        }
        // Decoded field by field, so entries go straight into the store and
        // the history is never in memory twice.
        let version = match postcard::take_from_bytes::<u16>(bytes) {
            Ok((
                v @ (SNAPSHOT_VERSION_WITHOUT_CHANGES
                | SNAPSHOT_VERSION_WITHOUT_HOLDINGS
                | SNAPSHOT_VERSION_WITHOUT_SOCIAL),
                _,
            )) => v,
            _ => SNAPSHOT_VERSION,
        };
        let (form, rest) = crate::versioned::decode::<u32>(bytes, version)?;
        match form {
            EMBEDDED => {
                let (state, rest) = take::<ImState>(rest, "summaries")?;
                // Not committed here: the node takes its local snapshot
                // next, which commits (once) what was written.
                self.install_embedded(state, rest, version)?;
                Ok(Restored::default())
            }
            IN_STORE => {
                let (index, _) = take::<u64>(rest, "index")?;
                if !self.history.is_durable() {
                    return Err(RestoreError::History(
                        "the snapshot's history is in a store this replica does not have".into(),
                    ));
                }
                let committed = self.history.committed().map_err(store_err)?;
                let Some(c) = committed.filter(|c| c.index >= index) else {
                    return Err(RestoreError::History(format!(
                        "the history store is older than the snapshot at index {index} (it was \
                         replaced or lost): replace the replica as a new member (see README, \
                         \"Replacing a damaged replica\")"
                    )));
                };
                let summaries_err =
                    |e: postcard::Error| RestoreError::History(format!("stored summaries: {e}"));
                let (state, rest) =
                    postcard::take_from_bytes(&c.summaries).map_err(summaries_err)?;
                // Summaries stored by an earlier release end early: what
                // they lack was empty then.
                let (files, rest) = match rest {
                    [] => (FileTable::default(), rest),
                    rest => postcard::take_from_bytes(rest).map_err(summaries_err)?,
                };
                let kept_social = !rest.is_empty();
                let (social, rest) = match rest {
                    [] => (Social::default(), rest),
                    rest => postcard::take_from_bytes(rest).map_err(summaries_err)?,
                };
                let rates = match rest {
                    [] => Rates::default(),
                    rest => postcard::from_bytes(rest).map_err(summaries_err)?,
                };
                self.state = state;
                self.files = files;
                self.social = social;
                self.rates = rates;
                if !kept_social {
                    self.index_invitations();
                }
                let ahead = (c.index > index).then_some((LogIndex(c.index), c.meta));
                Ok(Restored { ahead })
            }
            other => Err(RestoreError::Malformed(format!("unknown snapshot form {other}"))),
        }
    }

    /// Writes the entries encoded in `rest` into the cleared store and
    /// takes `state`, once the entries match its count and hash sum. On an
    /// error the store is left cleared and the state empty: a half-written
    /// history must not be mistaken for a restored one.
    fn install_embedded(
        &mut self,
        state: ImState,
        rest: &[u8],
        version: u16,
    ) -> Result<(), RestoreError> {
        self.state = ImState::default();
        self.files = FileTable::default();
        self.social = Social::default();
        self.rates = Rates::default();
        match self.write_embedded(&state, rest, version) {
            Ok(()) => {
                self.state = state;
                if version < SNAPSHOT_VERSION {
                    self.index_invitations();
                }
                Ok(())
            }
            Err(e) => {
                self.files = FileTable::default();
                self.social = Social::default();
                self.rates = Rates::default();
                // A store that cannot even be cleared is the worse news.
                self.history.clear().map_err(|c| RestoreError::History(c.to_string()))?;
                Err(e)
            }
        }
    }

    /// Clears the store and writes the entries (and change records) encoded
    /// in `rest` into it, checking them against `state`'s count and hash sum.
    fn write_embedded(
        &mut self,
        state: &ImState,
        rest: &[u8],
        version: u16,
    ) -> Result<(), RestoreError> {
        let store_err = |e: HistoryError| RestoreError::History(e.to_string());
        self.history.clear().map_err(store_err)?;
        let (count, mut rest) = take::<u64>(rest, "entry count")?;
        if count != state.rooms.values().map(|r| r.last_seq).sum::<u64>() {
            return Err(RestoreError::Malformed("the entry count does not match the rooms".into()));
        }
        let mut sum = super::multiset_hash::MultisetHash::default();
        for _ in 0..count {
            let ((room, entry), after) = take::<(RoomId, RoomEntry)>(rest, "an entry")?;
            rest = after;
            sum.add(&(&room, &entry));
            self.history.put(&room, &entry).map_err(store_err)?;
            // Message ids and file references are not sent: both follow
            // from the entries.
            let place = (room.clone(), entry.seq);
            match &entry.kind {
                EntryKind::Message(m) => {
                    self.history
                        .put_message_id(entry.author, m.msg_id, &place)
                        .map_err(store_err)?;
                }
                EntryKind::File(f) => {
                    let msg_id = f.message.msg_id;
                    self.history.put_message_id(entry.author, msg_id, &place).map_err(store_err)?;
                    if !f.message.deleted {
                        let reference =
                            Reference { room: room.clone(), seq: entry.seq, author: entry.author };
                        // A repeated entry is malformed; the hash sum check
                        // below refuses the snapshot.
                        let _fresh = self.files.refer(f.file.id, reference);
                    }
                }
                _ => {}
            }
        }
        if version != SNAPSHOT_VERSION_WITHOUT_CHANGES {
            rest = self.write_changes(state, rest, &mut sum)?;
        }
        if version >= SNAPSHOT_VERSION_WITHOUT_SOCIAL {
            (self.files.holdings, rest) = take(rest, "file holdings")?;
        }
        if version >= SNAPSHOT_VERSION {
            (self.social, rest) = take(rest, "contacts")?;
            (self.rates, _) = take(rest, "rates")?;
        }
        if sum != state.history_sum {
            return Err(RestoreError::Malformed("the entries do not match their summary".into()));
        }
        Ok(())
    }

    /// Rebuilds the invitation index of a state from before it was kept.
    fn index_invitations(&mut self) {
        let rooms = self.state.rooms.iter().map(|(id, r)| (id, &r.invited));
        self.social.index_invitations(rooms);
    }

    /// Writes the change records encoded in `rest` (pages, ended by an
    /// empty one) into the store, adding each to `sum`.
    fn write_changes<'a>(
        &mut self,
        state: &ImState,
        mut rest: &'a [u8],
        sum: &mut super::multiset_hash::MultisetHash,
    ) -> Result<&'a [u8], RestoreError> {
        loop {
            let (page, after) = take::<Vec<(RoomId, u64, u64)>>(rest, "change records")?;
            rest = after;
            if page.is_empty() {
                return Ok(rest);
            }
            for (room, change, seq) in page {
                if state.rooms.get(&room).is_none_or(|r| seq == 0 || seq > r.last_seq) {
                    return Err(RestoreError::Malformed(format!(
                        "a change record names entry {seq} of {room}, which the snapshot lacks"
                    )));
                }
                sum.add(&(CHANGE_RECORD, &room, change, seq));
                let stored = self.history.put_change(&room, change, seq);
                stored.map_err(|e| RestoreError::History(e.to_string()))?;
            }
        }
    }
}
