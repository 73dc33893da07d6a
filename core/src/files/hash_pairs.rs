//! The parent hash pairs a chunk response proved, each placed where it
//! belongs in the file's post-order outboard.
//!
//! A receiver writes them beside the groups they came with, so its copy's
//! hash tree is whole when the last group lands: the copy is complete
//! without reading and hashing its data a second time. Every parent node
//! of the tree covers some group, and a response for that group carries
//! the node's pair (the pre-order encoding proves each group with all its
//! ancestors), so a download that wrote every group wrote every pair. A
//! pair is only ever taken from a response that decoded against the root.

use super::geometry::Geometry;
use bao_tree::io::Parent;

/// Bytes of one pair: the left and right children's hashes.
pub const HASH_PAIR_BYTES: usize = 64;

/// Pairs in runs of consecutive outboard positions, in position order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HashPairs {
    runs: Vec<(u64, Vec<u8>)>,
}

impl HashPairs {
    /// The pairs of `parents` that the outboard keeps (nodes below the
    /// chunk-group level have no place in it).
    pub(crate) fn placed(geometry: &Geometry, parents: Vec<Parent>) -> HashPairs {
        let tree = geometry.tree();
        let mut placed: Vec<(u64, Parent)> = parents
            .into_iter()
            .filter_map(|p| {
                let at = tree.post_order_offset(p.node)?.value() * HASH_PAIR_BYTES as u64;
                Some((at, p))
            })
            .collect();
        placed.sort_unstable_by_key(|(at, _)| *at);
        placed.dedup_by_key(|(at, _)| *at);
        let mut runs: Vec<(u64, Vec<u8>)> = Vec::new();
        for (at, p) in placed {
            let run = match runs.last_mut() {
                Some((start, bytes)) if *start + bytes.len() as u64 == at => bytes,
                _ => {
                    runs.push((at, Vec::new()));
                    &mut runs.last_mut().expect("just pushed").1
                }
            };
            run.extend_from_slice(p.pair.0.as_bytes());
            run.extend_from_slice(p.pair.1.as_bytes());
        }
        HashPairs { runs }
    }

    /// Each run: its byte offset in the outboard, and its bytes.
    pub fn runs(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.runs.iter().map(|(at, bytes)| (*at, &bytes[..]))
    }

    /// Writes the pairs into an in-memory outboard of `geometry`'s size.
    pub fn land(&self, outboard: &mut [u8]) {
        for (at, bytes) in self.runs() {
            let at = at as usize;
            outboard[at..at + bytes.len()].copy_from_slice(bytes);
        }
    }
}

/// Whether `top`, the last pair of an outboard assembled from responses
/// (the root's children, where the post-order puts them), hashes to the
/// file's root: a last check that catches a top pair never written (every
/// pair was checked against its parent on arrival). A file of one group
/// has no pairs ([`Geometry::outboard_bytes`] is 0): nothing to check.
pub fn top_pair_matches(geometry: &Geometry, top: &[u8; HASH_PAIR_BYTES]) -> bool {
    use blake3::hazmat::{merge_subtrees_root, Mode};
    let left: [u8; 32] = top[..32].try_into().expect("32 bytes");
    let right: [u8; 32] = top[32..].try_into().expect("32 bytes");
    merge_subtrees_root(&left, &right, Mode::Hash) == geometry.file().hash()
}
