//! Replicated rates: how often one user (one key: a key is what a
//! connection authenticates) may register or rename, create rooms and
//! make new requests, on the replicated clock, so that every replica refuses the
//! same command the same way. A refusal is the command's outcome, retried
//! commands get it again, and a new command after the wait it names goes
//! through. Buckets exist only for users who used them: at most three per
//! registered user.

use crate::im::identity::UserId;
use crate::im::protocol::ImError;
use crate::limits;
use crate::rate::{Rate, TokenBucket};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a replicated rate limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum RateKind {
    /// `CreateRoom`.
    RoomCreation,
    /// A new contact or message request.
    Request,
    /// `Register` (a registration or a rename).
    Registration,
}

impl RateKind {
    fn rate(self) -> Rate {
        match self {
            RateKind::RoomCreation => limits::ROOM_CREATION_RATE,
            RateKind::Request => limits::REQUEST_RATE,
            RateKind::Registration => limits::REGISTRATION_RATE,
        }
    }

    fn what(self) -> &'static str {
        match self {
            RateKind::RoomCreation => "room creations",
            RateKind::Request => "new requests",
            RateKind::Registration => "registrations and renames",
        }
    }
}

/// Every user's replicated rate buckets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Rates {
    buckets: BTreeMap<(UserId, RateKind), TokenBucket>,
}

impl Rates {
    /// Takes one of `user`'s tokens for `kind` at `now_ms`, or refuses
    /// with the wait.
    pub(crate) fn take(
        &mut self,
        user: UserId,
        kind: RateKind,
        now_ms: u64,
    ) -> Result<(), ImError> {
        let rate = kind.rate();
        let bucket =
            self.buckets.entry((user, kind)).or_insert_with(|| TokenBucket::full(rate, now_ms));
        bucket.take(rate, now_ms).map_err(|retry_after_ms| ImError::RateLimited {
            what: kind.what().into(),
            retry_after_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_and_kind_has_its_own_bucket() {
        let mut rates = Rates::default();
        let (ann, bob) = (UserId([1; 32]), UserId([2; 32]));
        for _ in 0..limits::ROOM_CREATION_RATE.burst {
            rates.take(ann, RateKind::RoomCreation, 0).unwrap();
        }
        let refused = rates.take(ann, RateKind::RoomCreation, 0);
        let wait = limits::ROOM_CREATION_RATE.interval_ms;
        let expected = ImError::RateLimited { what: "room creations".into(), retry_after_ms: wait };
        assert_eq!(refused, Err(expected));
        rates.take(bob, RateKind::RoomCreation, 0).unwrap();
        rates.take(ann, RateKind::Request, 0).unwrap();
        rates.take(ann, RateKind::RoomCreation, wait).unwrap();
    }
}
