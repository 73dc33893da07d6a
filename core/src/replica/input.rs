//! Facts a driver reports to the replica service.

use super::asker::{AskerId, OutboundId};
use super::topic::GossipTopic;
use crate::ids::{NodeId, PersistId};
use crate::im::identity::UserId;
use crate::replica::subscriptions::SubscriptionId;
use bytes::Bytes;

/// Something that happened, as the driver saw it. Every frame is untrusted
/// bytes exactly as they arrived; the identities are what the transport
/// authenticated (a libp2p connection's key, a simulated address).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ServiceInput {
    /// A client sent a client-protocol request frame. `user` is the user its
    /// connection authenticated as; None when its key is not a user key.
    ClientRequested {
        /// Where the answer goes.
        asker: AskerId,
        /// The authenticated user, if the key is one.
        user: Option<UserId>,
        /// The frame.
        frame: Bytes,
    },
    /// A client opened a live stream and sent its subscribe frame.
    SubscribeRequested {
        /// Where a refusal goes (`ServiceOutput::LiveRefused`).
        asker: AskerId,
        /// The authenticated user, if the key is one.
        user: Option<UserId>,
        /// The subscribe frame.
        frame: Bytes,
    },
    /// A live stream closed (the client left or its queue was dropped).
    SubscriberLeft {
        /// The subscription the service had opened for it.
        subscription: SubscriptionId,
    },
    /// Another replica sent a replica-protocol request frame.
    PeerRequested {
        /// Where the answer goes.
        asker: AskerId,
        /// The replica its connection authenticated as.
        from: NodeId,
        /// The frame.
        frame: Bytes,
    },
    /// A Raft frame arrived outside a request (a datagram, a snapshot stream).
    RaftFrameReceived {
        /// The replica its connection authenticated as.
        from: NodeId,
        /// The frame.
        frame: Bytes,
    },
    /// A replica answered a request of ours.
    PeerAnswered {
        /// Which request.
        request: OutboundId,
        /// The answer frame.
        frame: Bytes,
    },
    /// A request of ours got no answer.
    PeerRequestFailed {
        /// Which request.
        request: OutboundId,
        /// Whether any of it may have reached the replica (false: the
        /// driver knew no way to it and sent nothing).
        sent: bool,
    },
    /// An operator sent an admin-protocol request frame.
    AdminRequested {
        /// Where the answer goes.
        asker: AskerId,
        /// The key the connection authenticated, if it is a user key.
        operator: Option<UserId>,
        /// The frame.
        frame: Bytes,
    },
    /// A gossip message arrived on a topic.
    GossipReceived {
        /// The topic.
        topic: GossipTopic,
        /// The message.
        data: Bytes,
    },
    /// Persist batches up to this id are durable.
    Persisted {
        /// The highest durable batch.
        up_to: PersistId,
    },
    /// A persist batch could not be made durable.
    PersistFailed {
        /// The batch.
        id: PersistId,
        /// Why.
        reason: String,
    },
    /// A replica answered at one of the addresses this one was told to join
    /// through: trust it as a join target.
    JoinTargetReached {
        /// The replica.
        id: NodeId,
    },
    /// The driver connected to a replica (for status answers).
    PeerConnected {
        /// The replica.
        peer: NodeId,
    },
    /// The driver lost every connection to a replica.
    PeerDisconnected {
        /// The replica.
        peer: NodeId,
    },
    /// A member (or an operator) vouched for a replica: its record reached
    /// the directory. It may send Raft traffic even before this replica
    /// applies its addition.
    ReplicaVouched {
        /// The replica.
        id: NodeId,
        /// Its name for people (a PeerId's text).
        name: String,
    },
    /// A chunk request (`/kith/chunks/1`) from a connection authenticated
    /// as `user` (a client, or a replica by its key).
    ChunkRequested {
        /// Who awaits the answer.
        asker: AskerId,
        /// The connection's key.
        user: Option<UserId>,
        /// The request frame.
        frame: Bytes,
    },
    /// The blob store holds all of `file`: synced, its hash tree built and
    /// checked against the root (after an upload or a `FetchFile`).
    BlobStored {
        /// The content.
        file: crate::files::FileId,
    },
    /// Serving `file` found the stored copy damaged (the driver answered
    /// that request `NotHere`).
    BlobDamaged {
        /// The content.
        file: crate::files::FileId,
    },
    /// The answer to `ListBlobs`: files the store holds whole, in id
    /// order.
    BlobsListed {
        /// The files.
        files: Vec<crate::files::FileId>,
    },
    /// A `FetchFile` gave up: no source could serve it.
    FetchFailed {
        /// The content.
        file: crate::files::FileId,
        /// Why, for people (a client asking to store it is told).
        reason: String,
    },
}
