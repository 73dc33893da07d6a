//! The typing guard: which typing notices a replica has taken, so that a
//! signed notice replayed later is refused.

use crate::im::identity::UserId;
use crate::im::protocol::RoomId;
use crate::im::typing::{TypingBody, TypingError, TYPING_TTL_MS};
use crate::limits;
use crate::time::Instant;
use std::collections::BTreeMap;

/// Remembers the newest notice taken per user and room, long enough that
/// a signed notice replayed later is refused: within the window by
/// [`TypingError::Repeated`], after it by [`TypingError::Lapsed`].
#[derive(Clone, Debug, Default)]
pub struct TypingGuard {
    newest: BTreeMap<(UserId, RoomId), u64>,
}

impl TypingGuard {
    /// Takes `body` from `user` at `now` if it is fresh and newer than the
    /// last one taken for its room.
    pub fn admit(
        &mut self,
        now: Instant,
        user: UserId,
        body: &TypingBody,
    ) -> Result<(), TypingError> {
        let now_ms = now.as_micros() / 1000;
        let issued_at_ms = body.issued_at_ms;
        if issued_at_ms.saturating_add(Self::window_ms()) < now_ms {
            return Err(TypingError::Lapsed { issued_at_ms, now_ms });
        }
        if issued_at_ms > now_ms.saturating_add(limits::TYPING_CLOCK_SKEW_MAX_MS) {
            return Err(TypingError::FromFuture { issued_at_ms, now_ms });
        }
        let key = (user, body.room.clone());
        if self.newest.get(&key).is_some_and(|newest| *newest >= issued_at_ms) {
            return Err(TypingError::Repeated);
        }
        if !self.newest.contains_key(&key) && self.newest.len() >= limits::TYPISTS_MAX {
            // Entries past the window refuse their own replays as lapsed.
            let oldest_kept = now_ms.saturating_sub(Self::window_ms());
            self.newest.retain(|_, issued| *issued >= oldest_kept);
            if self.newest.len() >= limits::TYPISTS_MAX {
                return Err(TypingError::Full);
            }
        }
        self.newest.insert(key, issued_at_ms);
        Ok(())
    }

    /// How old a notice may be: its life plus the clock skew allowed.
    fn window_ms() -> u64 {
        TYPING_TTL_MS + limits::TYPING_CLOCK_SKEW_MAX_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im::identity::Identity;

    #[test]
    fn the_guard_refuses_replays_lapsed_and_future_notices() {
        let user = Identity::from_secret([1; 32]).user();
        let room = RoomId::Group("r".into());
        let at = |ms: u64| TypingBody { room: room.clone(), active: true, issued_at_ms: ms };
        let now = Instant::from_micros(100_000 * 1000);
        let mut guard = TypingGuard::default();
        assert_eq!(guard.admit(now, user, &at(99_000)), Ok(()));
        assert_eq!(guard.admit(now, user, &at(99_000)), Err(TypingError::Repeated));
        assert_eq!(guard.admit(now, user, &at(98_000)), Err(TypingError::Repeated));
        assert_eq!(guard.admit(now, user, &at(99_500)), Ok(()));
        let old = 100_000 - TypingGuard::window_ms() - 1;
        assert!(matches!(guard.admit(now, user, &at(old)), Err(TypingError::Lapsed { .. })));
        let ahead = 100_000 + limits::TYPING_CLOCK_SKEW_MAX_MS + 1;
        assert!(matches!(guard.admit(now, user, &at(ahead)), Err(TypingError::FromFuture { .. })));
        let other = RoomId::Group("s".into());
        let body = TypingBody { room: other, active: false, issued_at_ms: 99_000 };
        assert_eq!(guard.admit(now, user, &body), Ok(()));
    }
}
