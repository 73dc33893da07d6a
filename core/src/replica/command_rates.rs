//! How many commands each user may submit through this replica: a token
//! bucket per user ([`limits::COMMAND_RATE`]), checked before the
//! signature is verified, so a flood costs the replica almost nothing and
//! never reaches the log. A refused command is answered with when to try
//! again; the client resends the same bytes then, so a retry of a command
//! that was applied meanwhile still gets its first outcome.
//!
//! At most [`limits::RATE_BUCKETS_MAX`] users are remembered; the one
//! touched longest ago is forgotten first (its bucket starts full again,
//! which a user with a recent burst cannot bring about without the other
//! users of the whole bound being more recent).

use crate::im::identity::UserId;
use crate::limits;
use crate::rate::{Rate, TokenBucket};
use std::collections::{BTreeMap, BTreeSet};

/// Every user's bucket at this replica.
#[derive(Debug, Default)]
pub(crate) struct CommandRates {
    buckets: BTreeMap<UserId, (TokenBucket, u64)>,
    /// `(touched_ms, user)`, oldest first.
    touched: BTreeSet<(u64, UserId)>,
}

impl CommandRates {
    /// Takes one of `user`'s tokens at `now_ms`, or says how long until
    /// one is there (ms).
    pub(crate) fn take(&mut self, user: UserId, now_ms: u64) -> Result<(), u64> {
        self.take_at(limits::COMMAND_RATE, user, now_ms)
    }

    fn take_at(&mut self, rate: Rate, user: UserId, now_ms: u64) -> Result<(), u64> {
        let (bucket, touched_ms) =
            self.buckets.entry(user).or_insert_with(|| (TokenBucket::full(rate, now_ms), now_ms));
        let taken = bucket.take(rate, now_ms);
        self.touched.remove(&(*touched_ms, user));
        *touched_ms = now_ms;
        self.touched.insert((now_ms, user));
        while self.buckets.len() > limits::RATE_BUCKETS_MAX {
            let (_, oldest) = self.touched.pop_first().expect("one entry per bucket");
            self.buckets.remove(&oldest);
        }
        debug_assert_eq!(self.buckets.len(), self.touched.len());
        taken
    }

    /// Users remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate { burst: 2, interval_ms: 100 };

    #[test]
    fn each_user_has_a_burst_then_waits() {
        let mut r = CommandRates::default();
        let (ann, bob) = (UserId([1; 32]), UserId([2; 32]));
        assert_eq!(r.take_at(RATE, ann, 0), Ok(()));
        assert_eq!(r.take_at(RATE, ann, 0), Ok(()));
        assert_eq!(r.take_at(RATE, ann, 0), Err(100));
        assert_eq!(r.take_at(RATE, bob, 0), Ok(()));
        assert_eq!(r.take_at(RATE, ann, 100), Ok(()));
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn the_user_touched_longest_ago_is_forgotten_first() {
        let mut r = CommandRates::default();
        for n in 0..limits::RATE_BUCKETS_MAX as u64 + 5 {
            let mut key = [0; 32];
            key[..8].copy_from_slice(&n.to_be_bytes());
            let _ = r.take_at(RATE, UserId(key), n);
        }
        assert_eq!(r.len(), limits::RATE_BUCKETS_MAX);
        assert!(!r.buckets.contains_key(&UserId([0; 32])));
        assert_eq!(r.touched.first().map(|(t, _)| *t), Some(5));
    }
}
