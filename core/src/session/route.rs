//! Where a client sends its next attempt, and how long it waits first: the
//! one fail-over rule every client follows (the real one, the simulated
//! ones, and the harness's clients of the bare Raft node).
//!
//! - a leader hint the client can follow (a replica on its list) goes
//!   there; a hint it cannot follow (a replica it does not know, such as
//!   one that was replaced) or no hint at all moves to the next replica:
//!   staying put had every simulated client ask a removed replica forever
//!   (madsim seed 61048, 5 voters);
//! - "not yet" stays, until [`SessionConfig::misses_before_fail_over`] of
//!   them in a row: a replica that keeps saying "not yet" may be cut off,
//!   or removed and still running with its forwards refused;
//! - no answer in time, or a broken connection, moves to the next replica.
//!
//! Every wait is a backoff, doubling per setback, drawn between half of it
//! and all of it from the caller's seeded RNG so a crowd of clients does
//! not retry in step.

use super::SessionConfig;
use crate::ids::NodeId;
use crate::rng::SeededRng;
use std::time::Duration;

/// Why an attempt did not end its call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setback {
    /// The replica cannot order commands; it named the leader it knows, if any.
    NotLeader(Option<NodeId>),
    /// The replica said "not yet" (busy, no leader yet, outcome unknown).
    NotYet,
    /// No answer in time, a broken connection, or an answer that made no sense.
    Failed,
    /// The replica limits this user's rate: ask it again after this long.
    Wait(Duration),
}

/// A client's list of replicas and where it is in it.
#[derive(Clone, Debug)]
pub struct Route {
    targets: Vec<Option<NodeId>>,
    current: usize,
    misses: u32,
    backoff: Duration,
    config: SessionConfig,
}

impl Route {
    /// A route over `targets` (each with its Raft id where the client knows
    /// it, so hints can be followed), starting at `first`.
    pub fn new(targets: Vec<Option<NodeId>>, first: usize, config: SessionConfig) -> Route {
        assert!(!targets.is_empty(), "a route needs at least one replica");
        Route {
            current: first % targets.len(),
            targets,
            misses: 0,
            backoff: config.backoff_min,
            config,
        }
    }

    /// The replica (index in the list) the next attempt goes to.
    pub fn target(&self) -> usize {
        self.current
    }

    /// Replaces the list; the route stays at `current` (modulo its length).
    pub fn set_targets(&mut self, targets: Vec<Option<NodeId>>, current: usize) {
        assert!(!targets.is_empty(), "a route needs at least one replica");
        self.current = current % targets.len();
        self.targets = targets;
    }

    /// A new call starts from the shortest backoff.
    pub fn restart(&mut self) {
        self.backoff = self.config.backoff_min;
        self.misses = 0;
    }

    /// Moves after `setback` and returns how long to wait before the next
    /// attempt.
    pub fn after(&mut self, setback: Setback, rng: &mut SeededRng) -> Duration {
        let jitter = rng.next_u64();
        if let Setback::Wait(wait) = setback {
            // The same replica: going elsewhere to dodge a rate limit would
            // only spread the flood.
            return wait;
        }
        let to = match setback {
            Setback::NotLeader(Some(leader)) => {
                self.targets.iter().position(|t| *t == Some(leader))
            }
            Setback::NotLeader(None) | Setback::Failed => None,
            Setback::Wait(_) => unreachable!("answered above"),
            Setback::NotYet => {
                self.misses += 1;
                (self.misses < self.config.misses_before_fail_over).then_some(self.current)
            }
        };
        let to = to.unwrap_or((self.current + 1) % self.targets.len());
        if to != self.current {
            (self.current, self.misses) = (to, 0);
        }
        let micros = u64::try_from(self.backoff.as_micros()).unwrap_or(u64::MAX).max(2);
        self.backoff = (self.backoff * 2).min(self.config.backoff_max);
        Duration::from_micros(micros / 2 + jitter % (micros / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Route {
        let targets = vec![Some(NodeId(1)), Some(NodeId(2)), None];
        Route::new(targets, 0, SessionConfig::default())
    }

    #[test]
    fn hints_on_the_list_are_followed_and_others_move_on() {
        let mut rng = SeededRng::new(1);
        let mut r = route();
        r.after(Setback::NotLeader(Some(NodeId(2))), &mut rng);
        assert_eq!(r.target(), 1);
        r.after(Setback::NotLeader(Some(NodeId(9))), &mut rng);
        assert_eq!(r.target(), 2, "a replica off the list is not followed");
        r.after(Setback::NotLeader(None), &mut rng);
        assert_eq!(r.target(), 0);
        r.after(Setback::Failed, &mut rng);
        assert_eq!(r.target(), 1);
    }

    #[test]
    fn not_yet_stays_until_the_misses_run_out() {
        let mut rng = SeededRng::new(1);
        let mut r = route();
        let misses = SessionConfig::default().misses_before_fail_over;
        for _ in 1..misses {
            r.after(Setback::NotYet, &mut rng);
            assert_eq!(r.target(), 0);
        }
        r.after(Setback::NotYet, &mut rng);
        assert_eq!(r.target(), 1);
        r.after(Setback::NotYet, &mut rng);
        assert_eq!(r.target(), 1, "misses count again at the new replica");
    }

    #[test]
    fn waits_double_within_bounds_and_restart_from_the_shortest() {
        let mut rng = SeededRng::new(7);
        let mut r = route();
        let config = SessionConfig::default();
        let waits: Vec<Duration> = (0..12).map(|_| r.after(Setback::Failed, &mut rng)).collect();
        assert!(waits[0] >= config.backoff_min / 2 && waits[0] <= config.backoff_min);
        assert!(waits.iter().all(|w| *w <= config.backoff_max));
        assert!(waits[11] >= config.backoff_max / 2, "the backoff grew to its cap");
        r.restart();
        assert!(r.after(Setback::Failed, &mut rng) <= config.backoff_min);
    }
}
