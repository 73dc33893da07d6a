//! Typed errors of the node's operations.

use crate::config::ConfigError;
use crate::ids::NodeId;
use crate::state_machine::RestoreError;

/// Why a submission was not accepted.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubmitError {
    /// Only the leader accepts submissions; try the hinted node.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this node believes in, if any.
        leader_hint: Option<NodeId>,
    },
    /// Too many submissions are waiting; back off and retry.
    #[error("proposal queue is full")]
    QueueFull,
    /// The encoded command exceeds the limit.
    #[error("command of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A membership change is still in progress.
    #[error("another membership change is still in progress")]
    MembershipChangePending,
    /// The membership change is not valid for the current configuration.
    #[error("invalid membership change: {0}")]
    InvalidMembershipChange(&'static str),
    /// The node has halted.
    #[error("node has halted")]
    Halted,
}

/// Why a linearizable read was not accepted.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// No leader is known to confirm the read index.
    #[error("no leader known (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this node believes in, if any.
        leader_hint: Option<NodeId>,
    },
    /// Too many reads are waiting.
    #[error("too many pending reads")]
    QueueFull,
    /// The node has halted.
    #[error("node has halted")]
    Halted,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The recovered log could not seed the Raft store.
    #[error(transparent)]
    LogStore(#[from] crate::raft::LogStoreError),
    /// The recovered snapshot could not be restored.
    #[error("recovered snapshot cannot be restored: {0}")]
    Snapshot(#[from] RestoreError),
    /// raft-rs refused the configuration or state.
    #[error("raft: {0}")]
    Raft(String),
    /// The initial membership is empty or too large.
    #[error("initial membership must have 1..={max} voters including this node")]
    Membership {
        /// The limit.
        max: usize,
    },
    /// The disk holds nothing durable and the replica was told not to
    /// start empty.
    #[error("the disk holds no replica state")]
    NothingOnDisk,
}
