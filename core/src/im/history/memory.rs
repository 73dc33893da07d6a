//! A volatile history store: two ordered maps. Its contents travel inside
//! every snapshot, so a restarted replica rebuilds them from its log.

use super::{Committed, HistoryError, HistoryStore, MessagePlace};
use crate::im::identity::UserId;
use crate::im::protocol::{RoomEntry, RoomId};
use std::collections::BTreeMap;
use uuid::Uuid;

/// History in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryHistory {
    entries: BTreeMap<(RoomId, u64), RoomEntry>,
    message_ids: BTreeMap<(UserId, Uuid), MessagePlace>,
    changes: BTreeMap<(RoomId, u64), u64>,
}

impl HistoryStore for MemoryHistory {
    fn put(&mut self, room: &RoomId, entry: &RoomEntry) -> Result<(), HistoryError> {
        self.entries.insert((room.clone(), entry.seq), entry.clone());
        Ok(())
    }

    fn entry(&self, room: &RoomId, seq: u64) -> Result<Option<RoomEntry>, HistoryError> {
        Ok(self.entries.get(&(room.clone(), seq)).cloned())
    }

    fn range(
        &self,
        room: &RoomId,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<RoomEntry>, HistoryError> {
        if from > to {
            return Ok(Vec::new());
        }
        let span = (room.clone(), from)..=(room.clone(), to);
        Ok(self.entries.range(span).take(limit).map(|(_, e)| e.clone()).collect())
    }

    fn put_message_id(
        &mut self,
        author: UserId,
        msg_id: Uuid,
        place: &MessagePlace,
    ) -> Result<(), HistoryError> {
        self.message_ids.insert((author, msg_id), place.clone());
        Ok(())
    }

    fn message_id(
        &self,
        author: UserId,
        msg_id: Uuid,
    ) -> Result<Option<MessagePlace>, HistoryError> {
        Ok(self.message_ids.get(&(author, msg_id)).cloned())
    }

    fn put_change(&mut self, room: &RoomId, change: u64, seq: u64) -> Result<(), HistoryError> {
        self.changes.insert((room.clone(), change), seq);
        Ok(())
    }

    fn changes(
        &self,
        room: &RoomId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, HistoryError> {
        let Some(from) = after.checked_add(1) else { return Ok(Vec::new()) };
        let span = (room.clone(), from)..=(room.clone(), u64::MAX);
        Ok(self.changes.range(span).take(limit).map(|((_, c), s)| (*c, *s)).collect())
    }

    fn latest_change(&self, room: &RoomId) -> Result<Option<u64>, HistoryError> {
        let span = (room.clone(), 0)..=(room.clone(), u64::MAX);
        Ok(self.changes.range(span).next_back().map(|((_, c), _)| *c))
    }

    fn clear(&mut self) -> Result<(), HistoryError> {
        self.entries.clear();
        self.message_ids.clear();
        self.changes.clear();
        Ok(())
    }

    fn is_durable(&self) -> bool {
        false
    }

    fn commit(&mut self, _point: &Committed) -> Result<(), HistoryError> {
        Ok(())
    }

    fn committed(&self) -> Result<Option<Committed>, HistoryError> {
        Ok(None)
    }
}
