//! The hash tree kept beside a stored file (bao-tree's post-order
//! outboard): what lets a source prove each group it serves. Built in one
//! pass over the data, which is also the final check that a stored copy
//! is the file its id names.

use super::file_id::FileId;
use super::geometry::Geometry;
use bao_tree::io::sync::outboard_post_order;
use std::io::{Read, Write};

/// Why an outboard could not be built for a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboardError {
    /// The data is not the file: its root hash differs.
    #[error("the data's BLAKE3 root is {found}, not the file's")]
    Mismatch {
        /// The root the data has.
        found: String,
    },
    /// Reading the data or writing the outboard failed (a short read means
    /// the data is shorter than the file).
    #[error("building the hash tree failed: {0}")]
    Io(#[from] std::io::Error),
    /// The hash tree assembled from the responses' pairs does not reach
    /// the file's root (a pair was never written).
    #[error("the hash tree assembled on arrival does not hash to the file's root")]
    Unassembled,
}

/// Reads `data` (exactly the file's size in bytes) and writes its
/// post-order outboard to `out`; refuses data whose root is not the file's.
pub fn build_outboard(
    geometry: &Geometry,
    data: impl Read,
    out: impl Write,
) -> Result<(), OutboardError> {
    let root = outboard_post_order(data, geometry.tree(), out)?;
    let file: FileId = geometry.file();
    if root != file.hash() {
        return Err(OutboardError::Mismatch { found: root.to_hex().to_string() });
    }
    Ok(())
}

/// Reads `data` (`size_bytes` long) once and writes its post-order
/// outboard to `out`: the id of a local file and the tree to serve it
/// with, in one pass (a sender's side; a short read is an error).
pub fn outboard_of(
    size_bytes: u64,
    data: impl Read,
    out: impl Write,
) -> Result<FileId, OutboardError> {
    let unchecked = FileId { root: [0; 32], size_bytes };
    let geometry = Geometry::new(unchecked).map_err(|e| {
        OutboardError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))
    })?;
    let root = outboard_post_order(data.take(size_bytes), geometry.tree(), out)?;
    Ok(FileId { root: *root.as_bytes(), size_bytes })
}
