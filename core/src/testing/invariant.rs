//! What an invariant checker sees, and the set of checkers a simulator runs.
//!
//! Both simulators (the in-memory harness here and the madsim driver in
//! `kith-io-sim`) report every replica step as an [`Observation`] to an
//! [`Invariants`] set. The checkers themselves live in `kith-sim-tests`
//! (`sim-tests/src/invariants/`, one file per invariant), and are handed to
//! a simulator when it is built, so the core only defines what can be
//! observed.

use super::file_observation::FileObservation;
use super::violation::Violation;
use crate::durable::{decode_batch_at, Record};
use crate::ids::{LogIndex, NodeId, Term};
use crate::im::history::HistoryError;
use crate::im::identity::UserId;
use crate::im::protocol::{EntryKind, ImError, ImQuery, QueryKind, QueryReply, RoomEntry, RoomId};
use crate::im::ImMachine;
use crate::raft::{Membership, Node, NodeStatus};
use crate::state_machine::{Digest, StateMachine};
use crate::time::Instant;
use crate::wire::PeerFrame;
use std::collections::BTreeSet;
use std::fmt;
use uuid::Uuid;

/// What a checker may read of a replica.
pub trait ReplicaView {
    /// The replica's id.
    fn id(&self) -> NodeId;
    /// Role, term, commit, applied, membership.
    fn status(&self) -> NodeStatus;
    /// The term of the entry at `index`, if the replica's log holds it.
    fn entry_term(&self, index: LogIndex) -> Option<Term>;
    /// The state digest at the replica's applied index (may be costly).
    fn digest(&self) -> Digest;
    /// A digest the replica took itself at a fixed index, if one is due.
    fn digest_checkpoint(&self) -> Option<(LogIndex, Digest)>;
}

impl<S: StateMachine> ReplicaView for Node<S> {
    fn id(&self) -> NodeId {
        Node::id(self)
    }
    fn status(&self) -> NodeStatus {
        Node::status(self)
    }
    fn entry_term(&self, index: LogIndex) -> Option<Term> {
        Node::entry_term(self, index)
    }
    fn digest(&self) -> Digest {
        Node::digest(self)
    }
    fn digest_checkpoint(&self) -> Option<(LogIndex, Digest)> {
        Node::digest_checkpoint(self)
    }
}

/// One fact about one replica, reported as it happens.
#[non_exhaustive]
pub enum Observation<'a> {
    /// `from` (in its `incarnation`-th run) sent `frame` to `to`.
    Sent {
        /// The sender.
        from: NodeId,
        /// Bumped by every restart of the sender.
        incarnation: u64,
        /// The addressee.
        to: NodeId,
        /// The decoded frame.
        frame: &'a PeerFrame,
    },
    /// `node` asked its disk to persist `records` (one batch).
    Persisting {
        /// The replica.
        node: NodeId,
        /// The batch's records.
        records: &'a [Record],
    },
    /// `node` (in its `incarnation`-th run) applied the command at
    /// `index`/`position`.
    Applied {
        /// The replica.
        node: NodeId,
        /// Bumped by every restart.
        incarnation: u64,
        /// Log index.
        index: LogIndex,
        /// The entry's term.
        term: Term,
        /// Position of the command within a batched entry.
        position: u32,
    },
    /// `node` (in its `incarnation`-th run) adopted a new configuration,
    /// by applying a change or installing a snapshot.
    MembershipChanged {
        /// The replica.
        node: NodeId,
        /// Bumped by every restart.
        incarnation: u64,
        /// The configuration from now on.
        membership: &'a Membership,
    },
    /// `node` became leader of `term`.
    BecameLeader {
        /// The new leader.
        node: &'a dyn ReplicaView,
        /// Its term.
        term: Term,
    },
    /// `node` finished a step (its outputs were carried out).
    Stepped {
        /// The replica.
        node: &'a dyn ReplicaView,
        /// Bumped by every restart.
        incarnation: u64,
    },
    /// Live subscriber `subscriber` opened a stream following `room` from
    /// `cursor` (every later delivery of the room continues from there).
    Followed {
        /// The subscriber (a client index).
        subscriber: usize,
        /// The room.
        room: &'a RoomId,
        /// Deliver entries after this sequence number.
        cursor: u64,
    },
    /// Live subscriber `subscriber` received entry `seq` of `room` (a
    /// message with `msg_id`, or another kind of entry).
    Delivered {
        /// The subscriber (a client index).
        subscriber: usize,
        /// The room.
        room: &'a RoomId,
        /// The entry's sequence number.
        seq: u64,
        /// The message id, for a message.
        msg_id: Option<Uuid>,
        /// The entry as received ([`look`]).
        look: u64,
    },
    /// Live subscriber `subscriber` received a change (edit, deletion,
    /// reaction) to entry `seq` of `room`, a message with `msg_id`.
    Updated {
        /// The subscriber (a client index).
        subscriber: usize,
        /// The room.
        room: &'a RoomId,
        /// The entry's sequence number.
        seq: u64,
        /// The message id it carries.
        msg_id: Option<Uuid>,
        /// The entry as received ([`look`]).
        look: u64,
    },
    /// After the heal every client announced its presence once more; what
    /// each running replica (started before those announcements) shows.
    PresenceSettled {
        /// Each client's user and the time stamped on its last announcement.
        announced: &'a [(UserId, u64)],
        /// (replica, user, the announcement time it shows, if any).
        seen: &'a [(NodeId, UserId, Option<u64>)],
    },
    /// A fact about file content ([`FileObservation`]).
    File(FileObservation<'a>),
    /// The healed cluster converged: what the state says each chat client
    /// blocks and who asks it, beside what each client was told.
    ReachSettled {
        /// One record per client that blocked or was asked by anyone.
        reach: &'a [Reach],
    },
    /// The healed cluster converged: every message the leader stores, and
    /// what each chat client sent and had acknowledged.
    Settled {
        /// Messages in the converged state.
        stored: &'a [StoredMessage],
        /// One record per client.
        clients: &'a [ClientSends],
    },
}

/// A message in the converged chat state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its room.
    pub room: RoomId,
    /// Its position there.
    pub seq: u64,
    /// The client-chosen id.
    pub msg_id: Uuid,
    /// Who the state machine says sent it.
    pub author: UserId,
    /// How it is now, edits, deletion and reactions included ([`look`]).
    pub look: u64,
}

/// A fingerprint of an entry as it is now: entries that a change (edit,
/// deletion, reaction) separates look different.
pub fn look(entry: &RoomEntry) -> u64 {
    let bytes = postcard::to_allocvec(entry).expect("entries encode");
    let hash = blake3::hash(&bytes);
    u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// The message id an entry carries, if it is a message (a file message is
/// one too: it is edited, reacted to and deleted like any other).
fn msg_id_of(entry: &RoomEntry) -> Option<Uuid> {
    match &entry.kind {
        EntryKind::Message(m) => Some(m.msg_id),
        EntryKind::File(f) => Some(f.message.msg_id),
        _ => None,
    }
}

impl StoredMessage {
    /// Every message `machine` stores, room by room in order.
    pub fn all_in(machine: &ImMachine) -> Result<Vec<StoredMessage>, HistoryError> {
        Ok(machine
            .all_entries()?
            .into_iter()
            .filter_map(|(room, entry)| {
                Some(StoredMessage {
                    seq: entry.seq,
                    msg_id: msg_id_of(&entry)?,
                    author: entry.author,
                    look: look(&entry),
                    room,
                })
            })
            .collect())
    }
}

/// What one chat client sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSends {
    /// Its user.
    pub user: UserId,
    /// Every message id it ever submitted (acknowledged or not).
    pub submitted: Vec<Uuid>,
    /// Its acknowledged sends, in the order it sent them: id, room, seq.
    pub acked: Vec<(Uuid, RoomId, u64)>,
}

/// Who can reach one client, in the converged state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reach {
    /// The client's user.
    pub user: UserId,
    /// The users it blocks, as the answers to its own `Block` and
    /// `Unblock` commands told it (the last answer per user wins).
    pub told_blocked: BTreeSet<UserId>,
    /// The users it blocks, as its contacts query shows them.
    pub blocked: BTreeSet<UserId>,
    /// The senders of the requests its contacts query shows it.
    pub incoming: BTreeSet<UserId>,
}

impl Reach {
    /// What `machine` shows `user` of who can reach it, beside what the
    /// client was told it blocks.
    pub fn of(
        machine: &ImMachine,
        user: UserId,
        told_blocked: BTreeSet<UserId>,
    ) -> Result<Reach, ImError> {
        let query = ImQuery { as_user: user, kind: QueryKind::Contacts };
        let QueryReply::Contacts(view) = machine.query(&query)? else {
            unreachable!("a contacts query is answered with contacts")
        };
        Ok(Reach {
            user,
            told_blocked,
            blocked: view.blocked.iter().map(|(u, _)| *u).collect(),
            incoming: view.incoming.iter().map(|r| r.user).collect(),
        })
    }
}

/// One invariant: accumulates what it needs from observations and says
/// what is wrong the moment it sees it.
pub trait Invariant: fmt::Debug + Send {
    /// Its name, as violations report it ("election safety").
    fn name(&self) -> &'static str;
    /// Checks one observation.
    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String>;
}

/// The checkers one simulation runs, fed every observation in order.
#[derive(Debug, Default)]
pub struct Invariants {
    checks: Vec<Box<dyn Invariant>>,
    now: Instant,
}

impl Invariants {
    /// A set of checkers.
    pub fn new(checks: Vec<Box<dyn Invariant>>) -> Invariants {
        Invariants { checks, now: Instant::ZERO }
    }

    /// The names of the checkers, in the order they run.
    pub fn names(&self) -> Vec<&'static str> {
        self.checks.iter().map(|c| c.name()).collect()
    }

    /// Sets the time stamped on violations.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    fn violation(&self, invariant: &'static str, detail: String) -> Violation {
        Violation { invariant, detail, at: self.now }
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), Violation> {
        for check in &mut self.checks {
            if let Err(detail) = check.observe(observation) {
                return Err(Violation { invariant: check.name(), detail, at: self.now });
            }
        }
        Ok(())
    }

    /// `node` sent `frame` to `to`; a frame that does not decode is itself
    /// a violation (a replica never sends one).
    pub fn on_send(
        &mut self,
        node: NodeId,
        incarnation: u64,
        to: NodeId,
        frame: &[u8],
    ) -> Result<(), Violation> {
        let frame = PeerFrame::decode(frame).map_err(|e| {
            self.violation("wire format", format!("node {node} sent a bad frame: {e}"))
        })?;
        self.observe(&Observation::Sent { from: node, incarnation, to, frame: &frame })
    }

    /// `node` emitted a persist batch.
    pub fn on_persist(&mut self, node: NodeId, bytes: &[u8]) -> Result<(), Violation> {
        let (records, _) = decode_batch_at(bytes, 0)
            .map_err(|e| self.violation("durable format", format!("node {node}: {e}")))?;
        self.observe(&Observation::Persisting { node, records: &records })
    }

    /// `node` (in `incarnation`) applied the command at `index`/`position`.
    pub fn on_applied(
        &mut self,
        node: NodeId,
        incarnation: u64,
        index: LogIndex,
        term: Term,
        position: u32,
    ) -> Result<(), Violation> {
        self.observe(&Observation::Applied { node, incarnation, index, term, position })
    }

    /// `node` (in `incarnation`) adopted `membership`.
    pub fn on_membership(
        &mut self,
        node: NodeId,
        incarnation: u64,
        membership: &Membership,
    ) -> Result<(), Violation> {
        self.observe(&Observation::MembershipChanged { node, incarnation, membership })
    }

    /// `node` became leader of `term`.
    pub fn on_leader(&mut self, node: &dyn ReplicaView, term: Term) -> Result<(), Violation> {
        self.observe(&Observation::BecameLeader { node, term })
    }

    /// `node` finished a step.
    pub fn on_status(&mut self, node: &dyn ReplicaView, incarnation: u64) -> Result<(), Violation> {
        self.observe(&Observation::Stepped { node, incarnation })
    }

    /// A live subscriber started following `room` from `cursor`.
    pub fn on_followed(
        &mut self,
        subscriber: usize,
        room: &RoomId,
        cursor: u64,
    ) -> Result<(), Violation> {
        self.observe(&Observation::Followed { subscriber, room, cursor })
    }

    /// A live subscriber received `entry` of `room`.
    pub fn on_delivered(
        &mut self,
        subscriber: usize,
        room: &RoomId,
        entry: &RoomEntry,
    ) -> Result<(), Violation> {
        let (seq, msg_id, look) = (entry.seq, msg_id_of(entry), look(entry));
        self.observe(&Observation::Delivered { subscriber, room, seq, msg_id, look })
    }

    /// A live subscriber received a change to `entry` of `room`.
    pub fn on_updated(
        &mut self,
        subscriber: usize,
        room: &RoomId,
        entry: &RoomEntry,
    ) -> Result<(), Violation> {
        let (seq, msg_id, look) = (entry.seq, msg_id_of(entry), look(entry));
        self.observe(&Observation::Updated { subscriber, room, seq, msg_id, look })
    }

    /// After the heal, what each replica shows of each client's presence.
    pub fn on_presence_settled(
        &mut self,
        announced: &[(UserId, u64)],
        seen: &[(NodeId, UserId, Option<u64>)],
    ) -> Result<(), Violation> {
        self.observe(&Observation::PresenceSettled { announced, seen })
    }

    /// A fact about file content.
    pub fn on_file(&mut self, observation: FileObservation<'_>) -> Result<(), Violation> {
        self.observe(&Observation::File(observation))
    }

    /// The healed cluster converged on `stored`.
    pub fn on_settled(
        &mut self,
        stored: &[StoredMessage],
        clients: &[ClientSends],
    ) -> Result<(), Violation> {
        self.observe(&Observation::Settled { stored, clients })
    }

    /// Who can reach each client, in the converged state.
    pub fn on_reach_settled(&mut self, reach: &[Reach]) -> Result<(), Violation> {
        self.observe(&Observation::ReachSettled { reach })
    }
}
