//! Linearizable reads waiting for a confirmed read index, then for the
//! state machine to apply up to it.

use crate::ids::ReadId;
use crate::limits;
use std::collections::BTreeMap;

#[derive(Debug)]
struct PendingRead<Q> {
    query: Q,
    deadline_tick: u64,
    index: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Reads<Q> {
    next_id: u64,
    pending: BTreeMap<ReadId, PendingRead<Q>>,
}

impl<Q> Default for Reads<Q> {
    fn default() -> Self {
        Reads { next_id: 0, pending: BTreeMap::new() }
    }
}

impl<Q> Reads<Q> {
    pub(crate) fn has_room(&self) -> bool {
        self.pending.len() < limits::READS_PENDING_MAX
    }

    pub(crate) fn start(&mut self, query: Q, deadline_tick: u64) -> ReadId {
        assert!(self.has_room(), "start without room");
        self.next_id += 1;
        let id = ReadId(self.next_id);
        self.pending.insert(id, PendingRead { query, deadline_tick, index: None });
        id
    }

    /// raft-rs confirmed a read index for the request context `ctx`.
    pub(crate) fn confirmed(&mut self, ctx: &[u8], index: u64) {
        if let Some(id) = decode_ctx(ctx) {
            if let Some(read) = self.pending.get_mut(&id) {
                read.index.get_or_insert(index);
            }
        }
    }

    /// Reads whose index has been applied, in id order.
    pub(crate) fn ready(&mut self, applied: u64) -> Vec<(ReadId, u64, Q)> {
        let done: Vec<(ReadId, u64)> = self
            .pending
            .iter()
            .filter_map(|(id, r)| r.index.filter(|&i| i <= applied).map(|i| (*id, i)))
            .collect();
        done.into_iter()
            .filter_map(|(id, index)| self.pending.remove(&id).map(|r| (id, index, r.query)))
            .collect()
    }

    /// Reads whose deadline passed without a confirmed index being applied.
    pub(crate) fn expire(&mut self, tick: u64) -> Vec<ReadId> {
        let expired: Vec<ReadId> = self
            .pending
            .iter()
            .filter(|(_, r)| r.deadline_tick <= tick)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            self.pending.remove(id);
        }
        expired
    }
}

/// The request context for a read id.
pub(crate) fn encode_ctx(id: ReadId) -> Vec<u8> {
    id.get().to_le_bytes().to_vec()
}

fn decode_ctx(ctx: &[u8]) -> Option<ReadId> {
    let bytes: [u8; 8] = ctx.try_into().ok()?;
    Some(ReadId(u64::from_le_bytes(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_after_apply_and_expires() {
        let mut r = Reads::default();
        let a = r.start("a", 10);
        let b = r.start("b", 5);
        r.confirmed(&encode_ctx(a), 7);
        r.confirmed(&[1, 2], 7);
        assert!(r.ready(6).is_empty());
        assert_eq!(r.ready(7), vec![(a, 7, "a")]);
        assert_eq!(r.expire(5), vec![b]);
        assert!(r.expire(100).is_empty());
    }
}
