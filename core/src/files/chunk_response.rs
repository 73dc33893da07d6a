//! A chunk response: some consecutive chunk groups of a file with the hash
//! pairs that tie them to the file's root, in bao-tree's pre-order encoding.
//! The receiver checks every group against the root as it decodes it, so a
//! corrupt or forged group is refused before anything is written, with no
//! other part of the file at hand.

use super::geometry::Geometry;
use super::hash_pairs::HashPairs;
use crate::limits::{CHUNK_GROUP_BYTES, CHUNK_RESPONSE_BYTES_MAX};
use bao_tree::io::outboard::PostOrderOutboard;
use bao_tree::io::sync::{encode_ranges_validated, DecodeResponseIter, ReadAt};
use bao_tree::io::{BaoContentItem, DecodeError, EncodeError};
use bao_tree::ChunkRanges;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::ops::Range;

/// Groups `first_group..first_group + group_count` of a file, encoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkResponse {
    /// The first group carried.
    pub first_group: u64,
    /// How many consecutive groups (a source may send fewer than asked).
    pub group_count: u64,
    /// bao-tree's pre-order encoding of those groups: parent hash pairs
    /// (64 bytes each) and group bytes, interleaved.
    pub encoded: Bytes,
}

/// Groups that decoded and matched the root: `data` is their bytes, in
/// order, starting at byte `offset` of the file, and `hash_pairs` the
/// parent pairs that proved them, placed for the outboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedGroups {
    /// The groups.
    pub groups: Range<u64>,
    /// Their first byte's position in the file.
    pub offset: u64,
    /// Their bytes.
    pub data: Bytes,
    /// The pairs that proved them.
    pub hash_pairs: HashPairs,
}

/// Why a response (or the whole of it) was refused; nothing of a refused
/// response is written.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkRefusal {
    /// No request of this download is waiting for it (late after a
    /// timeout, or made up).
    #[error("no request is waiting for this response")]
    Unsolicited,
    /// Its request was already answered.
    #[error("this request was already answered")]
    Duplicate,
    /// It carries groups that were not asked for.
    #[error("groups {got:?} were not asked for (asked {asked:?})")]
    OutOfRange {
        /// What the request asked for.
        asked: Range<u64>,
        /// What the response claims to carry.
        got: Range<u64>,
    },
    /// Longer than any honest response.
    #[error("response of {size_bytes} bytes is over the limit of {max} bytes")]
    Oversized {
        /// Its size.
        size_bytes: u64,
        /// [`CHUNK_RESPONSE_BYTES_MAX`].
        max: u64,
    },
    /// It ends before the groups it claims.
    #[error("response ends inside group {group}")]
    Truncated {
        /// The first group it lacks.
        group: u64,
    },
    /// A group or a hash pair does not match the root.
    #[error("group {group} does not match the file's root hash")]
    Corrupt {
        /// The first group that failed.
        group: u64,
    },
    /// Bytes follow the last group it claims.
    #[error("{extra_bytes} bytes follow the last group")]
    TrailingBytes {
        /// How many.
        extra_bytes: u64,
    },
}

/// Why a source could not encode a response from its copy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The groups are not inside the file.
    #[error("groups {groups:?} are not inside the file ({total} groups)")]
    OutOfRange {
        /// What was asked.
        groups: Range<u64>,
        /// The file's group count.
        total: u64,
    },
    /// The stored copy (data or hash tree) does not match the root: it must
    /// be repaired from another source, and nothing of it is sent.
    #[error("the stored copy is damaged near byte {offset}")]
    Damaged {
        /// Where the damage was found.
        offset: u64,
    },
    /// Reading the stored copy failed.
    #[error("reading the stored copy failed: {0}")]
    Io(#[from] std::io::Error),
}

impl ChunkResponse {
    /// Encodes `groups` from a stored copy (`data` and its post-order
    /// `outboard`), checking every group against the root on the way, so
    /// that a damaged copy is never served.
    pub fn encode(
        geometry: &Geometry,
        groups: Range<u64>,
        data: impl ReadAt,
        outboard: impl ReadAt,
    ) -> Result<ChunkResponse, ServeError> {
        let at = geometry.groups_bytes(&groups).start;
        Self::encode_with(geometry, groups, outboard, |outboard, ranges, encoded| {
            encode_ranges_validated(data, outboard, ranges, encoded).map_err(|e| match e {
                EncodeError::Io(e) => ServeError::Io(e),
                EncodeError::LeafHashMismatch(chunk) => {
                    ServeError::Damaged { offset: chunk.to_bytes() }
                }
                _ => ServeError::Damaged { offset: at },
            })
        })
    }

    /// Encodes `groups` from a stored copy without checking them against
    /// the root: what a store that forgot to check would serve (the
    /// `serve_unchecked_copies` bug switch; never in a release build).
    #[cfg(feature = "bug-switches")]
    pub fn encode_unchecked(
        geometry: &Geometry,
        groups: Range<u64>,
        data: &[u8],
        outboard: &[u8],
    ) -> Result<ChunkResponse, ServeError> {
        let at = geometry.groups_bytes(&groups).start;
        Self::encode_with(geometry, groups, outboard, |outboard, ranges, encoded| {
            bao_tree::io::sync::encode_ranges(data, outboard, ranges, encoded)
                .map_err(|_| ServeError::Damaged { offset: at })
        })
    }

    /// The response for `groups` (inside the file), its bytes written by
    /// `encode` from the copy's outboard.
    fn encode_with<O: ReadAt>(
        geometry: &Geometry,
        groups: Range<u64>,
        outboard: O,
        encode: impl FnOnce(PostOrderOutboard<O>, &ChunkRanges, &mut Vec<u8>) -> Result<(), ServeError>,
    ) -> Result<ChunkResponse, ServeError> {
        if !geometry.contains(&groups) {
            return Err(ServeError::OutOfRange { groups, total: geometry.groups() });
        }
        let outboard = PostOrderOutboard {
            root: geometry.file().hash(),
            tree: geometry.tree(),
            data: outboard,
        };
        // The groups' bytes and their pairs: one per group inside the
        // range, and the path up to the root (at most 64 levels).
        let bytes = geometry.groups_bytes(&groups);
        let pairs = (groups.end - groups.start + 64) * crate::files::HASH_PAIR_BYTES as u64;
        let mut encoded = Vec::with_capacity((bytes.end - bytes.start + pairs) as usize);
        encode(outboard, &geometry.chunk_ranges(&groups), &mut encoded)?;
        Ok(ChunkResponse {
            first_group: groups.start,
            group_count: groups.end - groups.start,
            encoded: Bytes::from(encoded),
        })
    }

    /// The groups it claims to carry.
    pub fn groups(&self) -> Range<u64> {
        self.first_group..self.first_group.saturating_add(self.group_count)
    }

    /// Decodes and verifies a response to a request for `asked`.
    pub fn decode(
        &self,
        geometry: &Geometry,
        asked: &Range<u64>,
    ) -> Result<VerifiedGroups, ChunkRefusal> {
        let got = self.groups();
        if got.is_empty() || got.start < asked.start || got.end > asked.end {
            return Err(ChunkRefusal::OutOfRange { asked: asked.clone(), got });
        }
        let size_bytes = self.encoded.len() as u64;
        if size_bytes > CHUNK_RESPONSE_BYTES_MAX {
            return Err(ChunkRefusal::Oversized { size_bytes, max: CHUNK_RESPONSE_BYTES_MAX });
        }
        let bytes = geometry.groups_bytes(&got);
        let ranges = geometry.chunk_ranges(&got);
        let mut reader = Cursor::new(&self.encoded[..]);
        let mut data = BytesMut::with_capacity((bytes.end - bytes.start) as usize);
        let mut parents = Vec::new();
        let items =
            DecodeResponseIter::new(geometry.file().hash(), geometry.tree(), &mut reader, &ranges);
        for item in items {
            let at = bytes.start + data.len() as u64;
            match item.map_err(|e| refusal(e, at))? {
                BaoContentItem::Parent(parent) => parents.push(parent),
                BaoContentItem::Leaf(leaf) => {
                    // The pre-order walk yields a contiguous range's groups in order.
                    assert_eq!(leaf.offset, at, "bao-tree yields leaves in order");
                    data.extend_from_slice(&leaf.data);
                }
            }
        }
        let extra_bytes = size_bytes - reader.position();
        if extra_bytes > 0 {
            return Err(ChunkRefusal::TrailingBytes { extra_bytes });
        }
        assert_eq!(
            data.len() as u64,
            bytes.end - bytes.start,
            "a complete decode covers its range"
        );
        let hash_pairs = HashPairs::placed(geometry, parents);
        Ok(VerifiedGroups { groups: got, offset: bytes.start, data: data.freeze(), hash_pairs })
    }
}

/// The refusal for a decode error met while reading the group at byte `at`.
fn refusal(e: DecodeError, at: u64) -> ChunkRefusal {
    match e {
        DecodeError::LeafHashMismatch(chunk) => {
            ChunkRefusal::Corrupt { group: chunk.to_bytes() / CHUNK_GROUP_BYTES }
        }
        DecodeError::ParentHashMismatch(_) => {
            ChunkRefusal::Corrupt { group: at / CHUNK_GROUP_BYTES }
        }
        DecodeError::LeafNotFound(_) | DecodeError::ParentNotFound(_) | DecodeError::Io(_) => {
            ChunkRefusal::Truncated { group: at / CHUNK_GROUP_BYTES }
        }
    }
}
