//! Records: the logical content of durable batches.

use crate::wire::{WireEntry, WireSnapshotMeta};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Version of the record encoding inside a batch (the one written).
pub const DURABLE_FORMAT_VERSION: u16 = 2;

/// The oldest version still read: version 1 is version 2 without
/// [`Record::Removed`], so its batches decode as they are.
pub const DURABLE_FORMAT_OLDEST_READ: u16 = 1;

/// Raft's hard state: the vote and term that must survive a crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableHardState {
    /// Current term.
    pub term: u64,
    /// Vote in the current term (0 = none).
    pub vote: u64,
    /// Commit index known when written (a hint; may lag).
    pub commit: u64,
}

/// One durable fact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// Log entries, contiguous; the first one replaces every entry at or
    /// after its index (Raft overwrites a conflicting suffix).
    Entries(Vec<WireEntry>),
    /// A new hard state.
    HardState(DurableHardState),
    /// A state-machine snapshot; replaces the whole log up to and including
    /// its index and drops every entry held before it.
    Snapshot {
        /// Index, term and membership at the snapshot.
        meta: WireSnapshotMeta,
        /// The state machine's bytes.
        data: Bytes,
    },
    /// The replicas this one has seen leave its configuration and not come
    /// back, as of the snapshot before it in the same batch (entries after
    /// the snapshot are applied again at restart and add later removals).
    /// Without it a restarted replica would answer a removed one that still
    /// believes itself a member.
    Removed(Vec<u64>),
}
