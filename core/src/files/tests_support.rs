//! Files and stored copies for the files tests.

use super::{build_outboard, FileId, Geometry};

/// `size` bytes of a pattern that differs with `seed`.
pub(crate) fn content(size: u64, seed: u8) -> Vec<u8> {
    (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// The geometry and outboard of `data`, as a source stores them.
pub(crate) fn stored(data: &[u8]) -> (Geometry, Vec<u8>) {
    let geometry = Geometry::new(FileId::of(data)).expect("in range");
    let mut outboard = Vec::new();
    build_outboard(&geometry, data, &mut outboard).expect("matching data");
    assert_eq!(outboard.len() as u64, geometry.outboard_bytes());
    (geometry, outboard)
}
