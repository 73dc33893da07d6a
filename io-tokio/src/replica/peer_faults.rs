//! Faults peers commit, counted and logged at a bounded rate.
//!
//! A line per refused stream let one connection write 200 KB of log per
//! 2,000 stream opens. Here each fault is counted (the totals are metrics)
//! and logged once per window per kind and source, as a summary ("refused
//! 1,744 inbound requests from 12D3... in the last 10 s"), for at most
//! [`SOURCES_LOGGED_MAX`] sources a window; the rest are one line.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

/// How often the summaries are written.
pub const SUMMARY_WINDOW: Duration = Duration::from_secs(10);
/// Sources named per kind and window; beyond it, one line counts the rest.
pub const SOURCES_LOGGED_MAX: usize = 8;
/// Sources remembered per kind and window (a flood of fresh sources
/// is counted, not remembered).
const SOURCES_REMEMBERED_MAX: usize = 256;

/// What a peer did wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerFault {
    /// A connection refused by a connection budget.
    ConnectionRefused,
    /// An inbound request that failed (bad frame, read budget spent,
    /// timed out, unsupported).
    RequestFailed,
    /// A gossip message the service refused.
    InvalidGossip,
}

impl PeerFault {
    /// Every kind, for metrics.
    pub const ALL: [PeerFault; 3] =
        [PeerFault::ConnectionRefused, PeerFault::RequestFailed, PeerFault::InvalidGossip];

    fn describe(self) -> &'static str {
        match self {
            PeerFault::ConnectionRefused => "refused connections",
            PeerFault::RequestFailed => "failed inbound requests",
            PeerFault::InvalidGossip => "invalid gossip messages",
        }
    }

    /// The metric name.
    pub fn metric(self) -> &'static str {
        match self {
            PeerFault::ConnectionRefused => "kith_connections_refused_total",
            PeerFault::RequestFailed => "kith_inbound_requests_failed_total",
            PeerFault::InvalidGossip => "kith_gossip_refused_total",
        }
    }
}

#[derive(Debug, Default)]
struct Window {
    by_source: BTreeMap<String, u64>,
    /// Faults from sources not remembered.
    others: u64,
}

/// The counts since start, and this window's.
#[derive(Debug)]
pub struct PeerFaults {
    totals: BTreeMap<PeerFault, u64>,
    window: BTreeMap<PeerFault, Window>,
    window_started: Instant,
}

impl PeerFaults {
    /// Counts starting now.
    pub fn new(now: Instant) -> PeerFaults {
        PeerFaults { totals: BTreeMap::new(), window: BTreeMap::new(), window_started: now }
    }

    /// Counts one fault from `source` (a peer or an address).
    pub fn note(&mut self, fault: PeerFault, source: impl fmt::Display) {
        *self.totals.entry(fault).or_default() += 1;
        let window = self.window.entry(fault).or_default();
        let source = source.to_string();
        let room = window.by_source.len() < SOURCES_REMEMBERED_MAX;
        match window.by_source.get_mut(&source) {
            Some(count) => *count += 1,
            None if room => {
                window.by_source.insert(source, 1);
            }
            None => window.others += 1,
        }
    }

    /// All faults of `fault` since start.
    pub fn total(&self, fault: PeerFault) -> u64 {
        self.totals.get(&fault).copied().unwrap_or(0)
    }

    /// The window's summary lines, once it has run its length (then a new
    /// window starts).
    pub fn summaries(&mut self, now: Instant) -> Vec<String> {
        let elapsed = now.saturating_duration_since(self.window_started);
        if elapsed < SUMMARY_WINDOW {
            return Vec::new();
        }
        self.window_started = now;
        let secs = elapsed.as_secs();
        let mut lines = Vec::new();
        for (fault, window) in std::mem::take(&mut self.window) {
            let mut sources: Vec<(String, u64)> = window.by_source.into_iter().collect();
            sources.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let what = fault.describe();
            for (source, count) in sources.iter().take(SOURCES_LOGGED_MAX) {
                lines.push(format!("{count} {what} from {source} in the last {secs} s"));
            }
            let rest: u64 = sources.iter().skip(SOURCES_LOGGED_MAX).map(|(_, c)| c).sum::<u64>()
                + window.others;
            if rest > 0 {
                lines.push(format!("{rest} more {what} from other sources in the last {secs} s"));
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_line_per_source_and_window() {
        let t0 = Instant::now();
        let mut faults = PeerFaults::new(t0);
        for _ in 0..1744 {
            faults.note(PeerFault::RequestFailed, "12D3KooWpeer");
        }
        assert!(faults.summaries(t0 + Duration::from_secs(1)).is_empty(), "mid-window");
        let lines = faults.summaries(t0 + SUMMARY_WINDOW);
        assert_eq!(lines, ["1744 failed inbound requests from 12D3KooWpeer in the last 10 s"]);
        assert_eq!(faults.total(PeerFault::RequestFailed), 1744);
        assert!(faults.summaries(t0 + SUMMARY_WINDOW * 2).is_empty(), "nothing new");
    }

    #[test]
    fn many_sources_are_named_up_to_a_bound() {
        let t0 = Instant::now();
        let mut faults = PeerFaults::new(t0);
        for i in 0..1000 {
            faults.note(PeerFault::ConnectionRefused, format!("10.0.{}.{}", i / 256, i % 256));
        }
        let lines = faults.summaries(t0 + SUMMARY_WINDOW);
        assert_eq!(lines.len(), SOURCES_LOGGED_MAX + 1);
        assert!(lines[SOURCES_LOGGED_MAX].starts_with("992 more refused connections"));
    }
}
