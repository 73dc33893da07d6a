//! Time as a value. The core never reads a clock: every entry point takes the
//! current [`Instant`] from its driver, which may be real time, simulated time,
//! or a drifting clock in a fault-injection run.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A monotonic point in time, in microseconds since an origin the driver picks.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Instant(u64);

impl Instant {
    /// The driver's origin.
    pub const ZERO: Instant = Instant(0);

    /// An instant `micros` after the origin.
    pub const fn from_micros(micros: u64) -> Instant {
        Instant(micros)
    }

    /// An instant `millis` after the origin.
    pub const fn from_millis(millis: u64) -> Instant {
        Instant(millis.saturating_mul(1000))
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

/// A driver's clock: the core's time as a function of the time its runtime
/// says has elapsed since the clock started. The real driver starts it at
/// the wall clock's reading (so the leader's stamps on entries are wall
/// time) and it then moves only with the monotonic clock; the simulator
/// starts it at the simulated time since the world began and runs it fast
/// or slow by a drawn skew. Both drivers map times the same way, here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverClock {
    base_micros: u64,
    skew_ppm: i64,
}

impl DriverClock {
    /// A clock that reads `base_micros` when started and gains `skew_ppm`
    /// microseconds per second (negative: loses).
    pub fn new(base_micros: u64, skew_ppm: i64) -> DriverClock {
        assert!(
            skew_ppm.abs() < 1_000_000,
            "a clock skew of {skew_ppm} ppm stops or reverses time"
        );
        DriverClock { base_micros, skew_ppm }
    }

    /// What the clock reads `elapsed` after it started.
    pub fn at(&self, elapsed: Duration) -> Instant {
        let elapsed = i128::try_from(elapsed.as_micros()).unwrap_or(i128::MAX / 2);
        let skewed = elapsed + elapsed * i128::from(self.skew_ppm) / 1_000_000;
        let skewed = u64::try_from(skewed.max(0)).unwrap_or(u64::MAX);
        Instant(self.base_micros.saturating_add(skewed))
    }

    /// How long after it started the clock reads `at` (zero for earlier times).
    pub fn elapsed_at(&self, at: Instant) -> Duration {
        let local = i128::from(at.0.saturating_sub(self.base_micros));
        let real = local * 1_000_000 / (1_000_000 + i128::from(self.skew_ppm));
        Duration::from_micros(u64::try_from(real.max(0)).unwrap_or(u64::MAX))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(micros))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_sub(micros))
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_clocks_map_both_ways() {
        for skew in [-999, -1, 0, 1, 999, 500_000] {
            let clock = DriverClock::new(7_000_000, skew);
            assert_eq!(clock.at(Duration::ZERO), Instant(7_000_000));
            for ms in [1u64, 10, 1000, 3_600_000] {
                let at = clock.at(Duration::from_millis(ms));
                let back = clock.elapsed_at(at);
                // The inverse lands within a microsecond of where it started.
                assert!(back.as_micros().abs_diff(u128::from(ms) * 1000) <= 1, "{skew} {ms}");
                assert!(clock.at(back) <= at);
            }
            assert_eq!(clock.elapsed_at(Instant(5)), Duration::ZERO);
        }
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(5);
        assert_eq!((t + Duration::from_millis(1)).as_micros(), 6_000);
        assert_eq!((t - Duration::from_secs(1)), Instant::ZERO);
        assert_eq!(t.saturating_since(Instant::from_millis(9)), Duration::ZERO);
        assert_eq!(
            Instant::from_micros(u64::MAX) + Duration::from_secs(1),
            Instant::from_micros(u64::MAX)
        );
    }
}
