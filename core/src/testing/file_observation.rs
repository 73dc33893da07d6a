//! What a file checker sees: contents made, chunks served and written,
//! file messages sent and deleted, copies removed, and what could be
//! fetched after the heal. Reported by the madsim driver as it happens;
//! the checkers are in `sim-tests/src/invariants/` (files_*.rs).

use crate::files::{ChunkResponse, FileId};
use crate::ids::{LogIndex, NodeId};
use crate::im::identity::UserId;
use crate::im::protocol::RoomId;
use crate::replica::BlobRemoval;

/// One fact about file content.
#[derive(Debug)]
#[non_exhaustive]
pub enum FileObservation<'a> {
    /// A client made a new content (before anyone could fetch it).
    Created {
        /// Its id.
        file: FileId,
        /// Its bytes.
        content: &'a [u8],
    },
    /// A replica (`node`, having applied up to `applied`) or a client
    /// (`node` is `None`) answered a chunk request from `to` with groups.
    Served {
        /// The replica, or `None` for an uploading client.
        node: Option<NodeId>,
        /// The replica's applied index when it served.
        applied: LogIndex,
        /// Who asked.
        to: UserId,
        /// The content.
        file: FileId,
        /// What went on the wire (before any fault of the network).
        response: &'a ChunkResponse,
    },
    /// A download (a replica's or a client's) wrote `data` at `offset`.
    Written {
        /// The content.
        file: FileId,
        /// Where in it.
        offset: u64,
        /// The bytes.
        data: &'a [u8],
    },
    /// A client submitted a file message for `file` (it may commit even if
    /// the client never hears so).
    SendSubmitted {
        /// The content.
        file: FileId,
    },
    /// A file message was acknowledged: committed and stored on a majority.
    Sent {
        /// The content.
        file: FileId,
        /// Its room.
        room: &'a RoomId,
        /// Its position.
        seq: u64,
    },
    /// A client submitted the deletion of entry `seq` of `room`.
    DeleteSubmitted {
        /// The room.
        room: &'a RoomId,
        /// The entry.
        seq: u64,
    },
    /// The deletion of entry `seq` of `room` was acknowledged; every
    /// replica that has applied `applied` has applied it.
    Deleted {
        /// The room.
        room: &'a RoomId,
        /// The entry.
        seq: u64,
        /// An index at or past the deletion's.
        applied: LogIndex,
    },
    /// Replica `node` removed its copy of `file`.
    Removed {
        /// The replica.
        node: NodeId,
        /// The content.
        file: FileId,
        /// Why.
        why: BlobRemoval,
    },
    /// After the heal a member fetched every content it knew a standing
    /// message of: each one's outcome.
    Settled {
        /// Each content, and whether it was fetched whole and verified
        /// (or why not).
        fetched: &'a [(FileId, Result<(), String>)],
    },
}
