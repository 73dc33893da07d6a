//! A replica's configuration, validated once at construction.

use crate::ids::NodeId;
use std::time::Duration;

/// How one replica runs. Defaults suit a LAN; the simulator shrinks the tick.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// This replica's Raft id (non-zero).
    pub id: NodeId,
    /// Seed of the node's one random generator (election timeouts).
    pub seed: u64,
    /// Length of one Raft tick.
    pub tick_interval: Duration,
    /// Ticks without a leader before an election; the actual timeout is drawn
    /// from `[election_ticks, 2 * election_ticks)` by the seeded generator.
    pub election_ticks: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: usize,
    /// Applied entries beyond the last snapshot that trigger a new snapshot
    /// and log compaction.
    pub snapshot_threshold_entries: u64,
    /// Bytes of applied entries beyond the last snapshot that trigger one
    /// too, whichever comes first: a busy leader packs many commands into
    /// an entry, so a count of entries alone bounds neither the log held
    /// in memory (up to `ENTRY_BYTES_MAX` each) nor the replay after a
    /// restart nor the history a snapshot commits at once.
    pub snapshot_threshold_bytes: u64,
    /// Ticks a linearizable read may wait for its read index.
    pub read_timeout_ticks: u64,
    /// When non-zero, the node digests its state machine after applying
    /// every entry whose index is a multiple of this (for checkers that
    /// compare replicas at equal indexes without digesting at every step).
    pub digest_every_entries: u64,
    /// Test-only switches that break one rule on purpose.
    #[cfg(feature = "bug-switches")]
    pub bugs: crate::bugs::BugSwitches,
}

/// Whether the test-only switch `$switch` is on in `$holder.bugs`: always
/// false without the `bug-switches` feature, so release builds carry no
/// trace of it. One way to ask, wherever a rule can be broken on purpose.
macro_rules! bug_on {
    ($holder:expr, $switch:ident) => {{
        #[cfg(feature = "bug-switches")]
        let on = $holder.bugs.$switch;
        #[cfg(not(feature = "bug-switches"))]
        let on = false;
        on
    }};
}
pub(crate) use bug_on;

impl Config {
    /// A configuration with default timing for replica `id`.
    pub fn new(id: NodeId, seed: u64) -> Config {
        Config {
            id,
            seed,
            tick_interval: Duration::from_millis(50),
            election_ticks: 10,
            heartbeat_ticks: 2,
            snapshot_threshold_entries: 10_000,
            snapshot_threshold_bytes: crate::limits::SNAPSHOT_THRESHOLD_BYTES,
            read_timeout_ticks: 40,
            digest_every_entries: 0,
            #[cfg(feature = "bug-switches")]
            bugs: crate::bugs::BugSwitches::default(),
        }
    }

    /// Checks the values that raft-rs would otherwise reject with a panic.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id.get() == 0 {
            return Err(ConfigError::ZeroId);
        }
        if self.tick_interval.is_zero() {
            return Err(ConfigError::ZeroTick);
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return Err(ConfigError::Timing {
                election_ticks: self.election_ticks,
                heartbeat_ticks: self.heartbeat_ticks,
            });
        }
        if self.snapshot_threshold_entries == 0 || self.snapshot_threshold_bytes == 0 {
            return Err(ConfigError::ZeroSnapshotThreshold);
        }
        Ok(())
    }
}

/// Why a [`Config`] was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// Raft reserves id 0.
    #[error("node id must be non-zero")]
    ZeroId,
    /// A zero tick would never advance Raft time.
    #[error("tick interval must be non-zero")]
    ZeroTick,
    /// Elections must take longer than heartbeats.
    #[error(
        "election_ticks ({election_ticks}) must exceed heartbeat_ticks ({heartbeat_ticks}) > 0"
    )]
    Timing {
        /// The configured election ticks.
        election_ticks: usize,
        /// The configured heartbeat ticks.
        heartbeat_ticks: usize,
    },
    /// Compaction needs a positive threshold.
    #[error("snapshot threshold must be non-zero")]
    ZeroSnapshotThreshold,
}
