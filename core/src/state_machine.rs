//! The contract between the Raft driver and whatever it replicates.
//!
//! A state machine is applied only from committed log entries, in log order,
//! on every replica; it must therefore be deterministic: no clock, no
//! randomness, no hash-map iteration order. Everything it needs to know about
//! time arrives inside the command.

use crate::ids::{LogIndex, Term};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

/// A 32-byte digest of a state machine's whole state. Equal states, equal digests.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest(pub [u8; 32]);

impl Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Where in the log a command is being applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyContext {
    /// The entry's index.
    pub index: LogIndex,
    /// The entry's term.
    pub term: Term,
    /// The command's position inside the entry's batch.
    pub position: u32,
    /// The proposing leader's clock when it built the entry, in ms since the
    /// driver's origin (the UNIX epoch for the real node). Not monotonic
    /// across leaders: a state machine that needs that clamps it.
    pub stamp_ms: u64,
}

/// A deterministic replicated state machine.
pub trait StateMachine {
    /// What clients submit; encoded with postcard into log entries.
    type Command: Serialize + DeserializeOwned + Debug + Clone;
    /// What applying one command produced.
    type Response: Debug + Clone;
    /// A read served after a linearizable read index.
    type Query: Debug + Clone;
    /// The answer to a query.
    type QueryResult: Debug + Clone;

    /// Applies one committed command. Must be deterministic.
    fn apply(&mut self, at: ApplyContext, command: Self::Command) -> Self::Response;

    /// Answers a read against the current applied state.
    fn query(&self, query: &Self::Query) -> Self::QueryResult;

    /// The snapshot the local log keeps, as of the last applied entry (log
    /// index `at`, whose Raft snapshot metadata is `meta`, opaque here). A
    /// machine that keeps its state in a durable store makes it durable
    /// through `at` here, with `meta`, and may return a mere reference to it.
    fn snapshot(&mut self, at: LogIndex, meta: &[u8]) -> Bytes;

    /// A snapshot another replica can restore from alone, when the local one
    /// is not (see [`StateMachine::snapshot`]); `None` when it is.
    fn transfer_snapshot(&mut self) -> Option<Bytes> {
        None
    }

    /// Replaces the whole state with a snapshot (empty bytes: the empty
    /// state). Snapshot bytes come from a peer or the disk: a malformed one
    /// is an error, never a panic. A durable store may already be past the
    /// snapshot that refers to it (the replica stopped after committing its
    /// store and before its log recorded the snapshot): the state is then as
    /// of the store's commit, which [`Restored::ahead`] reports. What was
    /// restored into a durable store is made durable by the next
    /// [`StateMachine::snapshot`].
    fn restore(&mut self, snapshot: &[u8]) -> Result<Restored, RestoreError>;

    /// Whether [`StateMachine::snapshot`]'s bytes restore on another replica.
    fn snapshot_is_self_contained(&self) -> bool {
        true
    }

    /// A digest of the whole state, equal on replicas at equal applied index.
    fn digest(&self) -> Digest;

    /// Why the machine cannot go on (its storage failed), if it cannot. The
    /// node stops rather than let this replica's state diverge.
    fn fault(&self) -> Option<&str> {
        None
    }
}

impl From<crate::versioned::VersionedError> for RestoreError {
    fn from(e: crate::versioned::VersionedError) -> RestoreError {
        match e {
            crate::versioned::VersionedError::Version { found, supported } => {
                RestoreError::Version { found, supported }
            }
            crate::versioned::VersionedError::Malformed(m) => RestoreError::Malformed(m),
            other => RestoreError::Malformed(other.to_string()),
        }
    }
}

/// Where a restored state stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// When the state is as of a later index than the snapshot's: that
    /// index and the snapshot metadata recorded with it.
    pub ahead: Option<(LogIndex, Vec<u8>)>,
}

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreError {
    /// The snapshot bytes do not decode.
    #[error("snapshot does not decode: {0}")]
    Malformed(String),
    /// The state's durable store cannot provide what the snapshot needs.
    #[error("{0}")]
    History(String),
    /// The snapshot was written by a newer format.
    #[error("snapshot format version {found} is not supported (this build reads {supported})")]
    Version {
        /// The version in the snapshot.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
}
