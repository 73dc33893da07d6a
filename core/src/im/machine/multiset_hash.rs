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
/// Encodes into a small buffer on the stack and hashes it a block at a
/// time: postcard emits a member a few bytes at a time (every varint, every
/// tag), and a BLAKE3 update per piece cost more than the hashing itself.
struct HashSink {
    hasher: blake3::Hasher,
    buffer: [u8; HASH_SINK_BUFFER_BYTES],
    filled: usize,
}

/// Most members (room entries, replay records) fit in one buffer.
const HASH_SINK_BUFFER_BYTES: usize = 512;

impl Default for HashSink {
    fn default() -> Self {
        HashSink { hasher: blake3::Hasher::new(), buffer: [0; HASH_SINK_BUFFER_BYTES], filled: 0 }
    }
}

impl HashSink {
    fn flush(&mut self) {
        self.hasher.update(&self.buffer[..self.filled]);
        self.filled = 0;
    }
}

impl postcard::ser_flavors::Flavor for HashSink {
    type Output = blake3::Hash;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if self.filled == HASH_SINK_BUFFER_BYTES {
            self.flush();
        }
        self.buffer[self.filled] = byte;
        self.filled += 1;
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        if bytes.len() > HASH_SINK_BUFFER_BYTES - self.filled {
            self.flush();
        }
        if bytes.len() >= HASH_SINK_BUFFER_BYTES {
            self.hasher.update(bytes);
        } else {
            self.buffer[self.filled..self.filled + bytes.len()].copy_from_slice(bytes);
            self.filled += bytes.len();
        }
        Ok(())
    }

    fn finalize(mut self) -> postcard::Result<blake3::Hash> {
        self.flush();
        Ok(self.hasher.finalize())
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
    fn members_longer_than_the_buffer_hash_as_their_whole_encoding() {
        let b = HASH_SINK_BUFFER_BYTES;
        for len in [0, 1, b - 3, b - 2, b - 1, b, b + 1, 2 * b + 5, 5000] {
            let member = (7u64, "x".repeat(len), 300u32, vec![9u8; len / 2]);
            let hash = blake3::hash(&postcard::to_allocvec(&member).unwrap());
            assert_eq!(
                MultisetHash::words(&member).map(u64::to_le_bytes).concat(),
                hash.as_bytes(),
                "{len}"
            );
        }
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
