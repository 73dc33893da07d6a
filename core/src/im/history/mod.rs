//! Where room entries live. The state machine keeps only summaries in
//! memory (users, rooms, members, cursors, each room's last sequence
//! number) and reads and writes entries through a [`HistoryStore`] that the
//! driver supplies: [`MemoryHistory`] for the simulators, the fuzzer and
//! tests; a database on disk for the real node. Memory then stays bounded as
//! history grows.
//!
//! # Durability contract
//!
//! A durable store changes only inside one open batch that
//! [`HistoryStore::commit`] makes durable together with the state
//! machine's summaries and the log index they are as of. After a crash the
//! store is exactly as of its last commit: never a mixture, never ahead of
//! what the summaries say. The state machine commits whenever the node
//! snapshots (before the Raft log is compacted), so the log always holds
//! every entry after the store's commit point, and replaying those entries
//! over the store rebuilds the state exactly.

mod memory;

pub use memory::MemoryHistory;

use crate::im::identity::UserId;
use crate::im::protocol::{RoomEntry, RoomId};
use std::fmt::Debug;
use uuid::Uuid;

/// A message id's place: its room and sequence number.
pub type MessagePlace = (RoomId, u64);

/// Bits of a change number that hold the command's position in its log
/// entry.
const CHANGE_POSITION_BITS: u32 = 10;
const _: () = assert!(crate::limits::ENTRY_COMMANDS_MAX <= 1 << CHANGE_POSITION_BITS);

/// The change number of the command at `position` of log entry `index`:
/// increasing in log order, the same on every replica, and unique (one
/// command changes at most one entry). Live subscribers resume changes from
/// one (docs/PROTOCOL.md, "Live subscriptions").
pub fn change_number(index: u64, position: u32) -> u64 {
    assert!((position as usize) < crate::limits::ENTRY_COMMANDS_MAX, "a batch within its limit");
    (index << CHANGE_POSITION_BITS) | u64::from(position)
}

/// What a durable store holds as of its last commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The log index the store is as of.
    pub index: u64,
    /// The state machine's summaries at that index.
    pub summaries: Vec<u8>,
    /// The node's snapshot metadata for that index (opaque here).
    pub meta: Vec<u8>,
}

/// Why the history store failed. Entries come from committed log entries,
/// so a failure is a local disk problem: the node stops rather than let its
/// state diverge.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HistoryError {
    /// The storage underneath failed.
    #[error("history store: {0}")]
    Io(String),
    /// Stored bytes do not decode.
    #[error("history store holds a damaged record: {0}")]
    Corrupt(String),
}

/// Room entries by (room, seq), message ids by (author, id), and each
/// room's changes by change number.
///
/// Calls are synchronous: the state machine applies entries one by one and
/// must see its own writes. Reads see every write made before them.
pub trait HistoryStore: Debug + Send {
    /// Stores `entry` at `(room, entry.seq)`, replacing what was there.
    fn put(&mut self, room: &RoomId, entry: &RoomEntry) -> Result<(), HistoryError>;

    /// The entry at `(room, seq)`.
    fn entry(&self, room: &RoomId, seq: u64) -> Result<Option<RoomEntry>, HistoryError>;

    /// Entries `from..=to` of `room` in order, at most `limit` of them.
    fn range(
        &self,
        room: &RoomId,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<RoomEntry>, HistoryError>;

    /// Records where the message `(author, msg_id)` was placed.
    fn put_message_id(
        &mut self,
        author: UserId,
        msg_id: Uuid,
        place: &MessagePlace,
    ) -> Result<(), HistoryError>;

    /// Where the message `(author, msg_id)` was placed, if it was.
    fn message_id(
        &self,
        author: UserId,
        msg_id: Uuid,
    ) -> Result<Option<MessagePlace>, HistoryError>;

    /// Records that entry `seq` of `room` changed (edit, deletion,
    /// reaction) as change number `change` (see [`change_number`]).
    fn put_change(&mut self, room: &RoomId, change: u64, seq: u64) -> Result<(), HistoryError>;

    /// The changes of `room` numbered after `after`, oldest first, at most
    /// `limit` of them: `(change, seq)`.
    fn changes(
        &self,
        room: &RoomId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, HistoryError>;

    /// The number of the latest change of `room`, if it has any.
    fn latest_change(&self, room: &RoomId) -> Result<Option<u64>, HistoryError>;

    /// Forgets everything (before restoring a self-contained snapshot).
    fn clear(&mut self) -> Result<(), HistoryError>;

    /// Whether the store survives a restart. A volatile store's contents
    /// travel inside every snapshot; a durable one's stay on its disk.
    fn is_durable(&self) -> bool;

    /// Makes every write so far durable, together with what the store is
    /// as of. A volatile store has nothing to do.
    fn commit(&mut self, point: &Committed) -> Result<(), HistoryError>;

    /// What the last commit recorded, if there was one.
    fn committed(&self) -> Result<Option<Committed>, HistoryError>;
}
