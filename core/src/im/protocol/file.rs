//! What a file message says about its file: the content's id and what the
//! sender called it. The bytes themselves travel outside the log, checked
//! against the id ([`crate::files`]).

use crate::files::FileId;
use crate::limits;
use serde::{Deserialize, Serialize};

/// A file's manifest as a room entry carries it (the caption is the entry's
/// message text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// The content: BLAKE3 root and size.
    pub id: FileId,
    /// The name the sender gave it: 1 to [`limits::FILE_NAME_BYTES_MAX`]
    /// bytes, no path separators, no control characters, not `.` or `..`.
    pub name: String,
    /// Its media type, `type/subtype` (e.g. `image/png`), at most
    /// [`limits::MEDIA_TYPE_BYTES_MAX`] bytes of token characters.
    pub media_type: String,
}

/// Why a manifest is refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FileInfoError {
    /// The name is empty, too long, or could escape a directory.
    #[error("a file name is 1 to {max} bytes, without '/', '\\\\' or control characters, and not '.' or '..'")]
    Name {
        /// [`limits::FILE_NAME_BYTES_MAX`].
        max: usize,
    },
    /// The media type is not `type/subtype`.
    #[error("a media type is type/subtype in at most {max} bytes (e.g. image/png)")]
    MediaType {
        /// [`limits::MEDIA_TYPE_BYTES_MAX`].
        max: usize,
    },
    /// Larger than any file kith stores.
    #[error("the file is {size_bytes} bytes; the limit is {max}")]
    TooLarge {
        /// Its size.
        size_bytes: u64,
        /// [`limits::FILE_BYTES_MAX`].
        max: u64,
    },
}

impl FileInfoError {
    /// `TooLarge` for content over [`limits::FILE_BYTES_MAX`]: the one size
    /// rule, for manifests, holder records and uploads alike.
    pub fn check_size(id: FileId) -> Result<(), FileInfoError> {
        match id.check_size() {
            Ok(_) => Ok(()),
            Err(_) => Err(FileInfoError::TooLarge {
                size_bytes: id.size_bytes,
                max: limits::FILE_BYTES_MAX,
            }),
        }
    }
}

impl FileInfo {
    /// What a deleted file message's tombstone keeps: nothing.
    pub fn deleted() -> FileInfo {
        FileInfo {
            id: FileId { root: [0; 32], size_bytes: 0 },
            name: String::new(),
            media_type: String::new(),
        }
    }

    /// Checks the manifest's rules (every replica applies the same ones).
    pub fn validate(&self) -> Result<(), FileInfoError> {
        FileInfoError::check_size(self.id)?;
        let name = &self.name;
        let bad_name = name.is_empty()
            || name.len() > limits::FILE_NAME_BYTES_MAX
            || name == "."
            || name == ".."
            || name.chars().any(|c| c == '/' || c == '\\' || c.is_control());
        if bad_name {
            return Err(FileInfoError::Name { max: limits::FILE_NAME_BYTES_MAX });
        }
        if !is_media_type(&self.media_type) {
            return Err(FileInfoError::MediaType { max: limits::MEDIA_TYPE_BYTES_MAX });
        }
        Ok(())
    }
}

/// `type/subtype`, each a non-empty RFC 6838 restricted name.
fn is_media_type(text: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.len() <= 127
            && t.starts_with(|c: char| c.is_ascii_alphanumeric())
            && t.chars().all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    text.len() <= limits::MEDIA_TYPE_BYTES_MAX
        && text.split_once('/').is_some_and(|(t, s)| token(t) && token(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, media_type: &str) -> FileInfo {
        FileInfo { id: FileId::of(b"x"), name: name.into(), media_type: media_type.into() }
    }

    #[test]
    fn names_and_media_types_follow_the_rules() {
        assert_eq!(info("report.pdf", "application/pdf").validate(), Ok(()));
        assert_eq!(info("Фото 1.jpeg", "image/jpeg").validate(), Ok(()));
        for bad in
            ["", ".", "..", "a/b", "a\\b", "a\nb", &"x".repeat(limits::FILE_NAME_BYTES_MAX + 1)]
        {
            assert!(
                matches!(info(bad, "text/plain").validate(), Err(FileInfoError::Name { .. })),
                "{bad:?}"
            );
        }
        for bad in ["", "text", "text/", "/plain", "te xt/plain", "text/plain/x", "text/pl;ain"] {
            assert!(
                matches!(info("a", bad).validate(), Err(FileInfoError::MediaType { .. })),
                "{bad:?}"
            );
        }
        let huge = FileInfo {
            id: FileId { root: [0; 32], size_bytes: limits::FILE_BYTES_MAX + 1 },
            ..info("a", "text/plain")
        };
        assert!(matches!(huge.validate(), Err(FileInfoError::TooLarge { .. })));
    }
}
