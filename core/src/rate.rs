//! Token buckets: how often one user (or one connection) may do a thing.
//! Pure arithmetic over a millisecond clock passed in, so the replicated
//! state can keep buckets on its replicated clock and a replica on its own.

use serde::{Deserialize, Serialize};

/// A rate: up to `burst` at once, then one every `interval_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Tokens a full bucket holds.
    pub burst: u32,
    /// Time to earn one token back (ms).
    pub interval_ms: u64,
}

/// Thousandths of a token, so slow rates refill smoothly in whole numbers.
const MILLI: u64 = 1000;

/// A bucket of tokens: full when new, one token per thing done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenBucket {
    /// Thousandths of a token held as of `at_ms`.
    level_milli: u64,
    /// When `level_milli` was last brought up to date (ms).
    at_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn full(rate: Rate, now_ms: u64) -> TokenBucket {
        TokenBucket { level_milli: u64::from(rate.burst) * MILLI, at_ms: now_ms }
    }

    /// Brings the level up to `now_ms` (a clock that went backwards earns
    /// nothing). Only the time the earned thousandths took is spent: the
    /// rest counts toward the next, so a bucket asked more often than it
    /// earns a thousandth still fills.
    fn refill(&mut self, rate: Rate, now_ms: u64) {
        let full = u64::from(rate.burst) * MILLI;
        let interval_ms = rate.interval_ms.max(1);
        let elapsed_ms = now_ms.saturating_sub(self.at_ms);
        let earned = elapsed_ms.saturating_mul(MILLI) / interval_ms;
        if self.level_milli.saturating_add(earned) >= full {
            self.level_milli = full;
            self.at_ms = self.at_ms.max(now_ms);
            return;
        }
        self.level_milli += earned;
        self.at_ms += earned.saturating_mul(interval_ms) / MILLI;
    }

    /// Takes one token at `now_ms`, or says how long until one is there.
    pub fn take(&mut self, rate: Rate, now_ms: u64) -> Result<(), u64> {
        self.refill(rate, now_ms);
        if self.level_milli >= MILLI {
            self.level_milli -= MILLI;
            return Ok(());
        }
        let missing = MILLI - self.level_milli;
        let needed_ms = missing.saturating_mul(rate.interval_ms.max(1)).div_ceil(MILLI);
        let accrued_ms = now_ms.saturating_sub(self.at_ms);
        Err(needed_ms.saturating_sub(accrued_ms).max(1))
    }

    /// Whether the bucket is full again at `now_ms` (so forgetting it
    /// changes nothing).
    pub fn is_full(&self, rate: Rate, now_ms: u64) -> bool {
        let mut later = *self;
        later.refill(rate, now_ms);
        later.level_milli == u64::from(rate.burst) * MILLI
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate { burst: 3, interval_ms: 1000 };

    #[test]
    fn a_burst_then_one_per_interval_with_the_wait_named() {
        let mut b = TokenBucket::full(RATE, 10_000);
        for _ in 0..3 {
            assert_eq!(b.take(RATE, 10_000), Ok(()));
        }
        assert_eq!(b.take(RATE, 10_000), Err(1000));
        assert_eq!(b.take(RATE, 10_400), Err(600), "the wait shrinks as time passes");
        assert_eq!(b.take(RATE, 11_000), Ok(()));
        assert_eq!(b.take(RATE, 11_001), Err(999));
        assert!(!b.is_full(RATE, 12_000));
        assert!(b.is_full(RATE, 14_000));
        // It never holds more than the burst, however long it rests.
        b = TokenBucket::full(RATE, 0);
        for _ in 0..3 {
            b.take(RATE, 1_000_000).unwrap();
        }
        assert!(b.take(RATE, 1_000_000).is_err());
    }

    #[test]
    fn a_clock_that_goes_back_earns_nothing_and_breaks_nothing() {
        let mut b = TokenBucket::full(RATE, 5000);
        for _ in 0..3 {
            b.take(RATE, 5000).unwrap();
        }
        assert_eq!(b.take(RATE, 1000), Err(1000));
        assert_eq!(b.take(RATE, 6000), Ok(()));
        // Asked every few ms, a slow bucket still fills at its rate.
        let minute = Rate { burst: 1, interval_ms: 60_000 };
        let mut b = TokenBucket::full(minute, 0);
        b.take(minute, 0).unwrap();
        let mut t = 0;
        while b.take(minute, t).is_err() {
            t += 7;
        }
        assert!((60_000..60_007).contains(&t), "refilled at {t} ms");
        let slow = Rate { burst: 1, interval_ms: u64::MAX };
        let mut b = TokenBucket::full(slow, 0);
        b.take(slow, 0).unwrap();
        assert!(b.take(slow, u64::MAX).is_err());
    }
}
