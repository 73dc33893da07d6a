//! Submissions on their way into the log: a bounded queue waiting to be
//! packed into an entry, and the in-flight set keyed by the (index, term)
//! where each entry was placed. An entry applied at that index with that
//! term is ours; any other entry there means ours was overwritten and can
//! never commit (Raft never moves an entry to another index).

use super::command_batch;
use super::output::DropOutcome;
use crate::ids::{ProposalId, Term};
use crate::limits;
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};

/// What kind of entry a proposal became.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Placed {
    /// A batch of commands, in batch order.
    Commands(Vec<ProposalId>),
    /// A membership change.
    Membership(ProposalId),
}

impl Placed {
    fn ids(self) -> Vec<ProposalId> {
        match self {
            Placed::Commands(ids) => ids,
            Placed::Membership(id) => vec![id],
        }
    }
}

/// The outcome of looking up an applied entry.
#[derive(Debug, Default)]
pub(crate) struct Resolution {
    /// Our proposal(s) in this entry, if it is ours.
    pub(crate) ours: Option<Placed>,
    /// Proposals that can now never be applied.
    pub(crate) dropped: Vec<(ProposalId, DropOutcome)>,
}

#[derive(Debug, Default)]
pub(crate) struct Proposals {
    next_id: u64,
    queue: VecDeque<(ProposalId, Bytes)>,
    in_flight: BTreeMap<u64, (Term, Placed)>,
    in_flight_count: usize,
}

impl Proposals {
    pub(crate) fn allocate(&mut self) -> ProposalId {
        self.next_id += 1;
        ProposalId(self.next_id)
    }

    pub(crate) fn has_room(&self) -> bool {
        self.queue.len() < limits::PROPOSAL_QUEUE_MAX
            && self.in_flight_count + self.queue.len() < limits::PROPOSALS_IN_FLIGHT_MAX
    }

    pub(crate) fn enqueue(&mut self, id: ProposalId, command: Bytes) {
        assert!(self.has_room(), "enqueue without room");
        self.queue.push_back((id, command));
    }

    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Takes the next batch that fits one entry.
    pub(crate) fn take_batch(&mut self) -> Option<(Vec<ProposalId>, Vec<Bytes>)> {
        let mut ids = Vec::new();
        let mut commands = Vec::new();
        let mut bytes = 8;
        while let Some((_, command)) = self.queue.front() {
            let len = command_batch::encoded_len(command);
            if !ids.is_empty()
                && (bytes + len > limits::ENTRY_BYTES_MAX
                    || ids.len() >= limits::ENTRY_COMMANDS_MAX)
            {
                break;
            }
            bytes += len;
            let (id, command) = self.queue.pop_front().expect("front exists");
            ids.push(id);
            commands.push(command);
        }
        (!ids.is_empty()).then_some((ids, commands))
    }

    /// Every queued submission, which will now never be proposed.
    pub(crate) fn drain_queue(&mut self) -> Vec<ProposalId> {
        self.queue.drain(..).map(|(id, _)| id).collect()
    }

    pub(crate) fn place(&mut self, index: u64, term: Term, placed: Placed) {
        self.in_flight_count += match &placed {
            Placed::Commands(ids) => ids.len(),
            Placed::Membership(_) => 1,
        };
        if let Some((_, old)) = self.in_flight.insert(index, (term, placed)) {
            // raft-rs only appends at a fresh index on the leader; an older
            // record there belongs to an entry that was overwritten.
            self.in_flight_count -= old.ids().len();
        }
    }

    /// Looks up the entry applied at `index` with `term`; `membership` says
    /// whether the entry is a membership change.
    pub(crate) fn resolve(&mut self, index: u64, term: Term, membership: bool) -> Resolution {
        let mut res = Resolution::default();
        let stale: Vec<u64> = self.in_flight.range(..index).map(|(i, _)| *i).collect();
        for i in stale {
            let (_, placed) = self.in_flight.remove(&i).expect("listed");
            self.forget(placed, DropOutcome::NotCommitted, &mut res);
        }
        if let Some((placed_term, placed)) = self.in_flight.remove(&index) {
            let kind_matches = matches!(placed, Placed::Membership(_)) == membership;
            if placed_term == term && kind_matches {
                self.in_flight_count -= match &placed {
                    Placed::Commands(ids) => ids.len(),
                    Placed::Membership(_) => 1,
                };
                res.ours = Some(placed);
            } else {
                self.forget(placed, DropOutcome::NotCommitted, &mut res);
            }
        }
        res
    }

    /// A snapshot covering `index` was installed: whatever we placed up to
    /// there may or may not be in it.
    pub(crate) fn covered_by_snapshot(&mut self, index: u64) -> Vec<(ProposalId, DropOutcome)> {
        let mut res = Resolution::default();
        let covered: Vec<u64> = self.in_flight.range(..=index).map(|(i, _)| *i).collect();
        for i in covered {
            let (_, placed) = self.in_flight.remove(&i).expect("listed");
            self.forget(placed, DropOutcome::Unknown, &mut res);
        }
        res.dropped
    }

    fn forget(&mut self, placed: Placed, outcome: DropOutcome, res: &mut Resolution) {
        let ids = placed.ids();
        self.in_flight_count -= ids.len();
        res.dropped.extend(ids.into_iter().map(|id| (id, outcome)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_by_index_and_term() {
        let mut p = Proposals::default();
        let a = p.allocate();
        let b = p.allocate();
        p.enqueue(a, Bytes::from_static(b"a"));
        p.enqueue(b, Bytes::from_static(b"b"));
        let (ids, cmds) = p.take_batch().unwrap();
        assert_eq!((ids.len(), cmds.len()), (2, 2));
        p.place(5, Term(2), Placed::Commands(ids));
        let c = p.allocate();
        p.place(6, Term(2), Placed::Membership(c));
        let r = p.resolve(5, Term(2), false);
        assert_eq!(r.ours, Some(Placed::Commands(vec![a, b])));
        let r = p.resolve(6, Term(3), true);
        assert!(r.ours.is_none());
        assert_eq!(r.dropped, vec![(c, DropOutcome::NotCommitted)]);
        assert_eq!(p.in_flight_count, 0);
    }

    #[test]
    fn batches_respect_entry_limits_and_snapshot_makes_unknown() {
        let mut p = Proposals::default();
        let big = Bytes::from(vec![0u8; limits::ENTRY_BYTES_MAX / 2]);
        for _ in 0..3 {
            let id = p.allocate();
            p.enqueue(id, big.clone());
        }
        assert_eq!(p.take_batch().unwrap().0.len(), 1);
        let (ids, _) = p.take_batch().unwrap();
        p.place(9, Term(1), Placed::Commands(ids.clone()));
        assert_eq!(p.covered_by_snapshot(10), vec![(ids[0], DropOutcome::Unknown)]);
        assert_eq!(p.drain_queue().len(), 1);
        assert!(p.take_batch().is_none());
    }
}
