//! The presence table: who is online, away or offline, and when they were
//! last seen, as this replica heard it.
//!
//! Presence is ephemeral and never enters the Raft log: a user's client
//! announces itself (signed, with a time-to-live), replicas pass it on over
//! gossip, and each keeps this table, expiring announcements by the `now`
//! its driver passes in. Announcements may arrive late, twice or out of
//! order; an older one never overrides a newer one.

use crate::im::identity::UserId;
use crate::im::presence::{PresenceError, PresenceStatus, SignedPresence};
use crate::limits;
use crate::time::Instant;
use crate::wire::client_protocol::UserPresence;
use std::collections::BTreeMap;
use std::time::Duration;

/// What the table says about a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresenceView {
    /// Current status.
    pub status: PresenceStatus,
    /// Client clock of the last announcement (ms), if any was seen.
    pub last_seen_ms: Option<u64>,
}

#[derive(Clone, Debug)]
struct Entry {
    status: PresenceStatus,
    issued_at_ms: u64,
    expires_at: Instant,
}

/// Presence of every user this node has heard of, bounded in size.
#[derive(Clone, Debug, Default)]
pub struct PresenceTable {
    entries: BTreeMap<UserId, Entry>,
}

impl PresenceTable {
    /// Takes an announcement received at `now`.
    pub fn announce(
        &mut self,
        now: Instant,
        announcement: &SignedPresence,
    ) -> Result<PresenceStatus, PresenceError> {
        let body = announcement.verify()?;
        if body.ttl_ms > limits::PRESENCE_TTL_MAX_MS {
            return Err(PresenceError::TtlTooLong(body.ttl_ms));
        }
        if let Some(e) = self.entries.get(&announcement.user) {
            if e.issued_at_ms >= body.issued_at_ms {
                return Err(PresenceError::Stale);
            }
        } else if self.entries.len() >= limits::PRESENCE_ENTRIES_MAX && !self.evict_one_offline(now)
        {
            return Err(PresenceError::Full);
        }
        let expires_at = now + Duration::from_millis(body.ttl_ms);
        let entry = Entry { status: body.status, issued_at_ms: body.issued_at_ms, expires_at };
        self.entries.insert(announcement.user, entry);
        Ok(body.status)
    }

    /// A user's presence at `now`.
    pub fn view(&self, now: Instant, user: UserId) -> PresenceView {
        match self.entries.get(&user) {
            None => PresenceView { status: PresenceStatus::Offline, last_seen_ms: None },
            Some(e) => PresenceView {
                status: if e.expires_at <= now { PresenceStatus::Offline } else { e.status },
                last_seen_ms: Some(e.issued_at_ms),
            },
        }
    }

    /// Users whose status lapsed to offline by `now` (each reported once).
    pub fn expire(&mut self, now: Instant) -> Vec<UserId> {
        let mut lapsed = Vec::new();
        for (user, e) in &mut self.entries {
            if e.expires_at <= now && e.status != PresenceStatus::Offline {
                e.status = PresenceStatus::Offline;
                lapsed.push(*user);
            }
        }
        lapsed
    }

    /// When the next announcement lapses.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter(|e| e.status != PresenceStatus::Offline)
            .map(|e| e.expires_at)
            .min()
    }

    fn evict_one_offline(&mut self, now: Instant) -> bool {
        let oldest = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires_at <= now || e.status == PresenceStatus::Offline)
            .min_by_key(|(_, e)| e.issued_at_ms)
            .map(|(u, _)| *u);
        oldest.is_some_and(|u| self.entries.remove(&u).is_some())
    }
}

impl UserPresence {
    /// A user's presence as a table shows it.
    pub fn new(user: UserId, view: PresenceView) -> UserPresence {
        UserPresence { user, status: view.status, last_seen_ms: view.last_seen_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im::identity::Identity;
    use crate::im::presence::PresenceBody;

    fn announce(
        who: &Identity,
        status: PresenceStatus,
        issued_at_ms: u64,
        ttl_ms: u64,
    ) -> SignedPresence {
        SignedPresence::sign(who, &PresenceBody { status, issued_at_ms, ttl_ms })
    }

    #[test]
    fn announcements_expire_and_never_go_back_in_time() {
        let ann = Identity::from_secret([1; 32]);
        let mut t = PresenceTable::default();
        let at = |ms| Instant::from_millis(ms);
        assert_eq!(t.view(at(0), ann.user()).status, PresenceStatus::Offline);
        t.announce(at(0), &announce(&ann, PresenceStatus::Online, 100, 30_000)).unwrap();
        assert_eq!(t.view(at(1_000), ann.user()).status, PresenceStatus::Online);
        assert_eq!(t.poll_timeout(), Some(at(30_000)));
        let late = announce(&ann, PresenceStatus::Away, 50, 30_000);
        assert_eq!(t.announce(at(2_000), &late), Err(PresenceError::Stale));
        t.announce(at(3_000), &announce(&ann, PresenceStatus::Away, 200, 30_000)).unwrap();
        assert_eq!(t.view(at(4_000), ann.user()).status, PresenceStatus::Away);
        assert!(t.expire(at(32_999)).is_empty());
        assert_eq!(t.expire(at(33_000)), vec![ann.user()]);
        assert!(t.expire(at(40_000)).is_empty(), "reported once");
        let v = t.view(at(40_000), ann.user());
        assert_eq!((v.status, v.last_seen_ms), (PresenceStatus::Offline, Some(200)));
    }

    #[test]
    fn forged_and_overlong_announcements_are_refused() {
        let ann = Identity::from_secret([1; 32]);
        let mut t = PresenceTable::default();
        let mut forged = announce(&ann, PresenceStatus::Online, 1, 1000);
        forged.user = Identity::from_secret([2; 32]).user();
        assert!(matches!(t.announce(Instant::ZERO, &forged), Err(PresenceError::Identity(_))));
        let long = announce(&ann, PresenceStatus::Online, 1, limits::PRESENCE_TTL_MAX_MS + 1);
        assert!(matches!(t.announce(Instant::ZERO, &long), Err(PresenceError::TtlTooLong(_))));
    }
}
