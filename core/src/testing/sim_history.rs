//! A durable history store with a crash model, for tests and simulators:
//! writes stay pending until [`HistoryStore::commit`]; a crash drops them
//! and the store is exactly as of its last commit, as the durability
//! contract promises of a real store. Clones share one disk, so a replica's
//! next incarnation finds what the last one committed.

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
    }
}

impl HistoryStore for SimHistory {
    fn put(&mut self, room: &RoomId, entry: &RoomEntry) -> Result<(), HistoryError> {
        self.disk().working.put(room, entry)
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
        self.disk().working.put_message_id(author, msg_id, place)
    }

    fn message_id(
        &self,
        author: UserId,
        msg_id: Uuid,
    ) -> Result<Option<MessagePlace>, HistoryError> {
        self.disk().working.message_id(author, msg_id)
    }

    fn clear(&mut self) -> Result<(), HistoryError> {
        self.disk().working.clear()
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn commit(&mut self, point: &Committed) -> Result<(), HistoryError> {
        let mut d = self.disk();
        d.durable = d.working.clone();
        d.committed = Some(point.clone());
        Ok(())
    }

    fn committed(&self) -> Result<Option<Committed>, HistoryError> {
        Ok(self.disk().committed.clone())
    }
}
