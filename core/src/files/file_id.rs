//! A file's identity: its BLAKE3 root hash and its size. Content-addressed,
//! so two uploads of the same bytes are one file, and any byte of it can be
//! checked against the identity alone.

use crate::limits;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A file's BLAKE3 root hash (the plain `blake3::hash` of its bytes) and its
/// length in bytes. The size is part of the identity: the tree's shape, and
/// so every group's position, follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FileId {
    /// `blake3::hash` of the whole content.
    pub root: [u8; 32],
    /// Length in bytes, at most [`limits::FILE_BYTES_MAX`].
    pub size_bytes: u64,
}

/// Why a file id does not parse.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileIdError {
    /// Not `HEX-SIZE`.
    #[error("a file id is 64 hex digits, a dash and the size in bytes (got {0:?})")]
    Shape(String),
    /// Larger than any file kith stores.
    #[error("file size {size_bytes} is over the limit of {max} bytes")]
    TooLarge {
        /// The size given.
        size_bytes: u64,
        /// [`limits::FILE_BYTES_MAX`].
        max: u64,
    },
}

impl FileId {
    /// The id of `content` (for tests and small in-memory files; drivers
    /// hash large files as they stream them).
    pub fn of(content: &[u8]) -> FileId {
        FileId { root: *blake3::hash(content).as_bytes(), size_bytes: content.len() as u64 }
    }

    /// Refuses sizes over [`limits::FILE_BYTES_MAX`].
    pub fn check_size(self) -> Result<FileId, FileIdError> {
        if self.size_bytes > limits::FILE_BYTES_MAX {
            return Err(FileIdError::TooLarge {
                size_bytes: self.size_bytes,
                max: limits::FILE_BYTES_MAX,
            });
        }
        Ok(self)
    }

    /// The root as a `blake3::Hash`.
    pub fn hash(&self) -> blake3::Hash {
        blake3::Hash::from(self.root)
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.hash().to_hex(), self.size_bytes)
    }
}

impl FromStr for FileId {
    type Err = FileIdError;

    fn from_str(s: &str) -> Result<FileId, FileIdError> {
        let shape = || FileIdError::Shape(s.chars().take(100).collect());
        let (hex, size) = s.split_once('-').ok_or_else(shape)?;
        let root = *blake3::Hash::from_hex(hex).map_err(|_| shape())?.as_bytes();
        let size_bytes = size.parse().map_err(|_| shape())?;
        FileId { root, size_bytes }.check_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_bad_forms_are_refused() {
        let id = FileId::of(b"hello");
        let text = id.to_string();
        assert!(text.ends_with("-5"));
        assert_eq!(text.parse::<FileId>(), Ok(id));
        for bad in ["", "-5", "zz-5", &text.replace("-5", ""), &text.replace("-5", "-x")] {
            assert!(matches!(bad.parse::<FileId>(), Err(FileIdError::Shape(_))), "{bad}");
        }
        let huge = format!("{}-{}", &text[..64], limits::FILE_BYTES_MAX + 1);
        assert!(matches!(huge.parse::<FileId>(), Err(FileIdError::TooLarge { .. })));
        // Multi-byte characters never split a hex pair mid-character.
        let accented = format!("{}-1", "é".repeat(32));
        assert!(matches!(accented.parse::<FileId>(), Err(FileIdError::Shape(_))));
    }

    #[test]
    fn the_root_is_plain_blake3() {
        assert_eq!(FileId::of(b"").hash(), blake3::hash(b""));
    }
}
