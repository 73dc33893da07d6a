//! Contacts, requests and blocks as a user sees them.

use super::entry::RoomEntry;
use crate::im::identity::UserId;
use serde::{Deserialize, Serialize};

/// Where the author stands with another user after a contact command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Relation {
    /// Nothing: no contact, no request either way.
    None,
    /// Contacts: direct messages open a direct room at once.
    Contact,
    /// The author's request waits for the other's answer.
    RequestSent,
    /// The other's request waits for the author's answer.
    RequestReceived,
    /// The author blocks the other.
    Blocked,
}

/// A pending request, from one side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestInfo {
    /// The other user (the sender in `incoming`, the recipient in `outgoing`).
    pub user: UserId,
    /// Their display name.
    pub name: String,
    /// When it was made (ms).
    pub at_ms: u64,
    /// When it lapses unanswered (ms).
    pub expires_at_ms: u64,
    /// Messages waiting in the direct room (0 for a plain contact request).
    pub messages: u32,
    /// A message request's first message, as the recipient would read it
    /// (`None` for a contact request, and in `outgoing`).
    pub first: Option<RoomEntry>,
}

/// A user's contacts, requests both ways and blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactsView {
    /// Contacts and their names, by user id.
    pub contacts: Vec<(UserId, String)>,
    /// Requests waiting for this user's answer (not those it declined, nor
    /// those of users it blocks).
    pub incoming: Vec<RequestInfo>,
    /// This user's requests waiting for an answer.
    pub outgoing: Vec<RequestInfo>,
    /// Users this user blocks, with their names.
    pub blocked: Vec<(UserId, String)>,
}
