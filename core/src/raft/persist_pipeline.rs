//! Persist batches in flight to the driver, and the Raft messages that must
//! wait for them.
//!
//! raft-rs hands out "persisted messages" (votes, append acknowledgements)
//! that may only leave once the state they promise is on disk. They wait here
//! behind the batch of their Ready and go out, in order, when the driver
//! reports the batch durable. A Ready with nothing to write still waits
//! behind earlier batches, since its messages may depend on them.

use crate::durable::{encode_batch, Record};
use crate::ids::PersistId;
use bytes::Bytes;
use raft::eraftpb::Message;
use std::collections::VecDeque;

#[derive(Debug)]
struct Pending {
    id: Option<PersistId>,
    ready: Option<u64>,
    messages: Vec<Message>,
}

/// What became releasable.
#[derive(Debug, Default)]
pub(crate) struct Released {
    /// The highest Ready number now durable.
    pub(crate) ready: Option<u64>,
    /// Messages that may now be sent, in order.
    pub(crate) messages: Vec<Message>,
}

#[derive(Debug, Default)]
pub(crate) struct PersistPipeline {
    last_id: u64,
    durable: PersistId,
    pending: VecDeque<Pending>,
}

/// A batch to hand to the driver.
pub(crate) struct Batch {
    pub(crate) id: PersistId,
    pub(crate) new_segment: bool,
    pub(crate) bytes: Bytes,
}

impl PersistPipeline {
    /// Batches written but not yet durable.
    pub(crate) fn in_flight(&self) -> usize {
        self.pending.iter().filter(|p| p.id.is_some()).count()
    }

    /// Queues a Ready's (or a compaction's) records and messages; returns the
    /// batch to write, if there is anything to write.
    pub(crate) fn push(
        &mut self,
        records: &[Record],
        new_segment: bool,
        ready: Option<u64>,
        messages: Vec<Message>,
    ) -> Option<Batch> {
        let batch = (!records.is_empty()).then(|| {
            self.last_id += 1;
            Batch { id: PersistId(self.last_id), new_segment, bytes: encode_batch(records).into() }
        });
        self.pending.push_back(Pending { id: batch.as_ref().map(|b| b.id), ready, messages });
        batch
    }

    /// The driver reports batches up to `up_to` durable. Ids beyond what was
    /// emitted are a driver bug.
    pub(crate) fn mark_durable(&mut self, up_to: PersistId) {
        assert!(up_to.get() <= self.last_id, "driver reported an unknown persist id {up_to}");
        self.durable = self.durable.max(up_to);
    }

    /// Pops everything at the front that is durable (or had nothing to write).
    pub(crate) fn release(&mut self) -> Released {
        let mut out = Released::default();
        while let Some(front) = self.pending.front() {
            if front.id.is_some_and(|id| id > self.durable) {
                break;
            }
            let done = self.pending.pop_front().expect("front exists");
            out.ready = done.ready.or(out.ready);
            out.messages.extend(done.messages);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::DurableHardState;

    #[test]
    fn messages_wait_behind_earlier_batches() {
        let mut p = PersistPipeline::default();
        let rec = [Record::HardState(DurableHardState::default())];
        let b1 = p.push(&rec, false, Some(1), vec![Message::default()]).unwrap();
        assert!(p.push(&[], false, Some(2), vec![Message::default()]).is_none());
        assert!(p.release().messages.is_empty());
        assert_eq!(p.in_flight(), 1);
        p.mark_durable(b1.id);
        let r = p.release();
        assert_eq!((r.ready, r.messages.len()), (Some(2), 2));
        assert!(p.push(&[], false, Some(3), vec![]).is_none());
        assert_eq!(p.release().ready, Some(3));
    }
}
