//! Replay protection and idempotency for commands: a command older than the
//! replay window is refused; within it, a command id already applied gets
//! its first outcome again instead of running twice. Memory is bounded by
//! the window and a per-user cap.

use crate::im::identity::UserId;
use crate::im::protocol::{ImError, Receipt};
use crate::limits;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecentCommands {
    outcomes: BTreeMap<(UserId, Uuid), Result<Receipt, ImError>>,
    by_time: BTreeSet<(u64, UserId, Uuid)>,
    per_user: BTreeMap<UserId, usize>,
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
            self.outcomes.remove(&(user, id));
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
        if self.outcomes.insert((user, id), outcome).is_none() {
            self.by_time.insert((issued_at_ms, user, id));
            *self.per_user.entry(user).or_default() += 1;
        }
    }
}

/// Whether a command issued at `issued_at_ms` may still be applied at `now_ms`.
pub(crate) fn in_window(issued_at_ms: u64, now_ms: u64) -> bool {
    issued_at_ms >= now_ms.saturating_sub(limits::COMMAND_AGE_MAX_MS)
        && issued_at_ms <= now_ms.saturating_add(limits::COMMAND_CLOCK_SKEW_MAX_MS)
}
