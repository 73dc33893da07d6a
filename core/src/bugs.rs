//! Test-only switches that each break one rule on purpose, so that tests can
//! show the checkers catch the broken rule. Compiled only with the
//! `bug-switches` feature; never in a release build of the binary.

/// Which rules to break. All off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BugSwitches {
    /// Send `persisted_messages` (votes, append acknowledgements) before the
    /// driver has reported the batch durable.
    pub ack_before_persist: bool,
    /// Serve reads from the local state without a read index (stale reads).
    pub serve_reads_locally: bool,
    /// Apply a retried IM command again instead of returning its first
    /// outcome (duplicate messages).
    pub skip_idempotency: bool,
    /// Keep talking to replicas removed from the configuration (votes,
    /// acknowledgements, entries) instead of cutting them off.
    pub talk_to_removed: bool,
    /// Leave out of live deliveries every entry whose sequence number is a
    /// multiple of 16 (the subscriber's cursor moves past it all the same).
    pub skip_live_entry: bool,
    /// Resume a (version 2) live subscription's changes from the moment it
    /// subscribes instead of from its change cursor: changes made while the
    /// subscriber was away are lost.
    pub ignore_change_cursor: bool,
    /// Take a client's presence announcement without passing it on to the
    /// other replicas.
    pub skip_presence_gossip: bool,
    /// Simulated followers keep the greatest change number ever heard in a
    /// room instead of the last one their subscription named, so a lagging
    /// replica's set-back is lost (a client rule: the madsim follower reads
    /// it).
    pub keep_greatest_change_cursor: bool,
    /// Serve chunk groups from a stored copy without checking them against
    /// the root on the way out, so a copy rotted on disk is served as is (a
    /// blob-store rule: the simulated store reads it).
    pub serve_unchecked_copies: bool,
    /// Record this replica as holding a file (`HoldFile`) as soon as it
    /// starts fetching it, not once the copy is synced and checked.
    pub hold_before_stored: bool,
    /// Keep a deleted file message's reference to its content, so the
    /// deletion neither revokes access nor reclaims the storage.
    pub deletion_keeps_file_reference: bool,
    /// Release a file's content when any message referring to it is
    /// deleted, even while others still refer to it.
    pub release_on_any_delete: bool,
    /// Reclaim a copy on every release the replica applies, replayed ones
    /// included, even when the log as applied since refers to or holds the
    /// content again (a replica restarted behind its log).
    pub reclaim_on_replayed_release: bool,
    /// Keep serving live subscribers while naming a leader, however long
    /// ago it was heard from (a learner cut off keeps naming its old one).
    pub serve_while_naming_a_leader: bool,
    /// List the requests of users a user blocks among the requests it is
    /// shown, as if it blocked nobody.
    pub show_blocked_requests: bool,
}
