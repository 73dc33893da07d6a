//! Files: content addressing, verified chunk transfer and the download
//! state machine.
//!
//! A file is named by its BLAKE3 root hash and size ([`FileId`]) and cut
//! into chunk groups of [`crate::limits::CHUNK_GROUP_BYTES`]. A source
//! proves each group it sends with the hash pairs up to the root
//! ([`ChunkResponse`], bao-tree's encoding), so a receiver checks each group
//! on arrival, in any order, from any source, before writing it.
//! [`Download`] decides what to ask whom, and when a file is complete;
//! [`Upload`] which replicas a sender asks to store a content, and when.

mod chunk_response;
pub mod download;
mod file_id;
mod geometry;
mod group_set;
mod hash_pairs;
mod offer;
mod outboard;
pub mod upload;

pub use chunk_response::{ChunkRefusal, ChunkResponse, ServeError, VerifiedGroups};
pub use download::Download;
pub use file_id::{FileId, FileIdError};
pub use geometry::Geometry;
pub use group_set::GroupSet;
pub use hash_pairs::{top_pair_matches, HashPairs, HASH_PAIR_BYTES};
pub use offer::{Offer, OfferDecision, OfferFull};
pub use outboard::{build_outboard, outboard_of, OutboardError};
pub use upload::Upload;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_support;
