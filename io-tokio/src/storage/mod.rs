//! The replica's disk: the core's durable format on real files.
//!
//! Layout of a data directory:
//! - `node.key`: the replica's ed25519 secret (its libp2p identity).
//! - `LOCK`: held (advisory lock) while a process owns the directory.
//! - `log/NNNNNNNNNNNNNNNNNNNN.seg`: log segments, oldest first. Each is a
//!   sequence of the core's checksummed batches; the core decides when a new
//!   segment starts, and every older segment is deleted once the first
//!   batch of a newer one is durable.
//! - `history.redb`: room entries and message ids, with the state machine's
//!   summaries as of its last commit (see [`HistoryDb`]). The log's
//!   snapshots refer to it instead of copying the history.
//! - `blobs/`: file content, partial and complete ([`BlobStore`]).
//!
//! Writes go through one writer thread that group-commits: it appends every
//! batch waiting, calls `fdatasync` once, and only then reports the batches
//! durable, so nothing is acknowledged before it is on disk.

mod blob_store;
mod history_db;
mod segment_log;
mod writer;

pub use blob_store::{BlobError, BlobStore, PartialBlob};
pub use history_db::HistoryDb;
pub use segment_log::{SegmentLog, StorageError};
pub use writer::{DiskWriter, WriteReport};
