//! The chunk protocol (`/kith/chunks/1`): ask a peer for some chunk groups
//! of a file, get them back verifiable against the file's root (or a
//! reason why not). One request and one answer per stream, each a
//! versioned postcard frame (docs/PROTOCOL.md, section 12). Replicas ask
//! each other (replication, repair) and clients ask replicas (fetch);
//! replicas ask a client for what it is uploading.

use crate::files::{ChunkResponse, FileId, Geometry};
use crate::limits::{CHUNK_RESPONSE_BYTES_MAX, GROUPS_PER_REQUEST_MAX};
use crate::versioned::{self, VersionedError};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// The version of the chunk protocol this build speaks.
pub const CHUNK_PROTOCOL_VERSION: u16 = 1;

/// Largest request frame: a file id and two numbers.
pub const CHUNK_REQUEST_FRAME_BYTES_MAX: usize = 128;

/// Largest answer frame: a response and its framing.
pub const CHUNK_ANSWER_FRAME_BYTES_MAX: usize = CHUNK_RESPONSE_BYTES_MAX as usize + 1024;

const _: () = assert!(CHUNK_ANSWER_FRAME_BYTES_MAX <= crate::limits::FRAME_BYTES_MAX);

/// Groups `first_group..first_group + group_count` of `file`, please.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRequest {
    /// The file.
    pub file: FileId,
    /// The first group wanted.
    pub first_group: u64,
    /// How many (1 to [`GROUPS_PER_REQUEST_MAX`]).
    pub group_count: u64,
}

/// The answer to a [`ChunkRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ChunkAnswer {
    /// Some or all of the groups asked for (never others).
    Groups(ChunkResponse),
    /// This peer does not hold the file (or its copy is damaged and being
    /// repaired): ask another.
    NotHere,
    /// The asker may not fetch this file (not a member of a room that
    /// shows it, or the message was deleted).
    Forbidden,
    /// Serving too many transfers now: ask another, or again later.
    Busy,
    /// The request is malformed, or its groups are not inside the file.
    Refused(String),
}

/// Why a chunk frame did not decode or make sense.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkFrameError {
    /// The frame itself (version, encoding, size).
    #[error(transparent)]
    Frame(#[from] VersionedError),
    /// A request for no groups, too many, or groups past the file's end.
    #[error("groups {groups:?} are not 1 to {max} groups inside the file ({total} groups)")]
    Range {
        /// What was asked.
        groups: Range<u64>,
        /// [`GROUPS_PER_REQUEST_MAX`].
        max: u64,
        /// The file's groups.
        total: u64,
    },
    /// The file is larger than any kith stores.
    #[error(transparent)]
    File(#[from] crate::files::FileIdError),
}

impl ChunkRequest {
    /// The groups asked for.
    pub fn groups(&self) -> Range<u64> {
        self.first_group..self.first_group.saturating_add(self.group_count)
    }

    /// The frame on the wire.
    pub fn encode(&self) -> Vec<u8> {
        versioned::encode(CHUNK_PROTOCOL_VERSION, self)
    }

    /// Decodes an untrusted request and checks that it asks for 1 to
    /// [`GROUPS_PER_REQUEST_MAX`] groups inside the file.
    pub fn decode(bytes: &[u8]) -> Result<ChunkRequest, ChunkFrameError> {
        let request: ChunkRequest =
            versioned::decode_frame(bytes, CHUNK_PROTOCOL_VERSION, CHUNK_REQUEST_FRAME_BYTES_MAX)?;
        let geometry = Geometry::new(request.file)?;
        let groups = request.groups();
        if request.group_count > GROUPS_PER_REQUEST_MAX || !geometry.contains(&groups) {
            return Err(ChunkFrameError::Range {
                groups,
                max: GROUPS_PER_REQUEST_MAX,
                total: geometry.groups(),
            });
        }
        Ok(request)
    }
}

impl ChunkAnswer {
    /// The frame on the wire.
    pub fn encode(&self) -> Vec<u8> {
        versioned::encode(CHUNK_PROTOCOL_VERSION, self)
    }

    /// Decodes an untrusted answer (the groups in it are checked by
    /// [`ChunkResponse::decode`], against the request).
    pub fn decode(bytes: &[u8]) -> Result<ChunkAnswer, VersionedError> {
        versioned::decode_frame(bytes, CHUNK_PROTOCOL_VERSION, CHUNK_ANSWER_FRAME_BYTES_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::CHUNK_GROUP_BYTES;

    fn file(groups: u64) -> FileId {
        FileId { root: [3; 32], size_bytes: groups * CHUNK_GROUP_BYTES }
    }

    #[test]
    fn requests_round_trip_and_bad_ranges_are_refused() {
        let good = ChunkRequest { file: file(40), first_group: 24, group_count: 16 };
        assert_eq!(ChunkRequest::decode(&good.encode()), Ok(good.clone()));
        assert!(good.encode().len() <= CHUNK_REQUEST_FRAME_BYTES_MAX);
        for (first_group, group_count) in [(0, 0), (0, 17), (30, 11), (40, 1), (u64::MAX, 2)] {
            let bad = ChunkRequest { first_group, group_count, ..good.clone() };
            assert!(
                matches!(ChunkRequest::decode(&bad.encode()), Err(ChunkFrameError::Range { .. })),
                "{first_group} {group_count}"
            );
        }
        let huge = ChunkRequest { file: FileId { root: [0; 32], size_bytes: u64::MAX }, ..good };
        assert!(matches!(ChunkRequest::decode(&huge.encode()), Err(ChunkFrameError::File(_))));
        assert!(ChunkRequest::decode(&[1, 0, 0xff]).is_err());
        assert!(ChunkRequest::decode(&vec![1; 4096]).is_err(), "longer than any request");
    }

    #[test]
    fn the_largest_answer_fits_its_frame_and_a_frame() {
        let response = ChunkResponse {
            first_group: u64::MAX,
            group_count: u64::MAX,
            encoded: vec![7; CHUNK_RESPONSE_BYTES_MAX as usize].into(),
        };
        let answer = ChunkAnswer::Groups(response);
        let frame = answer.encode();
        assert!(frame.len() <= CHUNK_ANSWER_FRAME_BYTES_MAX);
        assert_eq!(ChunkAnswer::decode(&frame), Ok(answer));
        for other in [ChunkAnswer::NotHere, ChunkAnswer::Forbidden, ChunkAnswer::Busy] {
            assert_eq!(ChunkAnswer::decode(&other.encode()), Ok(other));
        }
    }
}
