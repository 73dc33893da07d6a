//! The wire formats: Raft frames between replicas (this module), the client
//! protocol (`client_protocol`), and the replica and admin protocols
//! (`replica_protocol`), the chunk protocol for file content
//! (`chunk_protocol`). Pure types and codecs; docs/PROTOCOL.md specifies
//! each byte by byte.
//!
//! Every Raft frame is `postcard(version: u16)` followed by `postcard(PeerFrame)`.
//! The version is read first so that a peer speaking another version gets a
//! clear refusal naming both versions instead of a confusing decode error.
//! docs/PROTOCOL.md specifies the layout byte by byte.

pub mod chunk_protocol;
pub mod client_protocol;
mod raft_message;
pub mod replica_protocol;
mod snapshot_chunk;
mod subscribe_frame;

pub(crate) use raft_message::decode_local_conf_change;
pub use raft_message::{
    WireConfChange, WireConfState, WireEntry, WireEntryPayload, WireMessage, WireMessageKind,
    WireSnapshotMeta,
};
pub use snapshot_chunk::{SnapshotAssembler, SnapshotChunk};

use crate::ids::NodeId;
use crate::limits;
use crate::versioned::{self, VersionedError};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The peer protocol version this build speaks: Raft frames here, and the
/// peer and admin protocols in `wire::replica_protocol`, which reuse it.
pub const PEER_PROTOCOL_VERSION: u16 = 1;

/// One frame between replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerFrame {
    /// Sender's Raft id; must match the transport-authenticated sender.
    pub from: NodeId,
    /// Intended receiver's Raft id.
    pub to: NodeId,
    /// What the frame carries.
    pub body: PeerBody,
}

/// The payload of a [`PeerFrame`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerBody {
    /// A Raft message without snapshot data.
    Raft(WireMessage),
    /// One chunk of a snapshot message.
    SnapshotChunk(SnapshotChunk),
}

/// Why a frame was dropped. Counted and logged by the node; never a panic.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// Larger than [`limits::FRAME_BYTES_MAX`].
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Frame length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Spoken by another version of kith.
    #[error("peer protocol version {found} is not supported (this node speaks {supported})")]
    Version {
        /// Version in the frame.
        found: u16,
        /// Version this build speaks.
        supported: u16,
    },
    /// Bytes that are not a frame.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A well-formed frame that breaks a rule.
    #[error("invalid frame: {0}")]
    Invalid(&'static str),
}

impl PeerFrame {
    /// Encodes the frame, version first.
    pub fn encode(&self) -> Bytes {
        Bytes::from(versioned::encode(PEER_PROTOCOL_VERSION, self))
    }

    /// Decodes a frame received from the network.
    pub fn decode(bytes: &[u8]) -> Result<PeerFrame, FrameError> {
        Ok(versioned::decode_frame(bytes, PEER_PROTOCOL_VERSION, limits::FRAME_BYTES_MAX)?)
    }

    /// Whether encoded `bytes` carry a snapshot chunk, read from the
    /// frame's head only: a driver may send bulk data on a path of its own.
    pub fn is_snapshot_chunk(bytes: &[u8]) -> bool {
        // The head is `from`, `to`, then the body's variant index;
        // `PeerBody::SnapshotChunk` is variant 1.
        versioned::decode::<(NodeId, NodeId, u32)>(bytes, PEER_PROTOCOL_VERSION)
            .is_ok_and(|((_, _, body), _)| body == 1)
    }
}

impl From<VersionedError> for FrameError {
    fn from(e: VersionedError) -> FrameError {
        match e {
            VersionedError::Version { found, supported } => {
                FrameError::Version { found, supported }
            }
            VersionedError::TooLarge { len, max } => FrameError::TooLarge { len, max },
            VersionedError::Malformed(m) => FrameError::Malformed(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat() -> PeerFrame {
        PeerFrame {
            from: NodeId(1),
            to: NodeId(2),
            body: PeerBody::Raft(WireMessage {
                commit: 7,
                ..WireMessage::new(WireMessageKind::Heartbeat, 3)
            }),
        }
    }

    #[test]
    fn round_trips() {
        let f = heartbeat();
        assert_eq!(PeerFrame::decode(&f.encode()), Ok(f));
    }

    #[test]
    fn refuses_other_versions_by_name() {
        let mut bytes = postcard::to_allocvec(&2u16).unwrap();
        bytes.extend_from_slice(&heartbeat().encode()[1..]);
        assert_eq!(
            PeerFrame::decode(&bytes),
            Err(FrameError::Version { found: 2, supported: PEER_PROTOCOL_VERSION })
        );
    }

    #[test]
    fn refuses_garbage_truncation_and_trailing_bytes() {
        let good = heartbeat().encode();
        for cut in 0..good.len() {
            assert!(PeerFrame::decode(&good[..cut]).is_err(), "prefix {cut} decoded");
        }
        let mut long = good.to_vec();
        long.push(0);
        assert!(matches!(PeerFrame::decode(&long), Err(FrameError::Malformed(_))));
        assert!(PeerFrame::decode(&[0xff; 64]).is_err());
        let huge = vec![1u8; limits::FRAME_BYTES_MAX + 1];
        assert!(matches!(PeerFrame::decode(&huge), Err(FrameError::TooLarge { .. })));
    }
}
