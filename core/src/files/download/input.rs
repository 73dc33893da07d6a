//! The facts a driver reports to a download.

use super::{RequestId, WriteId};
use crate::files::ChunkResponse;

/// A fact the driver reports.
#[derive(Clone, Debug)]
pub enum Input {
    /// A source answered request `id`.
    Answered {
        /// The request.
        id: RequestId,
        /// What it sent.
        response: ChunkResponse,
    },
    /// A source could not answer request `id` (it lacks the file, refused,
    /// or the stream broke).
    RequestFailed {
        /// The request.
        id: RequestId,
    },
    /// The source of request `id` will not serve this file to this
    /// downloader (`ChunkAnswer::Forbidden`): it is not asked again.
    Refused {
        /// The request.
        id: RequestId,
    },
    /// Write `id` is on disk and synced.
    Written {
        /// The write.
        id: WriteId,
    },
    /// Write `id` failed; the download stops (nothing is claimed for it).
    WriteFailed {
        /// The write.
        id: WriteId,
        /// What the disk said (e.g. no space left).
        reason: String,
    },
    /// The progress record last handed out is durable.
    ProgressSaved,
    /// Saving the progress record last handed out failed (the old record,
    /// if any, stands). The next synced write hands out a new one.
    SaveFailed,
}
