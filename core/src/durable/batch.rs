//! Batch framing: `magic | payload_len | payload_crc | header_crc | payload`,
//! all little-endian u32, CRC-32C. The header has its own checksum so a torn
//! or corrupt length is never trusted.

use super::record::{Record, DURABLE_FORMAT_OLDEST_READ, DURABLE_FORMAT_VERSION};
use crate::limits;
use crate::versioned::VersionedError;

/// Marks the start of every batch ("KTHB").
pub const BATCH_MAGIC: u32 = u32::from_le_bytes(*b"KTHB");

/// Bytes in a batch header.
pub const BATCH_HEADER_BYTES: usize = 16;

/// Why the bytes at an offset are not a valid batch.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchError {
    /// Fewer bytes than a header, or than the header promises.
    #[error("batch extends past the end of the segment")]
    Truncated,
    /// The header's magic or checksum is wrong.
    #[error("batch header is damaged")]
    BadHeader,
    /// The payload checksum is wrong.
    #[error("batch payload fails its checksum")]
    BadPayload,
    /// The batch is larger than any this build writes.
    #[error("batch of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// Checksums hold but the content is from another format version.
    #[error("durable format version {found} is not supported (this build reads {supported})")]
    Version {
        /// Version found.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// Checksums hold but the records do not decode.
    #[error("batch records do not decode: {0}")]
    Malformed(String),
}

/// Encodes records as one batch.
pub fn encode_batch(records: &[Record]) -> Vec<u8> {
    // The header is filled in behind the payload's encoding: a batch (up
    // to an append's 512 KiB) is not copied behind its header afterwards.
    let mut out =
        crate::versioned::encode_behind(BATCH_HEADER_BYTES, DURABLE_FORMAT_VERSION, &records);
    let (header, payload) = out.split_at_mut(BATCH_HEADER_BYTES);
    let len = u32::try_from(payload.len()).expect("batches are bounded far below 4 GiB");
    header[0..4].copy_from_slice(&BATCH_MAGIC.to_le_bytes());
    header[4..8].copy_from_slice(&len.to_le_bytes());
    header[8..12].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&header[..12]);
    header[12..16].copy_from_slice(&header_crc.to_le_bytes());
    out
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Decodes the batch starting at `offset`; returns its records and its
/// total length in bytes.
pub fn decode_batch_at(bytes: &[u8], offset: usize) -> Result<(Vec<Record>, usize), BatchError> {
    let rest = bytes.get(offset..).ok_or(BatchError::Truncated)?;
    if rest.len() < BATCH_HEADER_BYTES {
        return Err(BatchError::Truncated);
    }
    if read_u32(rest, 0) != BATCH_MAGIC || crc32c::crc32c(&rest[..12]) != read_u32(rest, 12) {
        return Err(BatchError::BadHeader);
    }
    let len = read_u32(rest, 4) as usize;
    if len > limits::DURABLE_BATCH_BYTES_MAX {
        return Err(BatchError::TooLarge(len));
    }
    let payload =
        rest.get(BATCH_HEADER_BYTES..BATCH_HEADER_BYTES + len).ok_or(BatchError::Truncated)?;
    if crc32c::crc32c(payload) != read_u32(rest, 8) {
        return Err(BatchError::BadPayload);
    }
    let readable = DURABLE_FORMAT_OLDEST_READ..=DURABLE_FORMAT_VERSION;
    let (records, _): (Vec<Record>, _) = crate::versioned::decode_any_of(payload, readable)
        .map_err(|e| match e {
            VersionedError::Version { found, supported } => {
                BatchError::Version { found, supported }
            }
            VersionedError::Malformed(m) => BatchError::Malformed(m),
            other => BatchError::Malformed(other.to_string()),
        })?;
    Ok((records, BATCH_HEADER_BYTES + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::DurableHardState;

    #[test]
    fn round_trips_and_detects_every_single_bit_flip() {
        let records = vec![Record::HardState(DurableHardState { term: 3, vote: 1, commit: 2 })];
        let bytes = encode_batch(&records);
        assert_eq!(decode_batch_at(&bytes, 0), Ok((records, bytes.len())));
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_batch_at(&bad, 0).is_err(), "bit {bit} flip went unnoticed");
        }
    }

    /// A batch header in front of a payload, laid out field by field: the
    /// format the encoder fills in place.
    fn frame(payload: Vec<u8>) -> Vec<u8> {
        let len = u32::try_from(payload.len()).expect("small");
        let mut out = Vec::new();
        out.extend_from_slice(&BATCH_MAGIC.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        let header_crc = crc32c::crc32c(&out[..12]);
        out.extend_from_slice(&header_crc.to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    #[test]
    fn the_header_filled_in_place_is_the_documented_layout() {
        let small = vec![Record::HardState(DurableHardState { term: 3, vote: 1, commit: 2 })];
        let many = vec![small[0].clone(); 200];
        for records in [Vec::new(), small, many] {
            let expected = frame(crate::versioned::encode(DURABLE_FORMAT_VERSION, &records));
            assert_eq!(encode_batch(&records), expected);
        }
    }

    #[test]
    fn version_one_batches_still_decode_and_later_ones_are_named() {
        let records = vec![Record::HardState(DurableHardState { term: 3, vote: 1, commit: 2 })];
        let old = frame(crate::versioned::encode(1, &records));
        assert_eq!(decode_batch_at(&old, 0), Ok((records.clone(), old.len())));
        let newer = frame(crate::versioned::encode(DURABLE_FORMAT_VERSION + 1, &records));
        assert_eq!(
            decode_batch_at(&newer, 0),
            Err(BatchError::Version {
                found: DURABLE_FORMAT_VERSION + 1,
                supported: DURABLE_FORMAT_VERSION
            })
        );
    }
}
