//! The replicated IM state and its rooms. Every collection is a BTreeMap or
//! BTreeSet, so iteration (and the snapshot bytes) are deterministic.

use super::multiset_hash::MultisetHash;
use super::replay::RecentCommands;
use crate::im::identity::UserId;
use crate::im::protocol::{ImError, Role, RoomId, Visibility};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A registered user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UserRecord {
    pub(crate) name: String,
}

/// One room's summary; its entries live in the history store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Room {
    pub(crate) title: String,
    pub(crate) topic: String,
    /// `None` for direct rooms.
    pub(crate) visibility: Option<Visibility>,
    pub(crate) members: BTreeMap<UserId, Role>,
    pub(crate) invited: BTreeSet<UserId>,
    pub(crate) banned: BTreeSet<UserId>,
    /// Former members and the last sequence number they may still read.
    pub(crate) departed: BTreeMap<UserId, u64>,
    /// The highest sequence number; entries `1..=last_seq` are in the store.
    pub(crate) last_seq: u64,
    pub(crate) read: BTreeMap<UserId, u64>,
}

impl Room {
    pub(crate) fn new(title: String, visibility: Option<Visibility>) -> Room {
        Room {
            title,
            topic: String::new(),
            visibility,
            members: BTreeMap::new(),
            invited: BTreeSet::new(),
            banned: BTreeSet::new(),
            departed: BTreeMap::new(),
            last_seq: 0,
            read: BTreeMap::new(),
        }
    }

    pub(crate) fn is_direct(&self) -> bool {
        self.visibility.is_none()
    }

    /// The author's role, or `NotMember`.
    pub(crate) fn role_of(&self, user: UserId) -> Result<Role, ImError> {
        self.members.get(&user).copied().ok_or(ImError::NotMember)
    }

    /// Requires the author to be a member with at least `needed`.
    pub(crate) fn require(&self, user: UserId, needed: Role) -> Result<Role, ImError> {
        let role = self.role_of(user)?;
        if role < needed {
            return Err(ImError::Forbidden { needed });
        }
        Ok(role)
    }

    /// The highest sequence number `user` may read, if any.
    pub(crate) fn readable_up_to(&self, user: UserId) -> Option<u64> {
        if self.members.contains_key(&user)
            || (self.visibility == Some(Visibility::Public) && !self.banned.contains(&user))
        {
            return Some(self.last_seq);
        }
        self.departed.get(&user).copied()
    }

    /// Removes a member; they keep read access up to `seq`.
    pub(crate) fn remove_member(&mut self, user: UserId, seq: u64) {
        self.members.remove(&user);
        self.departed.insert(user, seq);
    }

    /// Whether another owner remains besides `user`.
    pub(crate) fn has_other_owner(&self, user: UserId) -> bool {
        self.members.iter().any(|(u, r)| *u != user && *r == Role::Owner)
    }
}

/// The whole replicated IM state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ImState {
    /// The replicated clock: the highest leader stamp applied (ms).
    pub(crate) clock_ms: u64,
    pub(crate) users: BTreeMap<UserId, UserRecord>,
    /// Lower-cased names, for uniqueness.
    pub(crate) names: BTreeMap<String, UserId>,
    pub(crate) rooms: BTreeMap<RoomId, Room>,
    /// The rooms each user belongs to.
    pub(crate) memberships: BTreeMap<UserId, BTreeSet<RoomId>>,
    pub(crate) recent: RecentCommands,
    /// An order-independent sum of every stored (room, entry) pair's hash,
    /// kept up to date on each write, so the digest covers history without
    /// reading it.
    pub(crate) history_sum: MultisetHash,
}

/// What the state digest covers: every field, with the large collections
/// (the replay window, the history) by their running multiset hashes.
#[derive(Serialize)]
pub(crate) struct StateSummary<'a> {
    clock_ms: u64,
    users: &'a BTreeMap<UserId, UserRecord>,
    names: &'a BTreeMap<String, UserId>,
    rooms: &'a BTreeMap<RoomId, Room>,
    memberships: &'a BTreeMap<UserId, BTreeSet<RoomId>>,
    recent: MultisetHash,
    history: MultisetHash,
}

impl ImState {
    pub(crate) fn summary(&self) -> StateSummary<'_> {
        StateSummary {
            clock_ms: self.clock_ms,
            users: &self.users,
            names: &self.names,
            rooms: &self.rooms,
            memberships: &self.memberships,
            recent: self.recent.sum(),
            history: self.history_sum,
        }
    }

    pub(crate) fn rooms_of(&self, user: UserId) -> usize {
        self.memberships.get(&user).map_or(0, BTreeSet::len)
    }

    pub(crate) fn join_index(&mut self, user: UserId, room: &RoomId) {
        self.memberships.entry(user).or_default().insert(room.clone());
    }

    pub(crate) fn leave_index(&mut self, user: UserId, room: &RoomId) {
        if let Some(set) = self.memberships.get_mut(&user) {
            set.remove(room);
            if set.is_empty() {
                self.memberships.remove(&user);
            }
        }
    }
}
