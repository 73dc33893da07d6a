//! An order-independent hash of a changing collection, kept current on each
//! insert and removal, so the state digest covers large collections (the
//! history, the replay window) without encoding them every time.

use serde::{Deserialize, Serialize};

/// A multiset hash: the wrapping sum of the BLAKE3 hashes of each member's
/// postcard encoding, four 64-bit words wide. Adding then removing a member
/// restores the previous value, and the order of additions does not matter,
/// so replicas that reach the same collection by different paths (applying
/// entries, restoring a snapshot) agree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MultisetHash([u64; 4]);

impl MultisetHash {
    fn words<T: Serialize + ?Sized>(member: &T) -> [u64; 4] {
        // Encoded straight into the hasher: no buffer per member.
        let hash =
            postcard::serialize_with_flavor(member, HashSink::default()).expect("members encode");
        let mut words = [0u64; 4];
        for (w, chunk) in words.iter_mut().zip(hash.as_bytes().chunks_exact(8)) {
            *w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        }
        words
    }

    pub(crate) fn add<T: Serialize + ?Sized>(&mut self, member: &T) {
        for (s, w) in self.0.iter_mut().zip(Self::words(member)) {
            *s = s.wrapping_add(w);
        }
    }

    pub(crate) fn remove<T: Serialize + ?Sized>(&mut self, member: &T) {
        for (s, w) in self.0.iter_mut().zip(Self::words(member)) {
            *s = s.wrapping_sub(w);
        }
    }
}

/// A postcard output that hashes what it is given instead of keeping it.
#[derive(Default)]
struct HashSink(blake3::Hasher);

impl postcard::ser_flavors::Flavor for HashSink {
    type Output = blake3::Hash;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.update(&[byte]);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.update(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<blake3::Hash> {
        Ok(self.0.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im::identity::UserId;
    use crate::im::protocol::{EntryKind, RoomEntry, RoomId};

    #[test]
    fn the_sum_adds_the_blake3_of_each_encoded_member() {
        let room = RoomId::Group("r".into());
        let entry = RoomEntry {
            seq: 3,
            time_ms: 9,
            author: UserId([4; 32]),
            kind: EntryKind::Renamed { title: "t".into() },
        };
        let hash = blake3::hash(&postcard::to_allocvec(&(&room, &entry)).unwrap());
        let expected: Vec<u64> = hash
            .as_bytes()
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let mut sum = MultisetHash::default();
        sum.add(&(&room, &entry));
        assert_eq!(sum.0.to_vec(), expected);
        sum.remove(&(&room, &entry));
        assert_eq!(sum, MultisetHash::default());
    }

    #[test]
    fn the_order_of_additions_does_not_matter() {
        let (mut ab, mut ba) = (MultisetHash::default(), MultisetHash::default());
        ab.add("a");
        ab.add("b");
        ba.add("b");
        ba.add("a");
        assert_eq!(ab, ba);
        ab.remove("a");
        let mut b = MultisetHash::default();
        b.add("b");
        assert_eq!(ab, b);
        assert_ne!(b, MultisetHash::default());
    }
}
