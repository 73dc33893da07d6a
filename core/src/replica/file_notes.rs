//! A note per file, with when it was taken; at most a fixed number of
//! them, the oldest forgotten first (what a replica remembers of uploads
//! that failed, and of copies whose holder record is not applied yet).

use crate::files::FileId;
use crate::time::Instant;
use std::collections::BTreeMap;
use std::time::Duration;

/// Notes about files, bounded.
#[derive(Clone, Debug)]
pub(super) struct FileNotes<V> {
    notes: BTreeMap<FileId, (Instant, V)>,
    max: usize,
}

impl<V> FileNotes<V> {
    /// No notes; at most `max` at once.
    pub(super) fn new(max: usize) -> FileNotes<V> {
        assert!(max > 0, "a bound of no notes keeps nothing");
        FileNotes { notes: BTreeMap::new(), max }
    }

    /// Notes `note` about `file` at `now`, forgetting the oldest note when
    /// the bound is reached.
    pub(super) fn insert(&mut self, now: Instant, file: FileId, note: V) {
        if self.notes.len() >= self.max {
            let oldest = self.notes.iter().min_by_key(|(_, (at, _))| *at).map(|(f, _)| *f);
            if let Some(oldest) = oldest {
                self.notes.remove(&oldest);
            }
        }
        self.notes.insert(file, (now, note));
    }

    /// Takes the note about `file`, if any.
    pub(super) fn remove(&mut self, file: FileId) -> Option<V> {
        self.notes.remove(&file).map(|(_, note)| note)
    }

    /// Whether there is a note about `file`.
    pub(super) fn contains(&self, file: FileId) -> bool {
        self.notes.contains_key(&file)
    }

    /// The files noted, in id order.
    pub(super) fn files(&self) -> Vec<FileId> {
        self.notes.keys().copied().collect()
    }

    /// Forgets the notes taken `keep` or longer before `now`.
    pub(super) fn forget_older_than(&mut self, now: Instant, keep: Duration) {
        self.notes.retain(|_, (at, _)| now.saturating_since(*at) < keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_note_goes_first_and_old_ones_are_forgotten() {
        let file = |n: u8| FileId { root: [n; 32], size_bytes: 1 };
        let at = Instant::from_millis;
        let mut notes = FileNotes::new(2);
        notes.insert(at(20), file(1), "b");
        notes.insert(at(10), file(2), "a");
        notes.insert(at(30), file(3), "c");
        assert_eq!(notes.files(), vec![file(1), file(3)]);
        notes.forget_older_than(at(40), Duration::from_millis(15));
        assert!(!notes.contains(file(1)) && notes.contains(file(3)));
        assert_eq!(notes.remove(file(3)), Some("c"));
        assert_eq!(notes.remove(file(3)), None);
    }
}
