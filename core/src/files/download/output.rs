//! The commands a download gives its driver, and why a download stops.

use super::{RequestId, WriteId};
use crate::files::HashPairs;
use bytes::Bytes;
use std::ops::Range;

/// A command to the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output<S> {
    /// Ask `source` for `groups`; answer with [`Input::Answered`] or
    /// [`Input::RequestFailed`].
    Request {
        /// Names the request in the answer.
        id: RequestId,
        /// Whom to ask.
        source: S,
        /// Which groups.
        groups: Range<u64>,
    },
    /// Write verified `data` at `offset` and `hash_pairs` into the copy's
    /// outboard, sync both, then report [`Input::Written`].
    Write {
        /// Names the write in the report.
        id: WriteId,
        /// Where in the file.
        offset: u64,
        /// The bytes.
        data: Bytes,
        /// The parent pairs that proved them, for the outboard.
        hash_pairs: HashPairs,
    },
    /// Replace the saved progress record with `bytes` (atomically: write,
    /// sync, rename), then report [`Input::ProgressSaved`].
    SaveProgress {
        /// The record.
        bytes: Bytes,
    },
    /// Every group is durable.
    Completed,
    /// The download cannot go on.
    Failed(DownloadError),
}

/// Why a download stopped.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownloadError {
    /// Every source refused or failed too often in a row, or none was
    /// given.
    #[error(
        "no source can serve the file ({refused} refused it, {dropped} failed too often in a row)"
    )]
    NoSources {
        /// Sources given up on after failures.
        dropped: usize,
        /// Sources that refused this downloader the file.
        refused: usize,
    },
    /// Writing failed.
    #[error("writing the file failed: {reason}")]
    Disk {
        /// What the disk said.
        reason: String,
    },
}
