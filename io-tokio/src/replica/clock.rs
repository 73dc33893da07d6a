//! The real clock, turned into the core's `Instant`.
//!
//! The origin is the UNIX epoch, so the leader's stamps on entries are wall
//! time, but the clock only moves forward: it is the wall clock read once at
//! start-up plus the monotonic time elapsed since.

use kith_core::time::Instant;
use std::time::{SystemTime, UNIX_EPOCH};

/// Monotonic time since the UNIX epoch.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    started: tokio::time::Instant,
    base_micros: u64,
}

impl Clock {
    /// Reads the wall clock once.
    pub fn start() -> Clock {
        let base_micros =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        Clock { started: tokio::time::Instant::now(), base_micros }
    }

    /// Now.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.base_micros + self.started.elapsed().as_micros() as u64)
    }

    /// The tokio instant at which this clock reads `at`.
    pub fn deadline(&self, at: Instant) -> tokio::time::Instant {
        let offset = at.as_micros().saturating_sub(self.base_micros);
        self.started + std::time::Duration::from_micros(offset)
    }
}
