//! Rooms: identity, visibility and roles.

use crate::im::identity::UserId;
use crate::limits;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A room: a named group, or the one direct room of a pair of users.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RoomId {
    /// A group room, by its unique name.
    Group(String),
    /// The direct room of two users (stored lowest first).
    Direct(UserId, UserId),
}

impl RoomId {
    /// The direct room of `a` and `b`, whichever order they come in.
    pub fn direct(a: UserId, b: UserId) -> RoomId {
        if a <= b {
            RoomId::Direct(a, b)
        } else {
            RoomId::Direct(b, a)
        }
    }

    /// Whether `name` is a valid group room name: 1 to 64 of `a-z 0-9 - _`.
    pub fn valid_group_name(name: &str) -> bool {
        !name.is_empty()
            && name.chars().count() <= limits::ROOM_NAME_CHARS_MAX
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomId::Group(name) => write!(f, "#{name}"),
            RoomId::Direct(a, b) => write!(f, "@{a}+{b}"),
        }
    }
}

impl fmt::Debug for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomId::Group(name) => write!(f, "#{name}"),
            RoomId::Direct(a, b) => write!(f, "@{a:?}+{b:?}"),
        }
    }
}

/// Who may find and join a group room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Visibility {
    /// Anyone registered may join and read.
    Public,
    /// Members and invitees only.
    Private,
}

/// A member's powers in a room. Ordered: owner > admin > member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// Reads and writes.
    Member,
    /// Also invites, kicks, bans, renames, sets the topic, deletes others' messages.
    Admin,
    /// Also grants and revokes admin.
    Owner,
}
