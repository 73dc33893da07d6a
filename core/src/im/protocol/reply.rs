//! What applying a command produced: a typed result for the author and
//! events for live subscribers.

use super::contact::Relation;
use super::entry::RoomEntry;
use super::file::FileInfoError;
use super::room::{Role, RoomId};
use crate::files::FileId;
use crate::im::identity::UserId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A successful command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Receipt {
    /// Registered (or renamed) as `name`.
    Registered {
        /// The registered name.
        name: String,
    },
    /// An entry was added to `room` at `seq` (a message, or a membership or
    /// settings change).
    Appended {
        /// The room.
        room: RoomId,
        /// The entry's sequence number.
        seq: u64,
    },
    /// The entry at `seq` in `room` changed (edit, delete, reaction).
    Updated {
        /// The room.
        room: RoomId,
        /// The entry's sequence number.
        seq: u64,
    },
    /// The read cursor in `room` is now `seq`.
    ReadUpTo {
        /// The room.
        room: RoomId,
        /// The cursor.
        seq: u64,
    },
    /// The author (a replica) is recorded as holding `file`.
    Held {
        /// The content.
        file: FileId,
    },
    /// Where the author stands with `user` now (contact commands).
    Relation {
        /// The other user.
        user: UserId,
        /// The relation, from the author's side.
        relation: Relation,
    },
    /// The author's read position is shared (or not) from now on.
    ReadsShared {
        /// Whether it is.
        share: bool,
    },
    /// The author's invitation to `room` is turned down.
    InviteDeclined {
        /// The room.
        room: RoomId,
    },
}

/// Why a command was refused. Deterministic: every replica refuses alike.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ImError {
    /// The command did not decode or is of another version.
    #[error("malformed command")]
    Malformed,
    /// The author must register first.
    #[error("register a name first")]
    NotRegistered,
    /// The name breaks the naming rules.
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// Another user has that name.
    #[error("name {0} is taken")]
    NameTaken(String),
    /// A room with that name exists.
    #[error("room {0} already exists")]
    RoomExists(String),
    /// No such room.
    #[error("no such room")]
    NoSuchRoom,
    /// No such user.
    #[error("no such user")]
    NoSuchUser,
    /// The author is not a member of the room.
    #[error("not a member of this room")]
    NotMember,
    /// The target is already a member.
    #[error("already a member")]
    AlreadyMember,
    /// The room is private and the author was not invited.
    #[error("this room is private: ask for an invitation")]
    NotInvited,
    /// The author is banned from the room.
    #[error("banned from this room")]
    Banned,
    /// The author's role is too low.
    #[error("requires role {needed:?}")]
    Forbidden {
        /// The role the operation needs.
        needed: Role,
    },
    /// Not allowed in direct rooms.
    #[error("not possible in a direct room")]
    DirectRoom,
    /// No message at that sequence number.
    #[error("no message at that sequence number")]
    NoSuchMessage,
    /// Only the author may do this.
    #[error("only the message's author may do this")]
    NotAuthor,
    /// The message was deleted.
    #[error("the message was deleted")]
    Deleted,
    /// A text is empty or too long.
    #[error("{what} must be 1 to {max} bytes")]
    BadLength {
        /// Which text.
        what: String,
        /// The limit.
        max: usize,
    },
    /// A limit was reached.
    #[error("limit reached: {0}")]
    LimitReached(String),
    /// The command's clock is outside the replay window.
    #[error("command too old or from the future (issued {issued_at_ms} ms, now {now_ms} ms)")]
    Expired {
        /// The command's clock.
        issued_at_ms: u64,
        /// The replicated clock.
        now_ms: u64,
    },
    /// The owner must hand ownership over before leaving or being demoted.
    #[error("the last owner cannot leave or be demoted")]
    LastOwner,
    /// A read cursor cannot point past the room's end.
    #[error("read cursor out of range")]
    BadCursor,
    /// The user is not banned.
    #[error("not banned")]
    NotBanned,
    /// This replica cannot read its history store (a local disk problem):
    /// ask another replica.
    #[error("this replica cannot read its history: {0}")]
    Unavailable(String),
    /// The file's manifest breaks a rule.
    #[error("bad file: {0}")]
    BadFile(FileInfoError),
    /// The author's files would pass their storage quota.
    #[error(
        "storage quota: {used_bytes} of {quota_bytes} bytes used, the file needs {size_bytes}"
    )]
    QuotaExceeded {
        /// Bytes the author's files hold now.
        used_bytes: u64,
        /// The quota.
        quota_bytes: u64,
        /// The file's size.
        size_bytes: u64,
    },
    /// No replica holds the file's content yet: upload it first.
    #[error("no replica holds this file's content: upload it first")]
    FileNotStored,
    /// The replica could not store an upload (its disk is full or failed,
    /// or the client stopped serving it); nothing was acknowledged.
    #[error("the replica could not store the file: {reason}")]
    StoreFailed {
        /// What went wrong, for people.
        reason: String,
    },
    /// No such request is pending (or it was declined already).
    #[error("no such request is pending")]
    NoSuchRequest,
    /// The user is not a contact.
    #[error("not a contact")]
    NotContact,
    /// The command cannot name its own author.
    #[error("not possible with oneself")]
    Yourself,
    /// The author blocks the user: unblock them first.
    #[error("you block this user: unblock them first")]
    YouBlock,
    /// The author did this too often: a new command may go through after
    /// `retry_after_ms`.
    #[error("too many {what}: try again in {retry_after_ms} ms")]
    RateLimited {
        /// What was limited.
        what: String,
        /// How long until one more is allowed (ms).
        retry_after_ms: u64,
    },
}

/// The outcome of one applied command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImResponse {
    /// Who sent it.
    pub author: UserId,
    /// Its id (for messages, the message id).
    pub command_id: Uuid,
    /// What happened. A retried command gets the first outcome again.
    pub result: Result<Receipt, ImError>,
    /// Whether this was a retry of a command already applied.
    pub duplicate: bool,
    /// Room log changes, for live subscribers (empty for duplicates).
    pub events: Vec<ImEvent>,
}

/// A change to a room's log, pushed to subscribers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImEvent {
    /// A new entry.
    Appended {
        /// The room.
        room: RoomId,
        /// The entry.
        entry: RoomEntry,
    },
    /// An entry changed in place (edit, delete, reaction).
    Updated {
        /// The room.
        room: RoomId,
        /// The entry as it is now.
        entry: RoomEntry,
    },
    /// A read cursor moved (by `MarkRead`, or by the reader's own message);
    /// live subscribers of the room receive it as `Delivery::Read`.
    Read {
        /// The room.
        room: RoomId,
        /// The reader.
        user: UserId,
        /// The cursor.
        seq: u64,
    },
    /// No entry refers to `file` any more: replicas may reclaim its storage.
    FileReleased {
        /// The file.
        file: FileId,
    },
    /// A replica (`holder`, its key) holds `file` from now on.
    FileHeld {
        /// The file.
        file: FileId,
        /// The replica's key.
        holder: UserId,
    },
}
