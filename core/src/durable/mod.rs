//! The durable format: what a replica writes to disk, and how it recovers.
//!
//! Pure functions over byte buffers, shared by every driver: the core emits
//! `Output::Persist` batches already encoded, and on restart the driver hands
//! the bytes it finds back to [`recover`]. A driver never interprets them.
//!
//! A replica's log is a sequence of segments (files); each segment is a
//! sequence of batches, one batch per `Persist` write. A batch whose
//! `Persist` says `new_segment` starts a segment that holds everything still
//! needed (a snapshot, the hard state and the entries after it), so every
//! older segment can be deleted once that batch is durable.

mod batch;
mod record;
mod recovery;

pub use batch::{decode_batch_at, encode_batch, BatchError, BATCH_HEADER_BYTES, BATCH_MAGIC};
pub use record::{DurableHardState, Record, DURABLE_FORMAT_OLDEST_READ, DURABLE_FORMAT_VERSION};
pub use recovery::{recover, RecoveredLog, RecoveryError};
