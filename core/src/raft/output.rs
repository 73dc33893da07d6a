//! Commands the node gives its driver.

use crate::ids::{LogIndex, NodeId, PersistId, ProposalId, ReadId, Term};
use bytes::Bytes;

/// The node's role in its Raft group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Probing whether it could win an election.
    PreCandidate,
    /// Running an election.
    Candidate,
    /// Leads the group.
    Leader,
}

/// What is known about a proposal that will not be reported as applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropOutcome {
    /// It never entered the committed log and never will: safe to retry.
    NotCommitted,
    /// It may or may not have been committed (e.g. it was covered by an
    /// installed snapshot): retry only with an idempotent command.
    Unknown,
}

/// Membership as of some log index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// Voters (incoming set while joint).
    pub voters: Vec<NodeId>,
    /// Learners.
    pub learners: Vec<NodeId>,
    /// Voters of the outgoing configuration; non-empty only while joint.
    pub voters_outgoing: Vec<NodeId>,
}

impl Membership {
    /// Whether the group is between two configurations.
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// Whether no configuration is known yet (a replica waiting to join).
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty() && self.learners.is_empty() && self.voters_outgoing.is_empty()
    }

    /// Every voter and learner, of either configuration.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(&self.learners).chain(&self.voters_outgoing).copied()
    }

    /// Whether `id` is a voter or learner in either configuration.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
            || self.learners.contains(&id)
            || self.voters_outgoing.contains(&id)
    }
}

/// One command for the driver.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Output<R, Q> {
    /// Send a frame to a replica. Delivery is best effort.
    Send {
        /// The receiver.
        to: NodeId,
        /// The encoded frame.
        frame: Bytes,
    },
    /// Append `bytes` to the durable log and fsync, then report
    /// `Input::Persisted`. Batches must become durable in `id` order.
    Persist {
        /// This batch.
        id: PersistId,
        /// Start a new segment with this batch; once it is durable every
        /// older segment may be deleted.
        new_segment: bool,
        /// The encoded batch (see `durable`).
        bytes: Bytes,
    },
    /// A committed command was applied. `proposal` is set only on the node
    /// that accepted the submission, so exactly one node replies.
    Applied {
        /// Log index of the entry.
        index: LogIndex,
        /// Term of the entry.
        term: Term,
        /// Position within the entry's batch.
        position: u32,
        /// The local submission this was, if any.
        proposal: Option<ProposalId>,
        /// What the state machine returned.
        response: R,
    },
    /// A submission accepted by this node will not be reported as applied.
    Dropped {
        /// The submission.
        proposal: ProposalId,
        /// What is known about it.
        outcome: DropOutcome,
    },
    /// A committed membership change was applied.
    MembershipChanged {
        /// Its log index.
        index: LogIndex,
        /// The local submission this was, if any.
        proposal: Option<ProposalId>,
        /// The membership from this index on.
        membership: Membership,
    },
    /// A linearizable read finished.
    ReadReady {
        /// The read.
        read: ReadId,
        /// The index it was served at.
        index: LogIndex,
        /// The state machine's answer.
        result: Q,
    },
    /// A linearizable read could not be confirmed in time; retry.
    ReadFailed {
        /// The read.
        read: ReadId,
    },
    /// Role, term or known leader changed.
    RoleChanged {
        /// The new role.
        role: Role,
        /// The current term.
        term: Term,
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// The node stopped for good (disk failure, or an unrecoverable snapshot).
    Halted {
        /// Why.
        reason: String,
    },
}
