//! A durable history store with a crash model, for tests and simulators:
//! writes stay pending until [`HistoryStore::commit`]; a crash drops them
//! and the store is exactly as of its last commit, as the durability
//! contract promises of a real store. Clones share one disk, so a replica's
//! next incarnation finds what the last one committed.
//!
//! The durable copy is brought up to date by replaying the writes since the
//! last commit, not by copying the working one: commits come every few
//! hundred entries and a copy would cost the whole history each time.

use crate::im::history::{Committed, HistoryError, HistoryStore, MemoryHistory, MessagePlace};
use crate::im::identity::UserId;
use crate::im::protocol::{RoomEntry, RoomId};
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

#[derive(Debug, Default)]
struct Disk {
    durable: MemoryHistory,
    committed: Option<Committed>,
    working: MemoryHistory,
    /// The writes in `working` that `durable` lacks, oldest first.
    pending: Vec<Write>,
}

#[derive(Debug)]
enum Write {
    Put(RoomId, RoomEntry),
    MessageId(UserId, Uuid, MessagePlace),
    Change(RoomId, u64, u64),
    Clear,
}

impl Disk {
    fn settle(&mut self) -> Result<(), HistoryError> {
        for write in std::mem::take(&mut self.pending) {
            match write {
                Write::Put(room, entry) => self.durable.put(&room, &entry)?,
                Write::MessageId(author, id, place) => {
                    self.durable.put_message_id(author, id, &place)?
                }
                Write::Change(room, change, seq) => self.durable.put_change(&room, change, seq)?,
                Write::Clear => self.durable.clear()?,
            }
        }
        Ok(())
    }
}

/// A handle on one simulated history disk.
#[derive(Clone, Debug, Default)]
pub struct SimHistory(Arc<Mutex<Disk>>);

impl SimHistory {
    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.0.lock().expect("a test store is never poisoned")
    }

    /// Power loss: every write since the last commit is gone.
    pub fn crash(&self) {
        let mut d = self.disk();
        d.working = d.durable.clone();
        d.pending.clear();
    }
}

impl HistoryStore for SimHistory {
    fn put(&mut self, room: &RoomId, entry: &RoomEntry) -> Result<(), HistoryError> {
        let mut d = self.disk();
        d.working.put(room, entry)?;
        d.pending.push(Write::Put(room.clone(), entry.clone()));
        Ok(())
    }

    fn entry(&self, room: &RoomId, seq: u64) -> Result<Option<RoomEntry>, HistoryError> {
        self.disk().working.entry(room, seq)
    }

    fn range(
        &self,
        room: &RoomId,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<RoomEntry>, HistoryError> {
        self.disk().working.range(room, from, to, limit)
    }

    fn put_message_id(
        &mut self,
        author: UserId,
        msg_id: Uuid,
        place: &MessagePlace,
    ) -> Result<(), HistoryError> {
        let mut d = self.disk();
        d.working.put_message_id(author, msg_id, place)?;
        d.pending.push(Write::MessageId(author, msg_id, place.clone()));
        Ok(())
    }

    fn message_id(
        &self,
        author: UserId,
        msg_id: Uuid,
    ) -> Result<Option<MessagePlace>, HistoryError> {
        self.disk().working.message_id(author, msg_id)
    }

    fn put_change(&mut self, room: &RoomId, change: u64, seq: u64) -> Result<(), HistoryError> {
        let mut d = self.disk();
        d.working.put_change(room, change, seq)?;
        d.pending.push(Write::Change(room.clone(), change, seq));
        Ok(())
    }

    fn changes(
        &self,
        room: &RoomId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, HistoryError> {
        self.disk().working.changes(room, after, limit)
    }

    fn latest_change(&self, room: &RoomId) -> Result<Option<u64>, HistoryError> {
        self.disk().working.latest_change(room)
    }

    fn clear(&mut self) -> Result<(), HistoryError> {
        let mut d = self.disk();
        d.working.clear()?;
        // Nothing written before a clear matters to the durable copy.
        d.pending.clear();
        d.pending.push(Write::Clear);
        Ok(())
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn commit(&mut self, point: &Committed) -> Result<(), HistoryError> {
        let mut d = self.disk();
        d.settle()?;
        d.committed = Some(point.clone());
        Ok(())
    }

    fn committed(&self) -> Result<Option<Committed>, HistoryError> {
        Ok(self.disk().committed.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im::protocol::EntryKind;

    fn entry(seq: u64) -> RoomEntry {
        RoomEntry {
            seq,
            time_ms: seq,
            author: UserId([1; 32]),
            kind: EntryKind::Renamed { title: format!("t{seq}") },
        }
    }

    fn point(index: u64) -> Committed {
        Committed { index, summaries: Vec::new(), meta: Vec::new() }
    }

    #[test]
    fn a_crash_keeps_exactly_what_was_committed() {
        let room = RoomId::Group("r".into());
        let mut disk = SimHistory::default();
        disk.put(&room, &entry(1)).unwrap();
        disk.put_message_id(UserId([1; 32]), Uuid::from_u128(7), &(room.clone(), 1)).unwrap();
        disk.commit(&point(1)).unwrap();
        disk.put_change(&room, 9, 1).unwrap();
        disk.commit(&point(1)).unwrap();
        disk.put(&room, &entry(2)).unwrap();
        disk.put_change(&room, 12, 1).unwrap();
        disk.crash();
        assert_eq!(disk.range(&room, 1, 10, 10).unwrap(), vec![entry(1)]);
        assert_eq!(disk.changes(&room, 0, 10).unwrap(), vec![(9, 1)]);
        assert_eq!(
            disk.message_id(UserId([1; 32]), Uuid::from_u128(7)).unwrap(),
            Some((room.clone(), 1))
        );
        assert_eq!(disk.committed().unwrap(), Some(point(1)));

        // A clear is a write like any other: lost unless committed.
        disk.clear().unwrap();
        disk.put(&room, &entry(5)).unwrap();
        disk.crash();
        assert_eq!(disk.range(&room, 1, 10, 10).unwrap(), vec![entry(1)]);
        disk.clear().unwrap();
        disk.put(&room, &entry(5)).unwrap();
        disk.commit(&point(5)).unwrap();
        disk.crash();
        assert_eq!(disk.range(&room, 1, 10, 10).unwrap(), vec![entry(5)]);
        assert_eq!(disk.message_id(UserId([1; 32]), Uuid::from_u128(7)).unwrap(), None);
        assert_eq!(disk.changes(&room, 0, 10).unwrap(), vec![]);
    }
}
