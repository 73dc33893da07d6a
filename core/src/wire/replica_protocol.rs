//! Frames between replicas (`/kith/peer/1`) and from operators
//! (`/kith/admin/1`). Both are request-response exchanges of versioned
//! postcard frames (docs/PROTOCOL.md, sections 8 and 9). Pure types: the
//! real node carries them over libp2p, and the fuzzer decodes them.

use crate::ids::{LogIndex, NodeId, Term};
use crate::im::protocol::SignedCommand;
use crate::versioned::{self, VersionedError};
use crate::wire::client_protocol::ClientResponse;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The version of both protocols in this file. It is the Raft frames'
/// version too: one constant, so the two cannot drift apart.
pub use crate::wire::PEER_PROTOCOL_VERSION;

/// A replica's entry in the directory: its PeerId and where to dial it.
/// The Raft id is derived from the PeerId, so records cannot lie about ids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReplicaRecord {
    /// The replica's PeerId bytes.
    pub peer: Vec<u8>,
    /// Its listen addresses (multiaddr bytes).
    pub addrs: Vec<Vec<u8>>,
}

/// Replica to replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PeerRequest {
    /// One core frame (Raft message or snapshot chunk).
    Raft(Bytes),
    /// A client command, verified by the forwarding replica, for the leader.
    Forward(SignedCommand),
    /// The sender's directory; the answer is the receiver's.
    Hello(Vec<ReplicaRecord>),
    /// An operator's request, forwarded to the leader.
    Admin(AdminRequest),
}

/// The answer to a [`PeerRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PeerResponse {
    /// Taken (Raft frames are fire-and-forget; this only closes the exchange).
    Ack,
    /// The leader's answer to a forwarded command.
    Forwarded(ClientResponse),
    /// The receiver's directory.
    Hello(Vec<ReplicaRecord>),
    /// The leader's answer to a forwarded admin request.
    Admin(AdminResponse),
    /// Not taken (the sender is not a replica of this cluster, or the frame
    /// did not decode).
    Refused(String),
}

/// An operator's request to a replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminRequest {
    /// Who is in the cluster and how far each replica is.
    Status,
    /// Add a replica (as a voter unless `learner`).
    Add {
        /// Its record (PeerId and addresses).
        replica: ReplicaRecord,
        /// Add it as a non-voting learner.
        learner: bool,
    },
    /// Remove a replica.
    Remove {
        /// Its PeerId bytes.
        peer: Vec<u8>,
    },
}

/// One replica as the answering replica sees the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Raft id.
    pub id: NodeId,
    /// PeerId text, when known.
    pub peer: Option<String>,
    /// "voter", "learner" or "outgoing".
    pub role: String,
    /// Whether the answering replica is connected to it (always true for itself).
    pub connected: bool,
}

/// The cluster as one replica sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The answering replica.
    pub id: NodeId,
    /// Its role ("leader", "follower", ...).
    pub role: String,
    /// Its term.
    pub term: Term,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Its commit index.
    pub commit: LogIndex,
    /// Its applied index.
    pub applied: LogIndex,
    /// Its latest snapshot index.
    pub snapshot_index: LogIndex,
    /// The members.
    pub members: Vec<MemberStatus>,
}

/// The answer to an [`AdminRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminResponse {
    /// The status.
    Status(ClusterStatus),
    /// The membership change was committed; the cluster as it is now.
    Changed(ClusterStatus),
    /// Try again (leader changed, or a change is in progress).
    Retry(String),
    /// Refused for good (not an admin, bad request).
    Refused(String),
}

/// Encodes a frame of either protocol.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    versioned::encode(PEER_PROTOCOL_VERSION, value)
}

/// Decodes an untrusted frame of either protocol.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, VersionedError> {
    versioned::decode_frame(bytes, PEER_PROTOCOL_VERSION, crate::limits::FRAME_BYTES_MAX)
}
