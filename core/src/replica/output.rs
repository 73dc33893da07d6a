//! Commands the replica service gives its driver.

use super::asker::{AskerId, OutboundId};
use super::topic::GossipTopic;
use crate::ids::{LogIndex, NodeId, PersistId, Term};
use crate::raft::{Membership, Role};
use crate::replica::subscriptions::SubscriptionId;
use crate::wire::replica_protocol::ReplicaRecord;
use bytes::Bytes;
use std::time::Duration;

/// What the driver must do (or may observe), in order.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ServiceOutput {
    /// Send `frame` as the answer to `asker` (already encoded in the
    /// protocol the asker used). An asker that went away is no error.
    Respond {
        /// Who.
        asker: AskerId,
        /// The encoded answer.
        frame: Vec<u8>,
    },
    /// Send a Raft frame (message or snapshot chunk) to a replica; best
    /// effort, Raft retransmits.
    SendRaft {
        /// The replica.
        to: NodeId,
        /// The frame.
        frame: Bytes,
    },
    /// Send a replica-protocol request and report its answer as
    /// `ServiceInput::PeerAnswered` or `PeerRequestFailed`.
    SendPeerRequest {
        /// The replica.
        to: NodeId,
        /// The name to report the answer under.
        request: OutboundId,
        /// The encoded request.
        frame: Vec<u8>,
    },
    /// Publish on a gossip topic to the other replicas (best effort).
    Publish {
        /// The topic.
        topic: GossipTopic,
        /// The message.
        data: Vec<u8>,
    },
    /// Append `bytes`, fsync, then report `Persisted` (see `node::Output::Persist`).
    Persist {
        /// The batch id.
        id: PersistId,
        /// Start a new segment first.
        new_segment: bool,
        /// The batch.
        bytes: Bytes,
    },
    /// A live stream's subscription is open: poll it with
    /// `ReplicaService::poll_live`.
    Subscribed {
        /// The stream.
        asker: AskerId,
        /// Its subscription.
        subscription: SubscriptionId,
    },
    /// A live stream was refused: write `frame` (a `LiveFrame::Refused`) and close it.
    LiveRefused {
        /// The stream.
        asker: AskerId,
        /// The encoded refusal.
        frame: Vec<u8>,
    },
    /// A member sent its directory: take these records (the members' among
    /// them) into the address book, and answer `asker` with a
    /// `PeerResponse::Hello` of this replica's own directory.
    HelloReceived {
        /// Where the answer goes.
        asker: AskerId,
        /// The records to take.
        records: Vec<ReplicaRecord>,
    },
    /// An operator added this replica: remember where to reach it.
    ReplicaAdded {
        /// Its record.
        record: ReplicaRecord,
    },
    /// An entry was applied (for metrics and checkers). `waited` is how long
    /// the command waited from submission, when this replica proposed it.
    Applied {
        /// Its index.
        index: LogIndex,
        /// Its term.
        term: Term,
        /// The command's position within the entry.
        position: u32,
        /// Time from submission to apply, for commands proposed here.
        waited: Option<Duration>,
    },
    /// The configuration changed.
    MembershipChanged {
        /// The entry that changed it.
        index: LogIndex,
        /// The new configuration.
        membership: Membership,
    },
    /// This replica's role changed.
    RoleChanged {
        /// The new role.
        role: Role,
        /// In this term.
        term: Term,
        /// The leader it knows of.
        leader: Option<NodeId>,
    },
    /// The node stopped for good (a failed write); the driver exits.
    Halted {
        /// Why.
        reason: String,
    },
    /// Read `groups` of `file` from the blob store (checking them against
    /// the root) and answer `asker` with `ChunkAnswer::Groups`; if the copy
    /// is damaged, answer `ChunkAnswer::NotHere` and report `BlobDamaged`.
    ServeChunks {
        /// Who awaits the chunks.
        asker: AskerId,
        /// The content.
        file: crate::files::FileId,
        /// Which groups.
        groups: std::ops::Range<u64>,
    },
    /// Fetch `file` into the blob store from these sources (a
    /// `files::Download` whose sources they are, over `/kith/chunks/1`),
    /// then report `BlobStored`, or `FetchFailed` if it gives up.
    FetchFile {
        /// The content.
        file: crate::files::FileId,
        /// Who has it.
        sources: Vec<FileSource>,
    },
    /// Report which files the blob store holds whole, in id order, after
    /// `after`, at most `max` of them (`BlobsListed`).
    ListBlobs {
        /// Where the list starts (exclusive).
        after: Option<crate::files::FileId>,
        /// At most this many.
        max: usize,
    },
    /// Delete `file` from the blob store (released by the log, or damaged),
    /// and stop fetching it.
    RemoveBlob {
        /// The content.
        file: crate::files::FileId,
        /// Why it goes.
        why: BlobRemoval,
    },
}

/// Why a replica removes a stored copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobRemoval {
    /// No entry refers to the content any more.
    Released,
    /// The copy is damaged; it is fetched again.
    Damaged,
}

/// Where a replica may fetch a file's content from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileSource {
    /// A replica the log records as holding it.
    Replica(NodeId),
    /// The client uploading it (on its own connection).
    Client(crate::im::identity::UserId),
}
