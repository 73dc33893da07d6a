//! Facts a driver reports to the node.

use crate::ids::{NodeId, PersistId};
use bytes::Bytes;

/// Something that happened outside the core.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Input {
    /// A frame arrived from replica `from` (as authenticated by the transport).
    Received {
        /// The authenticated sender.
        from: NodeId,
        /// The frame's bytes, untrusted.
        bytes: Bytes,
    },
    /// Every `Persist` batch up to and including `up_to` is durable (written
    /// and fsynced, in order).
    Persisted {
        /// The last durable batch.
        up_to: PersistId,
    },
    /// Persisting batch `id` failed: the disk can no longer be trusted, so
    /// the node stops (fail-stop) and emits `Output::Halted`.
    PersistFailed {
        /// The failed batch.
        id: PersistId,
        /// What the driver saw.
        reason: String,
    },
    /// Frames to `peer` cannot currently be delivered.
    PeerUnreachable {
        /// The peer.
        peer: NodeId,
    },
}
