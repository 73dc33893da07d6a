//! The replica's history store: room entries and message ids in a redb
//! database (`DIR/history.redb`), so a replica's memory does not grow with
//! its history.
//!
//! One write transaction stays open from one [`HistoryStore::commit`] to
//! the next and serves reads too, so the state machine sees its own writes;
//! redb writes its pages out to free space in the file as its cache fills
//! (copy on write), so memory stays bounded, and a stop at any point leaves
//! the database exactly as of the last commit, as the core's durability
//! contract requires. Non-durable intermediate commits would break that:
//! redb makes them durable when the database closes, measured here (see the
//! test `reopening_finds_exactly_the_last_commit`). The commit point itself
//! (index, summaries, snapshot metadata) lives in the `meta` table.

use kith_core::im::history::{Committed, HistoryError, HistoryStore, MessagePlace};
use kith_core::im::identity::UserId;
use kith_core::im::protocol::{RoomEntry, RoomId};
use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// `postcard(room) ++ seq (big-endian)` -> `postcard(entry)`.
const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
/// `author ++ msg_id` -> `postcard((room, seq))`.
const MESSAGE_IDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("message_ids");
/// `postcard(room) ++ change (big-endian)` -> `seq (big-endian)`.
const CHANGES: TableDefinition<&[u8], u64> = TableDefinition::new("changes");
/// `"committed"` -> `postcard(CommitRecord)`.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const COMMITTED_KEY: &str = "committed";
/// redb's page cache.
const CACHE_BYTES: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
struct CommitRecord {
    index: u64,
    summaries: Vec<u8>,
    meta: Vec<u8>,
}

/// History in `DIR/history.redb`.
pub struct HistoryDb {
    path: PathBuf,
    db: Database,
    /// Always `Some` between calls.
    txn: Option<WriteTransaction>,
}

impl Drop for HistoryDb {
    fn drop(&mut self) {
        // Whatever was not committed is abandoned, never committed on close.
        if let Some(txn) = self.txn.take() {
            let _ = txn.abort();
        }
    }
}

impl std::fmt::Debug for HistoryDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryDb").field("path", &self.path).finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl Fn(redb::Error) -> HistoryError + '_ {
    move |e| HistoryError::Io(format!("{}: {e}", path.display()))
}

fn entry_key(room: &RoomId, seq: u64) -> Vec<u8> {
    let mut key = postcard::to_allocvec(room).expect("room ids encode");
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn id_key(author: UserId, msg_id: Uuid) -> [u8; 48] {
    let mut key = [0u8; 48];
    key[..32].copy_from_slice(&author.0);
    key[32..].copy_from_slice(msg_id.as_bytes());
    key
}

/// The change number at the end of a `CHANGES` key.
fn change_of(key: &[u8]) -> Result<u64, HistoryError> {
    let number: [u8; 8] =
        key[key.len().saturating_sub(8)..].try_into().map_err(|e| corrupt("a change key", e))?;
    Ok(u64::from_be_bytes(number))
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> HistoryError {
    HistoryError::Corrupt(format!("{what}: {e}"))
}

impl HistoryDb {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<HistoryDb, HistoryError> {
        let err = io(path);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| err(e.into()))?;
        let mut store = HistoryDb { path: path.to_path_buf(), db, txn: None };
        store.begin()?;
        Ok(store)
    }

    fn begin(&mut self) -> Result<(), HistoryError> {
        let err = io(&self.path);
        let txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        // Opening creates the tables on first use.
        for table in [ENTRIES, MESSAGE_IDS] {
            txn.open_table(table).map_err(|e| err(e.into()))?;
        }
        txn.open_table(CHANGES).map_err(|e| err(e.into()))?;
        txn.open_table(META).map_err(|e| err(e.into()))?;
        self.txn = Some(txn);
        Ok(())
    }

    /// The open transaction; none after a failed commit (the node stops).
    fn txn(&self) -> Result<&WriteTransaction, HistoryError> {
        self.txn.as_ref().ok_or_else(|| {
            HistoryError::Io(format!("{}: stopped after an earlier failure", self.path.display()))
        })
    }

    /// Commits the open transaction durably and opens the next.
    fn end(&mut self) -> Result<(), HistoryError> {
        let Some(mut txn) = self.txn.take() else {
            return Err(HistoryError::Io(format!("{}: no open transaction", self.path.display())));
        };
        let failed = |e: &dyn std::fmt::Display| {
            HistoryError::Io(format!("{}: committing: {e}", self.path.display()))
        };
        txn.set_durability(Durability::Immediate).map_err(|e| failed(&e))?;
        // Without it, redb reopens a database after a crash by walking all
        // of it to rebuild its allocator state: a replica holding 10 million
        // messages (4 GiB) took 13 s to restart after SIGKILL, against 1.5 s
        // at 1 million (docs/PERFORMANCE.md, section 4). With it, each commit
        // saves that state (commits come once per snapshot) and recovery
        // reads it back.
        txn.set_quick_repair(true);
        txn.commit().map_err(|e| failed(&e))?;
        self.begin()
    }
}

impl HistoryStore for HistoryDb {
    fn put(&mut self, room: &RoomId, entry: &RoomEntry) -> Result<(), HistoryError> {
        let value = postcard::to_allocvec(entry).expect("entries encode");
        {
            let err = io(&self.path);
            let mut table = self.txn()?.open_table(ENTRIES).map_err(|e| err(e.into()))?;
            let key = entry_key(room, entry.seq);
            table.insert(key.as_slice(), value.as_slice()).map_err(|e| err(e.into()))?;
        }
        Ok(())
    }

    fn entry(&self, room: &RoomId, seq: u64) -> Result<Option<RoomEntry>, HistoryError> {
        let err = io(&self.path);
        let table = self.txn()?.open_table(ENTRIES).map_err(|e| err(e.into()))?;
        let key = entry_key(room, seq);
        let Some(value) = table.get(key.as_slice()).map_err(|e| err(e.into()))? else {
            return Ok(None);
        };
        postcard::from_bytes(value.value()).map(Some).map_err(|e| corrupt("an entry", e))
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
        let err = io(&self.path);
        let table = self.txn()?.open_table(ENTRIES).map_err(|e| err(e.into()))?;
        let (low, high) = (entry_key(room, from), entry_key(room, to));
        let mut out = Vec::new();
        for item in table.range(low.as_slice()..=high.as_slice()).map_err(|e| err(e.into()))? {
            if out.len() == limit {
                break;
            }
            let (_, value) = item.map_err(|e| err(e.into()))?;
            out.push(postcard::from_bytes(value.value()).map_err(|e| corrupt("an entry", e))?);
        }
        Ok(out)
    }

    fn put_message_id(
        &mut self,
        author: UserId,
        msg_id: Uuid,
        place: &MessagePlace,
    ) -> Result<(), HistoryError> {
        let value = postcard::to_allocvec(place).expect("places encode");
        {
            let err = io(&self.path);
            let mut table = self.txn()?.open_table(MESSAGE_IDS).map_err(|e| err(e.into()))?;
            let key = id_key(author, msg_id);
            table.insert(key.as_slice(), value.as_slice()).map_err(|e| err(e.into()))?;
        }
        Ok(())
    }

    fn message_id(
        &self,
        author: UserId,
        msg_id: Uuid,
    ) -> Result<Option<MessagePlace>, HistoryError> {
        let err = io(&self.path);
        let table = self.txn()?.open_table(MESSAGE_IDS).map_err(|e| err(e.into()))?;
        let key = id_key(author, msg_id);
        let Some(value) = table.get(key.as_slice()).map_err(|e| err(e.into()))? else {
            return Ok(None);
        };
        postcard::from_bytes(value.value()).map(Some).map_err(|e| corrupt("a message id", e))
    }

    fn put_change(&mut self, room: &RoomId, change: u64, seq: u64) -> Result<(), HistoryError> {
        let err = io(&self.path);
        let mut table = self.txn()?.open_table(CHANGES).map_err(|e| err(e.into()))?;
        let key = entry_key(room, change);
        table.insert(key.as_slice(), seq).map_err(|e| err(e.into()))?;
        Ok(())
    }

    fn changes(
        &self,
        room: &RoomId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, HistoryError> {
        let Some(from) = after.checked_add(1) else { return Ok(Vec::new()) };
        let err = io(&self.path);
        let table = self.txn()?.open_table(CHANGES).map_err(|e| err(e.into()))?;
        let (low, high) = (entry_key(room, from), entry_key(room, u64::MAX));
        let mut out = Vec::new();
        for item in table.range(low.as_slice()..=high.as_slice()).map_err(|e| err(e.into()))? {
            if out.len() == limit {
                break;
            }
            let (key, seq) = item.map_err(|e| err(e.into()))?;
            out.push((change_of(key.value())?, seq.value()));
        }
        Ok(out)
    }

    fn latest_change(&self, room: &RoomId) -> Result<Option<u64>, HistoryError> {
        let err = io(&self.path);
        let table = self.txn()?.open_table(CHANGES).map_err(|e| err(e.into()))?;
        let (low, high) = (entry_key(room, 0), entry_key(room, u64::MAX));
        let mut span = table.range(low.as_slice()..=high.as_slice()).map_err(|e| err(e.into()))?;
        let Some(item) = span.next_back() else { return Ok(None) };
        let (key, _) = item.map_err(|e| err(e.into()))?;
        Ok(Some(change_of(key.value())?))
    }

    fn clear(&mut self) -> Result<(), HistoryError> {
        let err = io(&self.path);
        for table in [ENTRIES, MESSAGE_IDS] {
            self.txn()?.delete_table(table).map_err(|e| err(e.into()))?;
            self.txn()?.open_table(table).map_err(|e| err(e.into()))?;
        }
        self.txn()?.delete_table(CHANGES).map_err(|e| err(e.into()))?;
        self.txn()?.open_table(CHANGES).map_err(|e| err(e.into()))?;
        Ok(())
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn commit(&mut self, point: &Committed) -> Result<(), HistoryError> {
        let record = CommitRecord {
            index: point.index,
            summaries: point.summaries.clone(),
            meta: point.meta.clone(),
        };
        let value = postcard::to_allocvec(&record).expect("commit records encode");
        {
            let err = io(&self.path);
            let mut table = self.txn()?.open_table(META).map_err(|e| err(e.into()))?;
            table.insert(COMMITTED_KEY, value.as_slice()).map_err(|e| err(e.into()))?;
        }
        self.end()
    }

    fn committed(&self) -> Result<Option<Committed>, HistoryError> {
        let err = io(&self.path);
        let table = self.txn()?.open_table(META).map_err(|e| err(e.into()))?;
        let Some(value) = table.get(COMMITTED_KEY).map_err(|e| err(e.into()))? else {
            return Ok(None);
        };
        let record: CommitRecord =
            postcard::from_bytes(value.value()).map_err(|e| corrupt("the commit record", e))?;
        Ok(Some(Committed { index: record.index, summaries: record.summaries, meta: record.meta }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_core::im::protocol::EntryKind;

    fn entry(seq: u64) -> RoomEntry {
        RoomEntry {
            seq,
            time_ms: seq * 10,
            author: UserId([7; 32]),
            kind: EntryKind::Renamed { title: format!("t{seq}") },
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kith-history-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("history.redb")
    }

    #[test]
    fn reads_see_writes_and_ranges_stay_inside_their_room() {
        let path = scratch("rw");
        let mut db = HistoryDb::open(&path).unwrap();
        let (a, b) = (RoomId::Group("a".into()), RoomId::Group("ab".into()));
        for seq in 1..=5 {
            db.put(&a, &entry(seq)).unwrap();
            db.put(&b, &entry(seq)).unwrap();
        }
        assert_eq!(db.entry(&a, 3).unwrap(), Some(entry(3)));
        assert_eq!(db.entry(&a, 6).unwrap(), None);
        let seqs = |v: Vec<RoomEntry>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(db.range(&a, 2, 4, 10).unwrap()), vec![2, 3, 4]);
        assert_eq!(seqs(db.range(&b, 1, 9, 2).unwrap()), vec![1, 2]);
        let id = Uuid::from_u128(5);
        db.put_message_id(UserId([7; 32]), id, &(a.clone(), 4)).unwrap();
        assert_eq!(db.message_id(UserId([7; 32]), id).unwrap(), Some((a.clone(), 4)));
        for (change, seq) in [(3 << 10, 2), (5 << 10 | 1, 4), (9 << 10, 2)] {
            db.put_change(&a, change, seq).unwrap();
        }
        db.put_change(&b, 4 << 10, 1).unwrap();
        assert_eq!(db.changes(&a, 3 << 10, 10).unwrap(), vec![(5 << 10 | 1, 4), (9 << 10, 2)]);
        assert_eq!(db.changes(&a, 0, 1).unwrap(), vec![(3 << 10, 2)]);
        assert_eq!(db.changes(&b, 0, 10).unwrap(), vec![(4 << 10, 1)]);
        assert_eq!(db.changes(&a, u64::MAX, 10).unwrap(), vec![]);
        assert_eq!(db.latest_change(&a).unwrap(), Some(9 << 10));
        assert_eq!(db.latest_change(&b).unwrap(), Some(4 << 10));
        assert_eq!(db.latest_change(&RoomId::Group("c".into())).unwrap(), None);
        db.clear().unwrap();
        assert_eq!(db.changes(&a, 0, 10).unwrap(), vec![]);
        assert_eq!(db.entry(&a, 3).unwrap(), None);
        assert_eq!(db.message_id(UserId([7; 32]), id).unwrap(), None);
    }

    #[test]
    fn reopening_finds_exactly_the_last_commit() {
        let path = scratch("commit");
        let room = RoomId::Group("r".into());
        {
            let mut db = HistoryDb::open(&path).unwrap();
            assert_eq!(db.committed().unwrap(), None);
            db.put(&room, &entry(1)).unwrap();
            let point = Committed { index: 7, summaries: vec![1, 2], meta: vec![3] };
            db.commit(&point).unwrap();
            // Many writes (more than redb's cache holds at once: 64 KiB
            // values), then a stop without a commit.
            let big = "x".repeat(64 << 10);
            for seq in 2..=2000 {
                let e = RoomEntry { kind: EntryKind::Renamed { title: big.clone() }, ..entry(seq) };
                db.put(&room, &e).unwrap();
            }
        }
        let db = HistoryDb::open(&path).unwrap();
        let point = db.committed().unwrap().unwrap();
        assert_eq!((point.index, point.summaries, point.meta), (7, vec![1, 2], vec![3]));
        assert_eq!(db.entry(&room, 1).unwrap(), Some(entry(1)));
        assert_eq!(db.entry(&room, 2).unwrap(), None, "uncommitted writes are gone");
    }
}
