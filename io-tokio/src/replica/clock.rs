//! The real clock, turned into the core's `Instant`.
//!
//! The origin is the UNIX epoch, so the leader's stamps on entries are wall
//! time, but the clock only moves forward: it is the wall clock read once at
//! start-up plus the monotonic time elapsed since (the mapping is the
//! core's `DriverClock`, shared with the simulator).

use kith_core::time::{DriverClock, Instant};
use std::time::{SystemTime, UNIX_EPOCH};

/// The replica's clock.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    started: tokio::time::Instant,
    map: DriverClock,
}

impl Clock {
    /// Reads the wall clock once.
    pub fn start() -> Clock {
        let base_micros =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        Clock { started: tokio::time::Instant::now(), map: DriverClock::new(base_micros, 0) }
    }

    /// Now.
    pub fn now(&self) -> Instant {
        self.map.at(self.started.elapsed())
    }

    /// The tokio instant at which the clock reads `at`.
    pub fn deadline(&self, at: Instant) -> tokio::time::Instant {
        self.started + self.map.elapsed_at(at)
    }
}
