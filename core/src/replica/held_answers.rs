//! Client answers held back per file until something about the file
//! changes or their time runs out: a `SendFile`'s success until its content
//! is on a majority (`file_sends`), a `StoreFile`'s "still storing" until
//! the content is stored (`store_waits`). Bounded by its users, which
//! check [`HeldAnswers::len`] before holding more.

use super::asker::Asker;
use crate::files::FileId;
use crate::time::Instant;
use std::collections::BTreeMap;

/// Held answers: file -> (asker, what is kept for the answer, given up at).
#[derive(Debug)]
pub(super) struct HeldAnswers<V> {
    held: BTreeMap<FileId, Vec<(Asker, V, Instant)>>,
}

impl<V> Default for HeldAnswers<V> {
    fn default() -> HeldAnswers<V> {
        HeldAnswers { held: BTreeMap::new() }
    }
}

impl<V> HeldAnswers<V> {
    /// Answers held, over all files.
    pub(super) fn len(&self) -> usize {
        self.held.values().map(Vec::len).sum()
    }

    /// Holds `asker`'s answer about `file` until `until` at the latest.
    pub(super) fn hold(&mut self, file: FileId, asker: Asker, kept: V, until: Instant) {
        self.held.entry(file).or_default().push((asker, kept, until));
    }

    /// The files answers are held for, in order.
    pub(super) fn files(&self) -> Vec<FileId> {
        self.held.keys().copied().collect()
    }

    /// Every answer held about `file`, released.
    pub(super) fn take(&mut self, file: FileId) -> Vec<(Asker, V)> {
        let held = self.held.remove(&file).unwrap_or_default();
        held.into_iter().map(|(asker, kept, _)| (asker, kept)).collect()
    }

    /// The answers whose time ran out by `now`, released.
    pub(super) fn take_expired(&mut self, now: Instant) -> Vec<(FileId, Asker, V)> {
        let mut late = Vec::new();
        for (file, waiting) in &mut self.held {
            for (asker, kept, until) in std::mem::take(waiting) {
                if until > now {
                    waiting.push((asker, kept, until));
                } else {
                    late.push((*file, asker, kept));
                }
            }
        }
        self.held.retain(|_, w| !w.is_empty());
        late
    }

    /// When the first held answer runs out.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.held.values().flatten().map(|(_, _, until)| *until).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::asker::{AskerId, AskerKind};

    fn asker(n: u64) -> Asker {
        Asker { id: AskerId(n), kind: AskerKind::Client { request_id: n } }
    }

    #[test]
    fn answers_leave_when_taken_or_late_and_the_rest_stay() {
        let (a, b) = (FileId::of(b"a"), FileId::of(b"b"));
        let at = Instant::from_millis;
        let mut held = HeldAnswers::default();
        held.hold(a, asker(1), 'x', at(10));
        held.hold(a, asker(2), 'y', at(30));
        held.hold(b, asker(3), 'z', at(20));
        assert_eq!((held.len(), held.next_deadline()), (3, Some(at(10))));
        let late: Vec<u64> = held.take_expired(at(20)).iter().map(|(_, a, _)| a.id.0).collect();
        let mut expected = vec![1, 3];
        if b < a {
            expected.reverse();
        }
        assert_eq!(late, expected, "in file order, each file's in the order held");
        assert_eq!((held.len(), held.files()), (1, vec![a]));
        assert_eq!(held.take(a), vec![(asker(2), 'y')]);
        assert_eq!((held.len(), held.next_deadline()), (0, None));
    }
}
