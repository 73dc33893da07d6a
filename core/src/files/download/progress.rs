//! The durable record of a download's progress: which groups of which file
//! are on disk. Written only after the groups it names are synced, so a
//! crash can lose progress (those groups are fetched again) but never claim
//! data the disk lacks.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | field |
//! | --- | --- |
//! | 8 | magic `KITHDLP1` |
//! | 32 | the file's BLAKE3 root |
//! | 8 | the file's size in bytes |
//! | 8 × ceil(groups / 64) | bitmap, one bit a group, bits past the end zero |
//! | 4 | CRC32C of everything before it |

use crate::files::{FileId, Geometry, GroupSet};

const MAGIC: &[u8; 8] = b"KITHDLP1";
const HEADER_BYTES: usize = 8 + 32 + 8;
const CRC_BYTES: usize = 4;

/// Why a progress record cannot be used. The partial data it describes is
/// then of unknown content: the download starts again from nothing, which
/// loses nothing (no byte of it was ever acknowledged).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgressError {
    /// Shorter than a header and checksum, or the wrong length for its file.
    #[error("the progress record is {found} bytes, expected {expected}")]
    Length {
        /// Its length.
        found: usize,
        /// The length a record of this file has.
        expected: usize,
    },
    /// Not a kith progress record.
    #[error("not a kith download progress record (bad magic)")]
    Magic,
    /// It is for another file.
    #[error("the progress record is for file {found}, not this one")]
    OtherFile {
        /// The file it names.
        found: String,
    },
    /// Torn or damaged on disk.
    #[error("the progress record's checksum does not match (torn or damaged write)")]
    Checksum,
    /// The bitmap marks groups past the end of the file.
    #[error("the progress record marks groups past the end of the file")]
    Bitmap,
}

/// Encodes the progress of `geometry`'s file: `durable` groups.
pub(crate) fn encode(geometry: &Geometry, durable: &GroupSet) -> Vec<u8> {
    let file = geometry.file();
    let mut out = Vec::with_capacity(expected_len(geometry));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&file.root);
    out.extend_from_slice(&file.size_bytes.to_le_bytes());
    out.extend_from_slice(&durable.to_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len(), expected_len(geometry));
    out
}

/// Decodes a record written by [`encode`] for `geometry`'s file.
pub(crate) fn decode(geometry: &Geometry, bytes: &[u8]) -> Result<GroupSet, ProgressError> {
    let expected = expected_len(geometry);
    if bytes.len() < HEADER_BYTES + CRC_BYTES {
        return Err(ProgressError::Length { found: bytes.len(), expected });
    }
    if &bytes[..8] != MAGIC {
        return Err(ProgressError::Magic);
    }
    let (body, crc) = bytes.split_at(bytes.len() - CRC_BYTES);
    let crc = u32::from_le_bytes(crc.try_into().expect("four bytes"));
    if crc32c::crc32c(body) != crc {
        return Err(ProgressError::Checksum);
    }
    let root: [u8; 32] = body[8..40].try_into().expect("32 bytes");
    let size_bytes = u64::from_le_bytes(body[40..48].try_into().expect("eight bytes"));
    let found = FileId { root, size_bytes };
    if found != geometry.file() {
        return Err(ProgressError::OtherFile { found: found.to_string() });
    }
    if bytes.len() != expected {
        return Err(ProgressError::Length { found: bytes.len(), expected });
    }
    GroupSet::from_bytes(geometry.groups(), &body[HEADER_BYTES..]).ok_or(ProgressError::Bitmap)
}

fn expected_len(geometry: &Geometry) -> usize {
    HEADER_BYTES + geometry.groups().div_ceil(64) as usize * 8 + CRC_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(size_bytes: u64) -> Geometry {
        Geometry::new(FileId { root: [7; 32], size_bytes }).expect("in range")
    }

    fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
        let n = bytes.len() - CRC_BYTES;
        let crc = crc32c::crc32c(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn a_record_round_trips() {
        let g = geometry(200 * crate::limits::CHUNK_GROUP_BYTES);
        let mut set = GroupSet::empty(g.groups());
        for group in [0, 63, 64, 199] {
            set.insert(group);
        }
        assert_eq!(decode(&g, &encode(&g, &set)), Ok(set));
        let empty = geometry(0);
        assert_eq!(decode(&empty, &encode(&empty, &GroupSet::empty(0))), Ok(GroupSet::empty(0)));
    }

    /// Every byte of a record matters: a flip anywhere is caught, and each
    /// cut length is refused.
    #[test]
    fn every_damaged_byte_and_every_cut_is_refused() {
        let g = geometry(100 * crate::limits::CHUNK_GROUP_BYTES + 1);
        let mut set = GroupSet::empty(g.groups());
        set.insert(5);
        let good = encode(&g, &set);
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(decode(&g, &bad).is_err(), "flip at byte {i} accepted");
        }
        for len in 0..good.len() {
            assert!(decode(&g, &good[..len]).is_err(), "cut to {len} accepted");
        }
        assert_eq!(
            decode(&g, b"KITHDLP0\0\0\0\0\0\0\0\0"),
            Err(ProgressError::Length { found: 16, expected: good.len() })
        );
    }

    #[test]
    fn a_record_of_another_file_or_with_bits_past_the_end_is_refused() {
        let g = geometry(3);
        let other = geometry(4);
        let set = GroupSet::empty(1);
        assert!(matches!(decode(&other, &encode(&g, &set)), Err(ProgressError::OtherFile { .. })));
        let mut bits = encode(&g, &set);
        bits[HEADER_BYTES] = 0b10;
        assert_eq!(decode(&g, &reseal(bits)), Err(ProgressError::Bitmap));
        let mut magic = encode(&g, &set);
        magic[0] = b'X';
        assert_eq!(decode(&g, &reseal(magic)), Err(ProgressError::Magic));
    }
}
