//! What the cluster runs at each replica: the bare Raft node, for the list
//! workload that tests Raft alone, or the replica service around it
//! ([`super::ServiceHost`]), so chat runs through the rules production
//! runs. The cluster only moves what a host says and reports what
//! happened, as a driver does.

use super::SimMachine;
use crate::ids::{LogIndex, NodeId, PersistId, ProposalId, Term};
use crate::raft::SubmitError;
use crate::raft::{Input, Membership, MembershipChange, Node, NodeOutput, Output, Role};
use crate::testing::network::{Channel, Packet};
use crate::time::Instant;
use bytes::Bytes;

/// What a host is started with.
#[derive(Clone, Copy, Debug)]
pub struct HostContext<'a> {
    /// Which incarnation of the replica this is (bumped by every restart).
    pub incarnation: u64,
    /// Every replica of the harness: the operator's list.
    pub replicas: &'a [NodeId],
    /// Test-only rule breakers.
    #[cfg(feature = "bug-switches")]
    pub bugs: crate::bugs::BugSwitches,
}

/// What a host asks of the cluster, or shows it.
#[derive(Debug)]
pub enum HostOutput<E> {
    /// Send `bytes` to replica `to` on `channel` (best effort).
    Send {
        /// The replica.
        to: NodeId,
        /// The protocol.
        channel: Channel,
        /// The frame.
        bytes: Bytes,
    },
    /// Send `bytes` on `channel` to every other replica (gossip).
    Publish {
        /// The protocol.
        channel: Channel,
        /// The message.
        bytes: Bytes,
    },
    /// Append and fsync a batch, then report it persisted.
    Persist {
        /// The batch id.
        id: PersistId,
        /// Start a new segment first.
        new_segment: bool,
        /// The batch.
        bytes: Bytes,
    },
    /// The replica stopped for good.
    Halted {
        /// Why.
        reason: String,
    },
    /// Something workloads consume, and what it tells the checkers.
    Event {
        /// The output.
        event: E,
        /// What the checkers learn from it.
        fact: Option<Fact>,
    },
}

/// What the checkers learn from an output.
#[derive(Clone, Debug)]
pub enum Fact {
    /// An entry was applied.
    Applied {
        /// Its index.
        index: LogIndex,
        /// Its term.
        term: Term,
        /// The command's position within the entry.
        position: u32,
    },
    /// The configuration changed.
    MembershipChanged(Membership),
    /// The replica became leader.
    BecameLeader(Term),
}

/// A replica as the cluster runs it.
pub trait Host: Sized {
    /// The replicated state machine.
    type Machine: SimMachine<Host = Self>;
    /// What workloads consume.
    type Event: std::fmt::Debug;

    /// Wraps a started node.
    fn start(node: Node<Self::Machine>, now: Instant, context: HostContext<'_>) -> Self;
    /// The Raft node (read-only: checkers, convergence).
    fn node(&self) -> &Node<Self::Machine>;
    /// A frame arrived.
    fn receive(&mut self, now: Instant, packet: Packet);
    /// Persist batches up to `up_to` are durable.
    fn persisted(&mut self, now: Instant, up_to: PersistId);
    /// A persist batch could not be made durable.
    fn persist_failed(&mut self, now: Instant, id: PersistId, reason: String);
    /// Time advanced to `now`; call when [`Self::poll_timeout`] is due.
    fn handle_timeout(&mut self, now: Instant);
    /// When [`Self::handle_timeout`] is next due.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next output.
    fn poll_output(&mut self) -> Option<HostOutput<Self::Event>>;
    /// An operator's membership change, made in-process.
    fn change_membership(
        &mut self,
        now: Instant,
        change: &MembershipChange,
    ) -> Result<ProposalId, SubmitError>;
    /// An operator asks the leader to hand leadership to `to`.
    fn transfer_leadership(&mut self, now: Instant, to: NodeId);
}

impl<S: SimMachine<Host = Node<S>>> Host for Node<S> {
    type Machine = S;
    type Event = NodeOutput<S>;

    fn start(node: Node<S>, _now: Instant, _context: HostContext<'_>) -> Self {
        node
    }

    fn node(&self) -> &Node<S> {
        self
    }

    fn receive(&mut self, now: Instant, packet: Packet) {
        if packet.channel == Channel::Raft {
            self.handle_input(now, Input::Received { from: packet.from, bytes: packet.bytes });
        }
    }

    fn persisted(&mut self, now: Instant, up_to: PersistId) {
        self.handle_input(now, Input::Persisted { up_to });
    }

    fn persist_failed(&mut self, now: Instant, id: PersistId, reason: String) {
        self.handle_input(now, Input::PersistFailed { id, reason });
    }

    fn handle_timeout(&mut self, now: Instant) {
        Node::handle_timeout(self, now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Node::poll_timeout(self)
    }

    fn poll_output(&mut self) -> Option<HostOutput<NodeOutput<S>>> {
        Some(match Node::poll_output(self)? {
            Output::Send { to, frame } => {
                HostOutput::Send { to, channel: Channel::Raft, bytes: frame }
            }
            Output::Persist { id, new_segment, bytes } => {
                HostOutput::Persist { id, new_segment, bytes }
            }
            Output::Halted { reason } => HostOutput::Halted { reason },
            event => {
                let fact = match &event {
                    Output::Applied { index, term, position, .. } => {
                        Some(Fact::Applied { index: *index, term: *term, position: *position })
                    }
                    Output::MembershipChanged { membership, .. } => {
                        Some(Fact::MembershipChanged(membership.clone()))
                    }
                    Output::RoleChanged { role: Role::Leader, term, .. } => {
                        Some(Fact::BecameLeader(*term))
                    }
                    _ => None,
                };
                HostOutput::Event { event, fact }
            }
        })
    }

    fn change_membership(
        &mut self,
        now: Instant,
        change: &MembershipChange,
    ) -> Result<ProposalId, SubmitError> {
        Node::change_membership(self, now, change)
    }

    fn transfer_leadership(&mut self, now: Instant, to: NodeId) {
        Node::transfer_leadership(self, now, to);
    }
}
