//! Versioned encoding: every format kith writes or sends is
//! `postcard(version: u16)` followed by `postcard(value)`. The version is
//! read first, so bytes of another version are refused by naming both
//! versions instead of failing somewhere inside the value.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why versioned bytes did not decode.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VersionedError {
    /// Written by another version of the format.
    #[error("version {found} is not supported (this build reads {supported})")]
    Version {
        /// The version found.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// Not a value of this format.
    #[error("does not decode: {0}")]
    Malformed(String),
    /// Larger than the format allows.
    #[error("{len} bytes exceed the limit of {max}")]
    TooLarge {
        /// Length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Encodes `value` behind `version`.
pub fn encode<T: Serialize>(version: u16, value: &T) -> Vec<u8> {
    encode_behind(0, version, value)
}

/// Bytes an encoding starts with room for: most frames and records are
/// smaller, so they are written without the buffer growing (from empty it
/// grew, and copied itself, six times on the way to a 300-byte frame).
const ENCODE_START_BYTES: usize = 512;

/// Encodes `value` behind `version`, after `header_bytes` zero bytes for a
/// header the caller fills in once the encoding is known (its length, a
/// checksum), so the encoding is not copied behind the header afterwards.
pub fn encode_behind<T: Serialize>(header_bytes: usize, version: u16, value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(header_bytes + ENCODE_START_BYTES);
    out.resize(header_bytes, 0);
    // Written into one buffer, after the version: not into a second one
    // and copied. A large byte field (a chunk answer's groups) lands in one
    // growth of the buffer to its size; no pass is spent measuring first.
    let out = postcard::to_extend(&version, out).expect("u16 encodes");
    postcard::to_extend(value, out).expect("kith's formats always encode")
}

/// Decodes a value of version `supported`; returns it and the bytes after it.
pub fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    supported: u16,
) -> Result<(T, &[u8]), VersionedError> {
    let malformed = |e: postcard::Error| VersionedError::Malformed(e.to_string());
    let (found, rest) = postcard::take_from_bytes::<u16>(bytes).map_err(malformed)?;
    if found != supported {
        return Err(VersionedError::Version { found, supported });
    }
    postcard::take_from_bytes(rest).map_err(malformed)
}

/// Decodes a value written in any version of `supported`, for formats whose
/// newer versions only add enum variants (older bytes decode unchanged);
/// an unsupported version is reported against the newest.
pub fn decode_any_of<T: DeserializeOwned>(
    bytes: &[u8],
    supported: std::ops::RangeInclusive<u16>,
) -> Result<(T, &[u8]), VersionedError> {
    let found = postcard::take_from_bytes::<u16>(bytes)
        .map_err(|e| VersionedError::Malformed(e.to_string()))?
        .0;
    let version = if supported.contains(&found) { found } else { *supported.end() };
    decode(bytes, version)
}

/// Decodes one whole frame from untrusted bytes: at most `max_len` bytes,
/// version `supported`, nothing after the value.
pub fn decode_frame<T: DeserializeOwned>(
    bytes: &[u8],
    supported: u16,
    max_len: usize,
) -> Result<T, VersionedError> {
    if bytes.len() > max_len {
        return Err(VersionedError::TooLarge { len: bytes.len(), max: max_len });
    }
    let (value, rest) = decode(bytes, supported)?;
    if !rest.is_empty() {
        return Err(VersionedError::Malformed(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_both_versions() {
        let bytes = encode(3, &(7u64, String::from("x")));
        let ((n, s), rest): ((u64, String), _) = decode(&bytes, 3).unwrap();
        assert_eq!((n, s.as_str(), rest.len()), (7, "x", 0));
        assert_eq!(
            decode::<u64>(&bytes, 4),
            Err(VersionedError::Version { found: 3, supported: 4 })
        );
        assert!(matches!(decode::<u64>(&[], 3), Err(VersionedError::Malformed(_))));
    }

    #[test]
    fn reads_every_version_of_a_range_and_names_the_newest_otherwise() {
        for version in 1..=2 {
            let bytes = encode(version, &7u64);
            assert_eq!(decode_any_of::<u64>(&bytes, 1..=2).unwrap().0, 7);
        }
        assert_eq!(
            decode_any_of::<u64>(&encode(3, &7u64), 1..=2),
            Err(VersionedError::Version { found: 3, supported: 2 })
        );
        assert!(matches!(decode_any_of::<u64>(&[], 1..=2), Err(VersionedError::Malformed(_))));
    }
}
