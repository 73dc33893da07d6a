//! A broken invariant, as every simulator and checker reports it.

use crate::time::Instant;
use std::fmt;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
    /// Simulated time.
    pub at: Instant,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated at {}: {}", self.invariant, self.at, self.detail)
    }
}

impl std::error::Error for Violation {}

impl Violation {
    /// A panic caught while simulating (raft-rs's own assertions included).
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Violation {
        let detail = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "non-string panic".to_string());
        Violation { invariant: "no panic", detail, at: Instant::ZERO }
    }
}
