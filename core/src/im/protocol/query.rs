//! Reads: history, inbox, unread counts, room and user listings. A query
//! carries the user the transport authenticated; visibility rules apply.

use super::contact::ContactsView;
use super::entry::RoomEntry;
use super::reply::ImError;
use super::room::{Role, RoomId, Visibility};
use crate::im::identity::UserId;
use serde::{Deserialize, Serialize};

/// A read, as a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImQuery {
    /// Who asks (authenticated by the transport, not by the query).
    pub as_user: UserId,
    /// What they ask.
    pub kind: QueryKind,
}

/// The kinds of reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum QueryKind {
    /// A page of a room's log by sequence number: entries with
    /// `after < seq < before`, oldest first; the newest `limit` of them
    /// when only `before` is given, the oldest `limit` otherwise.
    History {
        /// The room.
        room: RoomId,
        /// Exclusive lower bound.
        after: Option<u64>,
        /// Exclusive upper bound.
        before: Option<u64>,
        /// At most this many (capped at the page limit).
        limit: u32,
    },
    /// A page of a room's log by time: entries ordered at
    /// `from_ms <= time < to_ms` with `seq > after`, oldest first.
    HistoryByTime {
        /// The room.
        room: RoomId,
        /// Inclusive start.
        from_ms: u64,
        /// Exclusive end.
        to_ms: u64,
        /// Resume after this sequence number (the previous page's cursor).
        after: Option<u64>,
        /// At most this many.
        limit: u32,
    },
    /// Everything after the user's read cursors, across all their rooms,
    /// in pages: rooms in id order, entries by sequence number.
    Inbox {
        /// Resume after this position (the previous page's cursor).
        after: Option<(RoomId, u64)>,
        /// At most this many.
        limit: u32,
    },
    /// Unread message counts per room.
    Unread,
    /// The rooms the user belongs to.
    Rooms,
    /// One room's details.
    Room {
        /// The room.
        room: RoomId,
    },
    /// A user by display name (case-insensitive).
    UserByName {
        /// The name.
        name: String,
    },
    /// A user's display name.
    User {
        /// The user.
        user: UserId,
    },
    /// The asking user's contacts, requests both ways and blocks.
    Contacts,
    /// Members' read positions in a room (of those who share them).
    ReadPositions {
        /// The room.
        room: RoomId,
    },
    /// The asking user's pending invitations.
    Invites,
}

/// A page of room entries and where the next one starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// The entries, oldest first.
    pub entries: Vec<RoomEntry>,
    /// Pass as `after` (forward pages) or `before` (backward pages) to
    /// continue; `None` when there is nothing more.
    pub next: Option<u64>,
}

/// A page of the inbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxPage {
    /// (room, entry) pairs, rooms in id order, entries by sequence.
    pub items: Vec<(RoomId, RoomEntry)>,
    /// Pass as `after` to continue; `None` when the inbox is exhausted.
    pub next: Option<(RoomId, u64)>,
}

/// A room as seen in listings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    /// The room.
    pub room: RoomId,
    /// Its title (the name unless renamed).
    pub title: String,
    /// Its topic.
    pub topic: String,
    /// Group visibility (`None` for direct rooms).
    pub visibility: Option<Visibility>,
    /// The last sequence number.
    pub last_seq: u64,
    /// The asking user's read cursor.
    pub read_seq: u64,
    /// Member count.
    pub members: u32,
}

/// One room's details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// The summary.
    pub summary: RoomSummary,
    /// Members and roles, by user id.
    pub members: Vec<(UserId, Role)>,
    /// Pending invitations.
    pub invited: Vec<UserId>,
    /// Banned users.
    pub banned: Vec<UserId>,
}

/// A user's public record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user.
    pub user: UserId,
    /// Their display name.
    pub name: String,
}

/// The answer to a query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum QueryReply {
    /// A history page.
    Page(Page),
    /// An inbox page.
    Inbox(InboxPage),
    /// Unread message counts, per room in id order.
    Unread(Vec<(RoomId, u64)>),
    /// Room listing.
    Rooms(Vec<RoomSummary>),
    /// Room details.
    Room(RoomInfo),
    /// A user, if found.
    User(Option<UserInfo>),
    /// Contacts, requests and blocks.
    Contacts(ContactsView),
    /// `(user, seq)`: each sharing member has read up to `seq`, users in
    /// id order.
    ReadPositions(Vec<(UserId, u64)>),
    /// Pending invitations, rooms in id order.
    Invites(Vec<InviteInfo>),
}

/// A pending invitation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteInfo {
    /// The room (join it to accept).
    pub room: RoomId,
    /// Its title.
    pub title: String,
    /// Who invited (None for an invitation older than this record).
    pub inviter: Option<UserId>,
    /// The inviter's name (empty when unknown).
    pub inviter_name: String,
}

/// A query's result.
pub type QueryResult = Result<QueryReply, ImError>;
