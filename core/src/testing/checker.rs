//! Raft invariants, checked after every step of the in-memory cluster.
//!
//! - Election safety: at most one leader per term.
//! - Log matching: two entries with the same index and term carry the same
//!   payload (checked on every batch a node persists).
//! - Leader completeness: a new leader holds every entry committed so far.
//! - State machine safety: equal applied index, equal state digest; and a
//!   committed index has one term everywhere.
//! - Commit and applied indexes never move backwards within an incarnation.
//! - No proposal applied twice: applied positions strictly increase.
//! - Vote safety: a node grants its vote to one candidate per term (checked
//!   on every vote it sends).

use crate::durable::{decode_batch_at, Record};
use crate::ids::{LogIndex, NodeId, Term};
use crate::node::{Node, NodeStatus};
use crate::state_machine::{Digest, StateMachine};
use crate::time::Instant;
use crate::wire::{PeerBody, PeerFrame, WireEntryPayload, WireMessageKind};
use std::collections::BTreeMap;
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

#[derive(Debug, Default)]
struct Watermarks {
    incarnation: u64,
    commit: LogIndex,
    applied: LogIndex,
    last_applied_position: Option<(u64, u32)>,
}

/// Accumulated knowledge about the cluster, to check each new fact against.
#[derive(Debug, Default)]
pub struct RaftChecker {
    leaders: BTreeMap<Term, NodeId>,
    votes: BTreeMap<(NodeId, u64), NodeId>,
    payloads: BTreeMap<(u64, u64), blake3::Hash>,
    committed_terms: BTreeMap<u64, u64>,
    digests: BTreeMap<LogIndex, Digest>,
    watermarks: BTreeMap<NodeId, Watermarks>,
    now: Instant,
}

impl RaftChecker {
    /// Sets the time stamped on violations.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    fn violation(&self, invariant: &'static str, detail: String) -> Violation {
        Violation { invariant, detail, at: self.now }
    }

    /// `node` became leader of `term`.
    pub fn on_leader<S: StateMachine>(
        &mut self,
        node: &Node<S>,
        term: Term,
    ) -> Result<(), Violation> {
        let id = node.id();
        if let Some(&other) = self.leaders.get(&term) {
            if other != id {
                return Err(self.violation(
                    "election safety",
                    format!("nodes {other} and {id} both led term {term}"),
                ));
            }
        }
        self.leaders.insert(term, id);
        let floor = node.status().snapshot_index.get();
        for (&index, &committed_term) in self.committed_terms.range(floor + 1..) {
            if node.entry_term(LogIndex(index)) != Some(Term(committed_term)) {
                return Err(self.violation(
                    "leader completeness",
                    format!(
                        "leader {id} of term {term} lacks committed entry {index} (term {committed_term})"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `node` sent a frame to `to`.
    pub fn on_send(&mut self, node: NodeId, to: NodeId, frame: &[u8]) -> Result<(), Violation> {
        let frame = PeerFrame::decode(frame).map_err(|e| {
            self.violation("wire format", format!("node {node} sent a bad frame: {e}"))
        })?;
        let PeerBody::Raft(m) = frame.body else { return Ok(()) };
        if m.kind != WireMessageKind::RequestVoteResponse || m.reject {
            return Ok(());
        }
        let prior = *self.votes.entry((node, m.term)).or_insert(to);
        if prior != to {
            return Err(self.violation(
                "vote safety",
                format!("node {node} voted for {prior} and {to} in term {}", m.term),
            ));
        }
        Ok(())
    }

    /// `node` emitted a persist batch.
    pub fn on_persist(&mut self, node: NodeId, bytes: &[u8]) -> Result<(), Violation> {
        let (records, _) = decode_batch_at(bytes, 0)
            .map_err(|e| self.violation("durable format", format!("node {node}: {e}")))?;
        for record in records {
            let Record::Entries(entries) = record else { continue };
            for e in entries {
                let hash = match &e.payload {
                    WireEntryPayload::Normal(data) => blake3::hash(data),
                    WireEntryPayload::ConfChange(cc) => blake3::hash(&postcard_bytes(cc)),
                };
                let prior = *self.payloads.entry((e.index, e.term)).or_insert(hash);
                if prior != hash {
                    return Err(self.violation(
                        "log matching",
                        format!(
                            "node {node} holds a different entry at index {} term {}",
                            e.index, e.term
                        ),
                    ));
                }
            }
        }
        Ok(())
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
        let w = self.watermarks_for(node, incarnation);
        let here = (index.get(), position);
        let last = w.last_applied_position.replace(here);
        if last.is_some_and(|last| last >= here) {
            return Err(self.violation(
                "no command applied twice",
                format!("node {node} applied {here:?} after {last:?}"),
            ));
        }
        let prior = *self.committed_terms.entry(index.get()).or_insert(term.get());
        if prior != term.get() {
            return Err(self.violation(
                "state machine safety",
                format!(
                    "node {node} applied index {index} from term {term}, others from term {prior}"
                ),
            ));
        }
        Ok(())
    }

    /// Checks a node's status (and digest, when its applied index moved).
    pub fn on_status<S: StateMachine>(
        &mut self,
        node: &Node<S>,
        incarnation: u64,
    ) -> Result<(), Violation> {
        let status: NodeStatus = node.status();
        let id = node.id();
        let w = self.watermarks_for(id, incarnation);
        let (old_commit, old_applied) = (w.commit, w.applied);
        w.commit = w.commit.max(status.commit);
        w.applied = w.applied.max(status.applied);
        if status.commit < old_commit || status.applied < old_applied {
            return Err(self.violation(
                "monotonic commit and apply",
                format!(
                    "node {id}: commit {old_commit}->{}, applied {old_applied}->{}",
                    status.commit, status.applied
                ),
            ));
        }
        // Large states are digested by the node itself at fixed indexes
        // (`Config::digest_every_entries`); small ones after every step.
        let (index, digest) = match node.digest_checkpoint() {
            Some(checkpoint) => checkpoint,
            None if status.applied != old_applied || old_applied == LogIndex(0) => {
                (status.applied, node.digest())
            }
            None => return Ok(()),
        };
        let prior = *self.digests.entry(index).or_insert(digest);
        if prior != digest {
            return Err(self.violation(
                "state machine safety",
                format!(
                    "node {id} at applied index {index} has digest {digest:?}, expected {prior:?}"
                ),
            ));
        }
        Ok(())
    }

    fn watermarks_for(&mut self, node: NodeId, incarnation: u64) -> &mut Watermarks {
        let w = self.watermarks.entry(node).or_default();
        if w.incarnation != incarnation {
            *w = Watermarks { incarnation, ..Watermarks::default() };
        }
        w
    }

    /// Highest index known committed anywhere.
    pub fn max_committed(&self) -> u64 {
        self.committed_terms.keys().next_back().copied().unwrap_or(0)
    }
}

fn postcard_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("wire types encode")
}
