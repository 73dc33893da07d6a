//! A set of chunk groups as a bitmap: what a download holds, what is in
//! flight. One bit a group, so the largest file's set is 32 KiB.

use std::ops::Range;

/// Groups `0..len` of one file, each present or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSet {
    words: Vec<u64>,
    len: u64,
    count: u64,
}

impl GroupSet {
    /// No group of `len` present.
    pub fn empty(len: u64) -> GroupSet {
        GroupSet { words: vec![0; len.div_ceil(64) as usize], len, count: 0 }
    }

    /// The groups the set speaks of.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the set speaks of no group at all (an empty file).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many groups are present.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether every group is present.
    pub fn is_full(&self) -> bool {
        self.count == self.len
    }

    /// Whether `group` is present (false past the end).
    pub fn contains(&self, group: u64) -> bool {
        group < self.len && self.words[(group / 64) as usize] & (1 << (group % 64)) != 0
    }

    /// Marks `group` present; false if it already was. Panics past the end:
    /// callers check ranges against the geometry first.
    pub fn insert(&mut self, group: u64) -> bool {
        assert!(group < self.len, "group {group} past the end ({})", self.len);
        let word = &mut self.words[(group / 64) as usize];
        let bit = 1 << (group % 64);
        let fresh = *word & bit == 0;
        *word |= bit;
        self.count += u64::from(fresh);
        fresh
    }

    /// Marks `group` absent; false if it already was.
    pub fn remove(&mut self, group: u64) -> bool {
        if group >= self.len {
            return false;
        }
        let word = &mut self.words[(group / 64) as usize];
        let bit = 1 << (group % 64);
        let present = *word & bit != 0;
        *word &= !bit;
        self.count -= u64::from(present);
        present
    }

    /// Whether any group of `groups` is present.
    pub fn any(&self, groups: &Range<u64>) -> bool {
        groups.clone().any(|g| self.contains(g))
    }

    /// The first run of groups at or after `from` that is absent both here
    /// and in `also`, at most `max` long; wraps around to the start once.
    pub fn first_gap(&self, also: &GroupSet, from: u64, max: u64) -> Option<Range<u64>> {
        debug_assert_eq!(self.len, also.len);
        let absent = |g: u64| !self.contains(g) && !also.contains(g);
        let from = if from >= self.len { 0 } else { from };
        let start = (from..self.len).chain(0..from).find(|g| absent(*g))?;
        let mut end = start + 1;
        while end < self.len && end - start < max && absent(end) {
            end += 1;
        }
        Some(start..end)
    }

    /// The bitmap, little-endian words, trailing bits zero.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// The set `to_bytes` wrote for `len` groups; `None` when the length is
    /// wrong or a bit past the end is set.
    pub fn from_bytes(len: u64, bytes: &[u8]) -> Option<GroupSet> {
        let words_len = len.div_ceil(64) as usize;
        if bytes.len() != words_len * 8 {
            return None;
        }
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")))
            .collect();
        let tail_bits = len % 64;
        if tail_bits != 0 && words.last().is_some_and(|w| w >> tail_bits != 0) {
            return None;
        }
        let count = words.iter().map(|w| u64::from(w.count_ones())).sum();
        Some(GroupSet { words, len, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn gaps_skip_what_either_set_holds_and_wrap_once() {
        let mut have = GroupSet::empty(10);
        let mut flying = GroupSet::empty(10);
        for g in [0, 1, 5] {
            have.insert(g);
        }
        flying.insert(2);
        assert_eq!(have.first_gap(&flying, 0, 16), Some(3..5));
        assert_eq!(have.first_gap(&flying, 0, 1), Some(3..4));
        assert_eq!(have.first_gap(&flying, 6, 16), Some(6..10));
        assert_eq!(have.first_gap(&flying, 10, 16), Some(3..5));
        for g in [3, 4, 6, 7, 8, 9] {
            have.insert(g);
        }
        assert_eq!(have.first_gap(&flying, 0, 16), None);
        assert!(!have.is_full());
        assert_eq!(GroupSet::empty(0).first_gap(&GroupSet::empty(0), 0, 4), None);
    }

    #[test]
    fn bytes_with_a_bit_past_the_end_or_the_wrong_length_are_refused() {
        assert!(GroupSet::from_bytes(3, &[0b1000, 0, 0, 0, 0, 0, 0, 0]).is_none());
        assert!(GroupSet::from_bytes(3, &[0b111]).is_none());
        assert!(GroupSet::from_bytes(3, &[0b111, 0, 0, 0, 0, 0, 0, 0]).is_some_and(|s| s.is_full()));
        assert!(GroupSet::from_bytes(64, &[0xff; 8]).is_some_and(|s| s.is_full()));
    }

    proptest! {
        #[test]
        fn a_set_is_what_was_inserted_and_survives_its_bytes(
            len in 0u64..300,
            ops in proptest::collection::vec((any::<bool>(), 0u64..300), 0..200),
        ) {
            let mut set = GroupSet::empty(len);
            let mut model = std::collections::BTreeSet::new();
            for (add, g) in ops {
                let g = if len == 0 { continue } else { g % len };
                if add {
                    prop_assert_eq!(set.insert(g), model.insert(g));
                } else {
                    prop_assert_eq!(set.remove(g), model.remove(&g));
                }
            }
            prop_assert_eq!(set.count(), model.len() as u64);
            for g in 0..len {
                prop_assert_eq!(set.contains(g), model.contains(&g));
            }
            prop_assert_eq!(GroupSet::from_bytes(len, &set.to_bytes()), Some(set));
        }
    }
}
