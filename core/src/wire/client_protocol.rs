//! The client protocol: what a client sends a replica and what it gets back.
//! Transports (libp2p request-response, the simulator's datagrams) carry one
//! encoded frame per message; docs/PROTOCOL.md specifies the layout.

use crate::files::FileId;
use crate::ids::NodeId;
use crate::im::identity::UserId;
use crate::im::presence::{PresenceStatus, SignedPresence};
use crate::im::protocol::{
    CommandError, ImError, QueryKind, QueryResult, Receipt, RoomEntry, RoomId, SignedCommand,
};
use crate::im::typing::SignedTyping;
use crate::limits;
use crate::versioned::{self, VersionedError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The client protocol version this build speaks.
pub const CLIENT_PROTOCOL_VERSION: u16 = 1;

/// A client's request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientRequest {
    /// Submit a signed command.
    Submit(SignedCommand),
    /// Read, as the connection's user (linearizable: served after a read index).
    Query(QueryKind),
    /// Announce presence.
    Presence(SignedPresence),
    /// Ask for the presence of these users (at most `limits::PRESENCE_QUERY_USERS_MAX`).
    PresenceOf(Vec<UserId>),
    /// Say the user is (or stopped) typing in a room they belong to.
    Typing(SignedTyping),
    /// Store this content (which the client serves on `/kith/chunks/1`
    /// meanwhile): the replica fetches it from the client, checks it and
    /// records in the log that it holds it. Ask again until `FileStored`.
    StoreFile(FileId),
}

/// One request frame: `version:u16` then this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    /// Chosen by the client; echoed in the response.
    pub request_id: u64,
    /// The request.
    pub request: ClientRequest,
}

/// The outcome of an applied command, as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// The command's id.
    pub command_id: Uuid,
    /// What happened (the first outcome again for a retry).
    pub result: Result<Receipt, ImError>,
    /// Whether this was a retry of an applied command.
    pub duplicate: bool,
}

/// A replica's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientResponse {
    /// The command was committed and applied.
    Applied(CommandOutcome),
    /// This replica cannot order commands; try the hinted one.
    NotLeader {
        /// The leader this replica believes in.
        leader_hint: Option<NodeId>,
    },
    /// The command was not applied. `maybe_applied` is false when it
    /// certainly was not; either way retrying with the same command id is
    /// safe.
    Retry {
        /// Whether it might have been applied after all.
        maybe_applied: bool,
    },
    /// The replica is overloaded; back off.
    Busy,
    /// The command was refused before ordering (signature, version, author).
    Refused(CommandError),
    /// A query's answer.
    Answer(QueryResult),
    /// Presence was taken (or ignored as stale).
    PresenceTaken,
    /// The request frame was not understood.
    BadRequest(String),
    /// The presence of the users asked about, in the order asked.
    Presence(Vec<UserPresence>),
    /// A typing notice was taken (or was a repeat of one already taken).
    TypingTaken,
    /// The log records this replica as holding the content: send the
    /// file message now.
    FileStored(FileId),
    /// The replica is fetching the content from the client: keep serving
    /// it, and ask again.
    FileStoring(FileId),
    /// The replica will not store it (too large, over the user's quota).
    StoreRefused(ImError),
    /// The user submitted more commands through this replica than its
    /// rate allows: send the same command again after `retry_after_ms`
    /// (it was not taken; an earlier attempt may have been applied, which
    /// the resend then reports).
    RateLimited {
        /// How long to wait (ms).
        retry_after_ms: u64,
    },
}

/// One user's presence as a replica sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPresence {
    /// Who.
    pub user: UserId,
    /// Their status (offline once the announcement's time-to-live ran out).
    pub status: PresenceStatus,
    /// The client clock (ms since the UNIX epoch) of their latest announcement.
    pub last_seen_ms: Option<u64>,
}

pub use super::subscribe_frame::{RoomFrom, SubscribeFrame};

/// Every later frame on a live-subscription stream, replica to client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LiveFrame {
    /// The next entry of a room; sequence numbers have no gaps.
    Entry {
        /// The room.
        room: RoomId,
        /// The entry.
        entry: RoomEntry,
    },
    /// An entry already delivered changed (edit, delete, reaction).
    Updated {
        /// The room.
        room: RoomId,
        /// The entry as it is now.
        entry: RoomEntry,
    },
    /// The user may no longer read the room; nothing more will come from it.
    Ended {
        /// The room.
        room: RoomId,
        /// The last entry they may read.
        last_seq: u64,
    },
    /// The subscription was refused or ended by the replica.
    Refused(String),
    /// A member is typing in a followed room (or stopped). Best effort:
    /// notices may be dropped; each lapses after `typing::TYPING_TTL_MS`.
    Typing {
        /// The room.
        room: RoomId,
        /// Who.
        user: UserId,
        /// Typing (true) or stopped (false).
        active: bool,
    },
    /// A user's read cursor in a followed room moved (or, just after
    /// subscribing, where it is). Never names an entry not yet sent.
    Read {
        /// The room.
        room: RoomId,
        /// Whose cursor.
        user: UserId,
        /// They have read up to and including this entry.
        seq: u64,
    },
    /// An entry already delivered changed (edit, delete, reaction): sent
    /// instead of `Updated` to a version 2 subscription. Change numbers
    /// increase along the stream; subscribing again after the last one
    /// received misses no change.
    Changed {
        /// The room.
        room: RoomId,
        /// The change's number.
        change: u64,
        /// The entry as it is now.
        entry: RoomEntry,
    },
    /// Every entry received so far reflects every change up to `change`
    /// (version 2 subscriptions): a client resumes after it when it has
    /// received no later `Changed`.
    ChangesSeen {
        /// The room.
        room: RoomId,
        /// The change number.
        change: u64,
    },
}

impl From<crate::im::protocol::ImResponse> for ClientResponse {
    /// The answer to the accepting client when its command was applied.
    fn from(r: crate::im::protocol::ImResponse) -> ClientResponse {
        let outcome =
            CommandOutcome { command_id: r.command_id, result: r.result, duplicate: r.duplicate };
        ClientResponse::Applied(outcome)
    }
}

/// One response frame: `version:u16` then this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseFrame {
    /// The request this answers.
    pub request_id: u64,
    /// The answer.
    pub response: ClientResponse,
}

/// Why a client frame was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientFrameError {
    /// Too large.
    #[error("client frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Another version.
    #[error("client protocol version {found} is not supported (this node speaks {supported})")]
    Version {
        /// Found.
        found: u16,
        /// Supported.
        supported: u16,
    },
    /// Not a frame.
    #[error("malformed client frame: {0}")]
    Malformed(String),
}

impl From<VersionedError> for ClientFrameError {
    fn from(e: VersionedError) -> ClientFrameError {
        match e {
            VersionedError::Version { found, supported } => {
                ClientFrameError::Version { found, supported }
            }
            VersionedError::TooLarge { len, max } => ClientFrameError::TooLarge { len, max },
            VersionedError::Malformed(m) => ClientFrameError::Malformed(m),
        }
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    versioned::encode(CLIENT_PROTOCOL_VERSION, value)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ClientFrameError> {
    Ok(versioned::decode_frame(bytes, CLIENT_PROTOCOL_VERSION, limits::FRAME_BYTES_MAX)?)
}

/// `encode` (version first) and `decode` (of untrusted bytes) for each
/// client-protocol frame type.
macro_rules! versioned_frames {
    ($($frame:ident),+) => {$(
        impl $frame {
            /// Encodes, version first.
            pub fn encode(&self) -> Vec<u8> {
                encode(self)
            }

            /// Decodes untrusted bytes.
            pub fn decode(bytes: &[u8]) -> Result<$frame, ClientFrameError> {
                decode(bytes)
            }
        }
    )+};
}

versioned_frames!(RequestFrame, ResponseFrame, LiveFrame);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im::protocol::RoomId;

    #[test]
    fn frames_round_trip_and_refuse_garbage() {
        let req = RequestFrame {
            request_id: 9,
            request: ClientRequest::Query(QueryKind::Room { room: RoomId::Group("a".into()) }),
        };
        assert_eq!(RequestFrame::decode(&req.encode()), Ok(req.clone()));
        let resp = ResponseFrame {
            request_id: 9,
            response: ClientResponse::NotLeader { leader_hint: Some(NodeId(2)) },
        };
        assert_eq!(ResponseFrame::decode(&resp.encode()), Ok(resp));
        let bytes = req.encode();
        for cut in 0..bytes.len() {
            assert!(RequestFrame::decode(&bytes[..cut]).is_err());
        }
        let mut other = bytes.clone();
        other[0] = 7;
        assert_eq!(
            RequestFrame::decode(&other),
            Err(ClientFrameError::Version { found: 7, supported: 1 })
        );
    }
}
