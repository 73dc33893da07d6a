//! Where a file's chunk groups lie: the one place that turns group numbers
//! into byte ranges and into the chunk ranges bao-tree speaks.

use super::file_id::{FileId, FileIdError};
use crate::limits::{CHUNK_GROUP_BYTES, CHUNK_GROUP_LOG};
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};
use std::ops::Range;

/// bao-tree's name for [`CHUNK_GROUP_BYTES`].
pub(crate) const BLOCK_SIZE: BlockSize = BlockSize::from_chunk_log(CHUNK_GROUP_LOG);

/// BLAKE3 chunks (1 KiB) in one group.
const CHUNKS_PER_GROUP: u64 = 1 << CHUNK_GROUP_LOG;

/// The shape of one file's tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    file: FileId,
}

impl Geometry {
    /// The geometry of `file`, refused when it is larger than any file kith
    /// stores.
    pub fn new(file: FileId) -> Result<Geometry, FileIdError> {
        Ok(Geometry { file: file.check_size()? })
    }

    /// The file it describes.
    pub fn file(&self) -> FileId {
        self.file
    }

    /// How many chunk groups hold data: 0 for an empty file (nothing to
    /// fetch: its id alone says everything), else `ceil(size / group)`.
    pub fn groups(&self) -> u64 {
        self.file.size_bytes.div_ceil(CHUNK_GROUP_BYTES)
    }

    /// The bytes of group `group`; empty past the end.
    pub fn group_bytes(&self, group: u64) -> Range<u64> {
        let size = self.file.size_bytes;
        let start = group.saturating_mul(CHUNK_GROUP_BYTES).min(size);
        let end = start.saturating_add(CHUNK_GROUP_BYTES).min(size);
        start..end
    }

    /// The bytes of groups `groups`, clamped to the file.
    pub fn groups_bytes(&self, groups: &Range<u64>) -> Range<u64> {
        let start = self.group_bytes(groups.start).start;
        let end = self.group_bytes(groups.end.saturating_sub(1)).end.max(start);
        if groups.is_empty() {
            return start..start;
        }
        start..end
    }

    /// Whether `groups` is a non-empty range inside the file.
    pub fn contains(&self, groups: &Range<u64>) -> bool {
        groups.start < groups.end && groups.end <= self.groups()
    }

    /// bao-tree's tree for the file.
    pub(crate) fn tree(&self) -> BaoTree {
        BaoTree::new(self.file.size_bytes, BLOCK_SIZE)
    }

    /// The chunk ranges that cover `groups` (inside the file).
    pub(crate) fn chunk_ranges(&self, groups: &Range<u64>) -> ChunkRanges {
        let chunks = ChunkNum::chunks(self.file.size_bytes).0;
        let start = (groups.start * CHUNKS_PER_GROUP).min(chunks);
        let end = (groups.end * CHUNKS_PER_GROUP).min(chunks);
        ChunkRanges::from(ChunkNum(start)..ChunkNum(end))
    }

    /// Bytes of hash tree kept beside the file (bao-tree's post-order
    /// outboard): 64 bytes a group, less one.
    pub fn outboard_bytes(&self) -> u64 {
        self.tree().outboard_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::FILE_BYTES_MAX;
    use proptest::prelude::*;

    fn geometry(size_bytes: u64) -> Geometry {
        Geometry::new(FileId { root: [0; 32], size_bytes }).expect("in range")
    }

    const G: u64 = CHUNK_GROUP_BYTES;

    #[test]
    fn edge_sizes_have_the_groups_they_should() {
        for (size, groups) in [(0, 0), (1, 1), (G - 1, 1), (G, 1), (G + 1, 2), (5 * G, 5)] {
            let g = geometry(size);
            assert_eq!(g.groups(), groups, "size {size}");
            assert_eq!(g.groups_bytes(&(0..groups)), 0..size, "size {size}");
        }
        assert_eq!(geometry(G + 1).group_bytes(1), G..G + 1);
        assert_eq!(geometry(G + 1).group_bytes(2), G + 1..G + 1);
        assert!(Geometry::new(FileId { root: [0; 32], size_bytes: FILE_BYTES_MAX + 1 }).is_err());
        assert_eq!(geometry(FILE_BYTES_MAX).groups(), crate::limits::FILE_GROUPS_MAX);
    }

    proptest! {
        /// Groups tile the file exactly: in order, without gaps or overlap,
        /// all full but the last.
        #[test]
        fn groups_tile_the_file(size in prop_oneof![0..4 * G, 0..FILE_BYTES_MAX]) {
            let g = geometry(size);
            let n = g.groups();
            prop_assert_eq!(n == 0, size == 0);
            let mut end = 0;
            for group in n.saturating_sub(3)..n {
                let bytes = g.group_bytes(group);
                prop_assert_eq!(bytes.start, group * G);
                prop_assert!(!bytes.is_empty());
                prop_assert!(bytes.end - bytes.start == G || group + 1 == n);
                end = bytes.end;
            }
            prop_assert_eq!(end, size);
            prop_assert!(!g.contains(&(n..n + 1)));
            prop_assert_eq!(g.contains(&(0..n)), n > 0);
        }
    }
}
