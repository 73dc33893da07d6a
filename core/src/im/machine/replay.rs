//! Replay protection and idempotency for commands: a command older than the
//! replay window is refused; within it, a command id already applied gets
//! its first outcome again instead of running twice. Memory is bounded by
//! the window and a per-user cap.

use super::multiset_hash::MultisetHash;
use crate::im::identity::UserId;
use crate::im::protocol::{ImError, Receipt};
use crate::limits;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RecentCommandsWire")]
pub(crate) struct RecentCommands {
    outcomes: BTreeMap<(UserId, Uuid), Result<Receipt, ImError>>,
    by_time: BTreeSet<(u64, UserId, Uuid)>,
    per_user: BTreeMap<UserId, usize>,
    /// The multiset hash of every remembered command, so the state digest
    /// covers the window (thousands of outcomes) without encoding it. Not
    /// in snapshots: decoding rebuilds it from what it covers.
    #[serde(skip)]
    sum: MultisetHash,
}

/// What a snapshot holds of the window: the fields above but the sum.
#[derive(Deserialize)]
struct RecentCommandsWire {
    outcomes: BTreeMap<(UserId, Uuid), Result<Receipt, ImError>>,
    by_time: BTreeSet<(u64, UserId, Uuid)>,
    per_user: BTreeMap<UserId, usize>,
}

impl TryFrom<RecentCommandsWire> for RecentCommands {
    type Error = &'static str;

    /// Rebuilds the sum, and refuses a window whose three views disagree
    /// (expiry would otherwise trip over it long after the decode).
    fn try_from(w: RecentCommandsWire) -> Result<RecentCommands, &'static str> {
        let mut sum = MultisetHash::default();
        let mut per_user = BTreeMap::<UserId, usize>::new();
        let mut timed = BTreeSet::new();
        for &(issued, user, id) in &w.by_time {
            let outcome = w.outcomes.get(&(user, id)).ok_or("a command without its outcome")?;
            if !timed.insert((user, id)) {
                return Err("a command remembered twice");
            }
            sum.add(&member(issued, user, id, outcome));
            *per_user.entry(user).or_default() += 1;
        }
        if timed.len() != w.outcomes.len() {
            return Err("an outcome without its command");
        }
        if per_user != w.per_user {
            return Err("per-user counts that do not match the commands");
        }
        Ok(RecentCommands { outcomes: w.outcomes, by_time: w.by_time, per_user, sum })
    }
}

/// What the sum covers of one command.
fn member(
    issued_at_ms: u64,
    user: UserId,
    id: Uuid,
    outcome: &Result<Receipt, ImError>,
) -> (u64, UserId, Uuid, &Result<Receipt, ImError>) {
    (issued_at_ms, user, id, outcome)
}

impl RecentCommands {
    /// Forgets commands issued before the window that ends at `now_ms`.
    pub(crate) fn expire(&mut self, now_ms: u64) {
        let horizon = now_ms.saturating_sub(limits::COMMAND_AGE_MAX_MS);
        while let Some(&(issued, user, id)) = self.by_time.first() {
            if issued >= horizon {
                break;
            }
            self.by_time.pop_first();
            if let Some(outcome) = self.outcomes.remove(&(user, id)) {
                self.sum.remove(&member(issued, user, id, &outcome));
            }
            if let Some(n) = self.per_user.get_mut(&user) {
                *n -= 1;
                if *n == 0 {
                    self.per_user.remove(&user);
                }
            }
        }
    }

    /// The first outcome of this command, if it was applied recently.
    pub(crate) fn outcome(&self, user: UserId, id: Uuid) -> Option<&Result<Receipt, ImError>> {
        self.outcomes.get(&(user, id))
    }

    /// Whether `user` may have another command remembered.
    pub(crate) fn has_room(&self, user: UserId) -> bool {
        self.per_user.get(&user).copied().unwrap_or(0) < limits::RECENT_COMMANDS_PER_USER_MAX
    }

    pub(crate) fn remember(
        &mut self,
        user: UserId,
        id: Uuid,
        issued_at_ms: u64,
        outcome: Result<Receipt, ImError>,
    ) {
        if self.outcomes.contains_key(&(user, id)) {
            return;
        }
        self.sum.add(&member(issued_at_ms, user, id, &outcome));
        self.outcomes.insert((user, id), outcome);
        self.by_time.insert((issued_at_ms, user, id));
        *self.per_user.entry(user).or_default() += 1;
    }

    /// The multiset hash of the window's contents.
    pub(crate) fn sum(&self) -> MultisetHash {
        self.sum
    }
}

/// Whether a command issued at `issued_at_ms` may still be applied at `now_ms`.
pub(crate) fn in_window(issued_at_ms: u64, now_ms: u64) -> bool {
    issued_at_ms >= now_ms.saturating_sub(limits::COMMAND_AGE_MAX_MS)
        && issued_at_ms <= now_ms.saturating_add(limits::COMMAND_CLOCK_SKEW_MAX_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im::protocol::RoomId;

    fn appended(seq: u64) -> Result<Receipt, ImError> {
        Ok(Receipt::Appended { room: RoomId::Group("r".into()), seq })
    }

    #[test]
    fn the_sum_tracks_the_window_and_survives_a_snapshot() {
        let (ann, bob) = (UserId([1; 32]), UserId([2; 32]));
        let mut recent = RecentCommands::default();
        recent.remember(ann, Uuid::from_u128(1), 1_000, appended(1));
        let one = recent.sum();
        recent.remember(bob, Uuid::from_u128(2), 2_000, Err(ImError::NotMember));
        recent.remember(ann, Uuid::from_u128(1), 2_500, appended(9));
        assert_ne!(recent.sum(), one);
        assert_eq!(recent.outcome(ann, Uuid::from_u128(1)), Some(&appended(1)));

        let bytes = postcard::to_allocvec(&recent).unwrap();
        let decoded: RecentCommands = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, recent, "decoding rebuilds the sum");
        let mut miscounted = recent.clone();
        miscounted.per_user.insert(ann, 5);
        let bytes = postcard::to_allocvec(&miscounted).unwrap();
        assert!(postcard::from_bytes::<RecentCommands>(&bytes).is_err());
        let mut untimed = recent.clone();
        untimed.by_time.pop_first();
        let bytes = postcard::to_allocvec(&untimed).unwrap();
        assert!(postcard::from_bytes::<RecentCommands>(&bytes).is_err());
        let mut twice = recent.clone();
        twice.by_time.insert((7, ann, Uuid::from_u128(1)));
        let bytes = postcard::to_allocvec(&twice).unwrap();
        assert!(postcard::from_bytes::<RecentCommands>(&bytes).is_err());

        // Ann's command leaves the window first; the sum is then bob's alone.
        recent.expire(limits::COMMAND_AGE_MAX_MS + 1_500);
        assert_eq!(recent.outcome(ann, Uuid::from_u128(1)), None);
        let mut bob_only = RecentCommands::default();
        bob_only.remember(bob, Uuid::from_u128(2), 2_000, Err(ImError::NotMember));
        assert_eq!(recent.sum(), bob_only.sum());
        assert_ne!(bob_only.sum(), MultisetHash::default());
        recent.expire(limits::COMMAND_AGE_MAX_MS + 2_500);
        assert_eq!(recent.sum(), MultisetHash::default());
    }
}
