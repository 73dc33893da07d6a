//! Counters the node keeps about itself; drivers export them.

/// Monotonic counters for one node incarnation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeMetrics {
    /// Peer frames handed in.
    pub frames_received: u64,
    /// Frames dropped because they did not decode.
    pub frames_malformed: u64,
    /// Frames dropped for speaking another protocol version.
    pub frames_wrong_version: u64,
    /// Frames dropped for breaking a rule (bad chunk, wrong sender or receiver).
    pub frames_invalid: u64,
    /// Frames raft-rs refused to step.
    pub frames_refused: u64,
    /// Outgoing frames dropped because their addressee was removed from
    /// the configuration.
    pub frames_to_removed: u64,
    /// Persist batches emitted.
    pub persists: u64,
    /// Commands applied.
    pub commands_applied: u64,
    /// Committed entries whose payload did not decode (never from honest peers).
    pub entries_malformed: u64,
    /// Snapshots taken locally.
    pub snapshots_taken: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Snapshot messages sent.
    pub snapshots_sent: u64,
    /// Times the known leader changed.
    pub leader_changes: u64,
}
