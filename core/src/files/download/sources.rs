//! The sources a download may ask, and how far each is trusted right now:
//! a source that fails, times out or sends bad data is left alone for a
//! while (doubling each time in a row), and dropped after too many
//! failures in a row.

use crate::limits::{
    DOWNLOAD_REQUESTS_PER_SOURCE_MAX, DOWNLOAD_SOURCES_MAX, SOURCE_BACKOFF_MS_MAX,
    SOURCE_BACKOFF_MS_MIN, SOURCE_FAILURES_MAX,
};
use crate::time::Instant;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What the download knows of one source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SourceState {
    /// Requests to it not yet answered.
    pub(crate) in_flight: usize,
    /// Failures since its last good answer.
    pub(crate) failures_in_row: u32,
    /// Not asked again before this.
    pub(crate) benched_until: Option<Instant>,
    /// Groups it delivered that verified.
    pub(crate) groups_delivered: u64,
}

/// The sources of one download, ordered, so choices are deterministic.
#[derive(Clone, Debug)]
pub(crate) struct Sources<S> {
    by_id: BTreeMap<S, SourceState>,
    /// Sources dropped after too many failures: not taken back if offered
    /// again, so that a broken source cannot be cycled through forever.
    dropped: BTreeMap<S, u32>,
    /// Sources that refused the file: not taken back either.
    refused: BTreeSet<S>,
}

/// What happened to a source after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Benched until the given time.
    Benched(Instant),
    /// Failed too often in a row: no longer asked.
    Dropped,
}

impl<S: Ord + Clone> Sources<S> {
    pub(crate) fn new() -> Sources<S> {
        Sources { by_id: BTreeMap::new(), dropped: BTreeMap::new(), refused: BTreeSet::new() }
    }

    /// Adds a source; false when it is known, was dropped, or the table is
    /// full.
    pub(crate) fn add(&mut self, source: S) -> bool {
        if self.by_id.len() >= DOWNLOAD_SOURCES_MAX
            || self.by_id.contains_key(&source)
            || self.dropped.contains_key(&source)
            || self.refused.contains(&source)
        {
            return false;
        }
        self.by_id.insert(source, SourceState::default());
        true
    }

    pub(crate) fn remove(&mut self, source: &S) -> Option<SourceState> {
        self.by_id.remove(source)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub(crate) fn get_mut(&mut self, source: &S) -> Option<&mut SourceState> {
        self.by_id.get_mut(source)
    }

    pub(crate) fn dropped(&self) -> usize {
        self.dropped.len()
    }

    /// Sources that refused the file.
    pub(crate) fn refusals(&self) -> usize {
        self.refused.len()
    }

    /// `source` will not serve the file (it says the downloader may not
    /// fetch it): it is dropped at once, whatever its record.
    pub(crate) fn refused(&mut self, source: &S) -> Option<AfterFailure> {
        self.by_id.remove(source)?;
        self.refused.insert(source.clone());
        Some(AfterFailure::Dropped)
    }

    /// The source to ask next at `now`: not benched, below its own bound,
    /// with the fewest requests in flight, then the fewest failures.
    pub(crate) fn pick(&self, now: Instant) -> Option<S> {
        self.by_id
            .iter()
            .filter(|(_, s)| s.benched_until.is_none_or(|t| t <= now))
            .filter(|(_, s)| s.in_flight < DOWNLOAD_REQUESTS_PER_SOURCE_MAX)
            .min_by_key(|(_, s)| (s.in_flight, s.failures_in_row))
            .map(|(id, _)| id.clone())
    }

    /// Lets sources whose bench time has passed be asked again.
    pub(crate) fn unbench(&mut self, now: Instant) {
        for state in self.by_id.values_mut() {
            state.benched_until = state.benched_until.filter(|t| *t > now);
        }
    }

    /// The earliest time a benched source may be asked again (always after
    /// the last [`Sources::unbench`]).
    pub(crate) fn next_unbench(&self) -> Option<Instant> {
        self.by_id.values().filter_map(|s| s.benched_until).min()
    }

    /// Records a good answer from `source`.
    pub(crate) fn succeeded(&mut self, source: &S, groups: u64) {
        if let Some(s) = self.by_id.get_mut(source) {
            s.failures_in_row = 0;
            s.benched_until = None;
            s.groups_delivered += groups;
        }
    }

    /// Records a failure of `source` at `now` (it stays known only while
    /// it has failed fewer than [`SOURCE_FAILURES_MAX`] times in a row).
    pub(crate) fn failed(&mut self, source: &S, now: Instant) -> Option<AfterFailure> {
        let state = self.by_id.get_mut(source)?;
        state.failures_in_row += 1;
        if state.failures_in_row >= SOURCE_FAILURES_MAX {
            let failures = state.failures_in_row;
            self.by_id.remove(source);
            self.dropped.insert(source.clone(), failures);
            return Some(AfterFailure::Dropped);
        }
        let doublings = (state.failures_in_row - 1).min(20);
        let backoff_ms = (SOURCE_BACKOFF_MS_MIN << doublings).min(SOURCE_BACKOFF_MS_MAX);
        let until = now + Duration::from_millis(backoff_ms);
        state.benched_until = Some(until);
        Some(AfterFailure::Benched(until))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_doubling_then_drop_the_source() {
        let mut sources = Sources::new();
        assert!(sources.add(1u8));
        assert!(sources.add(2u8));
        assert!(!sources.add(1u8));
        let t0 = Instant::from_millis(1000);
        assert_eq!(sources.pick(t0), Some(1));
        let first = sources.failed(&1, t0);
        assert_eq!(
            first,
            Some(AfterFailure::Benched(Instant::from_millis(1000 + SOURCE_BACKOFF_MS_MIN)))
        );
        assert_eq!(sources.pick(t0), Some(2));
        assert_eq!(
            sources.next_unbench(),
            Some(Instant::from_millis(1000 + SOURCE_BACKOFF_MS_MIN))
        );
        let second = sources.failed(&1, t0);
        assert_eq!(
            second,
            Some(AfterFailure::Benched(Instant::from_millis(1000 + 2 * SOURCE_BACKOFF_MS_MIN)))
        );
        for _ in 2..SOURCE_FAILURES_MAX - 1 {
            assert!(
                matches!(sources.failed(&1, t0), Some(AfterFailure::Benched(t)) if t <= t0 + Duration::from_millis(SOURCE_BACKOFF_MS_MAX))
            );
        }
        assert_eq!(sources.failed(&1, t0), Some(AfterFailure::Dropped));
        assert!(!sources.add(1), "a dropped source is not taken back");
        assert_eq!(sources.dropped(), 1);
        sources.succeeded(&2, 3);
        assert_eq!(sources.pick(t0), Some(2));
    }
}
