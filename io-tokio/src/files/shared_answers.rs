//! The answers a client serving an upload computed lately, or is
//! computing, shared by the replicas that ask for the same groups at about
//! the same time.
//!
//! Why: the CLI has a majority of replicas fetch an upload from it at once
//! (`kith file send`), and their downloads ask for the same ranges in the
//! same order. Without this each range was read from the file, checked
//! against the hash tree and encoded once per replica; with it, once.
//!
//! Rules:
//! - An answer is computed by the first asker; one that asks meanwhile
//!   waits for it rather than computing it again.
//! - Only answers carrying groups are kept: any other (the file changed
//!   under the upload, say) is given to the askers of that moment and then
//!   forgotten, so a later ask tries again.
//! - At most [`SHARED_ANSWERS_MAX`] answers are kept (each at most one
//!   chunk response, about 260 KiB: 4 MiB), the oldest forgotten first.

use bytes::Bytes;
use kith_core::files::FileId;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// Answers kept at most: a replica's window of requests in flight (the
/// two ask for the same ranges at about the same time). 32 raised the
/// sender's peak memory by 7-10 MiB for no gain measured.
pub const SHARED_ANSWERS_MAX: usize = 16;

/// A file's range of groups.
type Key = (FileId, u64, u64);

/// One answer: its encoded frame, and whether it carries groups.
type Cell = Arc<OnceCell<(Bytes, bool)>>;

/// Recent answers, by file and range.
#[derive(Debug, Default)]
pub struct SharedAnswers {
    cells: Mutex<Cells>,
}

#[derive(Debug, Default)]
struct Cells {
    by_key: BTreeMap<Key, Cell>,
    /// Keys, oldest first.
    order: VecDeque<Key>,
}

impl SharedAnswers {
    /// The answer for `groups` of `file`: one another asker computed or is
    /// computing, or else `make`'s, which says whether it carries groups.
    pub async fn answer<F, Fut>(&self, file: FileId, groups: Range<u64>, make: F) -> (Bytes, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = (Bytes, bool)>,
    {
        let key = (file, groups.start, groups.end);
        let cell = self.cell(key);
        let answer = cell.get_or_init(make).await.clone();
        if !answer.1 {
            let mut cells = self.cells.lock().expect("no asker panicked");
            if cells.by_key.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                cells.by_key.remove(&key);
                cells.order.retain(|k| *k != key);
            }
        }
        answer
    }

    /// The cell for `key`, made (and the oldest forgotten) if there is none.
    fn cell(&self, key: Key) -> Cell {
        let mut cells = self.cells.lock().expect("no asker panicked");
        if let Some(cell) = cells.by_key.get(&key) {
            return cell.clone();
        }
        let cell = Cell::default();
        cells.by_key.insert(key, cell.clone());
        cells.order.push_back(key);
        while cells.order.len() > SHARED_ANSWERS_MAX {
            if let Some(old) = cells.order.pop_front() {
                cells.by_key.remove(&old);
            }
        }
        cell
    }

    /// Answers kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.cells.lock().expect("no asker panicked").by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn file() -> FileId {
        FileId { root: [7; 32], size_bytes: 1 << 20 }
    }

    #[tokio::test]
    async fn askers_at_the_same_time_share_one_computation() {
        let shared = SharedAnswers::default();
        let made = AtomicUsize::new(0);
        let make = || async {
            made.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
            (Bytes::from_static(b"groups"), true)
        };
        let (a, b) =
            tokio::join!(shared.answer(file(), 0..16, make), shared.answer(file(), 0..16, make));
        assert_eq!((a.0.as_ref(), b.0.as_ref()), (&b"groups"[..], &b"groups"[..]));
        assert_eq!(made.load(Ordering::Relaxed), 1);
        // Later askers are answered from what was kept; another range is not.
        shared.answer(file(), 0..16, make).await;
        shared.answer(file(), 16..32, make).await;
        assert_eq!(made.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn answers_without_groups_are_not_kept() {
        let shared = SharedAnswers::default();
        let made = AtomicUsize::new(0);
        let refuse = || async {
            made.fetch_add(1, Ordering::Relaxed);
            (Bytes::from_static(b"not here"), false)
        };
        assert!(!shared.answer(file(), 0..16, refuse).await.1);
        assert!(!shared.answer(file(), 0..16, refuse).await.1);
        assert_eq!(made.load(Ordering::Relaxed), 2);
        assert_eq!(shared.len(), 0);
    }

    #[tokio::test]
    async fn at_most_the_limit_is_kept_and_the_oldest_goes_first() {
        let shared = SharedAnswers::default();
        let made = AtomicUsize::new(0);
        let make = || async {
            made.fetch_add(1, Ordering::Relaxed);
            (Bytes::from_static(b"groups"), true)
        };
        for start in 0..=SHARED_ANSWERS_MAX as u64 {
            shared.answer(file(), start..start + 1, make).await;
        }
        assert_eq!(shared.len(), SHARED_ANSWERS_MAX);
        let before = made.load(Ordering::Relaxed);
        shared.answer(file(), 1..2, make).await;
        assert_eq!(made.load(Ordering::Relaxed), before, "a recent answer is kept");
        shared.answer(file(), 0..1, make).await;
        assert_eq!(made.load(Ordering::Relaxed), before + 1, "the oldest was forgotten");
    }
}
