//! Recovery: rebuild a replica's Raft log from the segments on its disk.
//!
//! Rules (see docs/ARCHITECTURE.md, "Durable format"):
//! - Only the last write can be torn. A damaged batch in the last segment
//!   with no intact batch anywhere after it is a torn tail: recovery stops
//!   there and tells the driver how many bytes of that segment are valid.
//! - Damage followed by an intact batch, or damage in any earlier segment, is
//!   corruption of data that was once durable: a typed error naming the
//!   segment and offset, never a silent skip.

use super::batch::{decode_batch_at, BatchError, BATCH_HEADER_BYTES, BATCH_MAGIC};
use super::record::{DurableHardState, Record};
use crate::wire::{WireEntry, WireSnapshotMeta};
use bytes::Bytes;

/// What recovery found on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveredLog {
    /// The latest snapshot, if any was written.
    pub snapshot: Option<(WireSnapshotMeta, Bytes)>,
    /// The latest hard state.
    pub hard_state: DurableHardState,
    /// Entries after the snapshot, contiguous.
    pub entries: Vec<WireEntry>,
    /// The replicas it had seen removed, as of the snapshot (the latest
    /// [`Record::Removed`]; empty on disks written before it existed).
    pub removed: Vec<u64>,
    /// Valid length of the last segment; the driver truncates it to this.
    pub last_segment_valid_bytes: usize,
    /// Bytes of torn tail that were cut off (0 when the disk was clean).
    pub torn_tail_bytes: usize,
}

/// Why the disk contents cannot be recovered.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryError {
    /// Damage before the tail: data that was durable is gone.
    #[error(
        "segment {segment} is corrupt at byte {offset} ({cause}); data that was once durable is \
         damaged: restore this replica from a healthy one (remove its data directory and rejoin)"
    )]
    Corrupt {
        /// Position of the segment in the list given to [`recover`].
        segment: usize,
        /// Byte offset of the damaged batch.
        offset: usize,
        /// What was wrong.
        cause: BatchError,
    },
    /// Intact batches whose records contradict each other.
    #[error("segment {segment} at byte {offset} is inconsistent: {reason}")]
    Inconsistent {
        /// Segment position.
        segment: usize,
        /// Byte offset of the batch.
        offset: usize,
        /// What contradicts.
        reason: &'static str,
    },
}

/// Rebuilds the log from `segments`, oldest first.
pub fn recover(segments: &[&[u8]]) -> Result<RecoveredLog, RecoveryError> {
    let mut log = RecoveredLog::default();
    for (segment, bytes) in segments.iter().enumerate() {
        let is_last = segment + 1 == segments.len();
        let mut offset = 0;
        while offset < bytes.len() {
            match decode_batch_at(bytes, offset) {
                Ok((records, len)) => {
                    for record in records {
                        apply(&mut log, record).map_err(|reason| RecoveryError::Inconsistent {
                            segment,
                            offset,
                            reason,
                        })?;
                    }
                    offset += len;
                }
                Err(cause) => {
                    let torn = is_last
                        && !matches!(cause, BatchError::Version { .. } | BatchError::Malformed(_))
                        && !intact_batch_after(bytes, offset);
                    if !torn {
                        return Err(RecoveryError::Corrupt { segment, offset, cause });
                    }
                    log.torn_tail_bytes = bytes.len() - offset;
                    break;
                }
            }
        }
        if is_last {
            log.last_segment_valid_bytes = offset.min(bytes.len());
        }
    }
    Ok(log)
}

/// Whether any intact batch starts after `offset`.
fn intact_batch_after(bytes: &[u8], offset: usize) -> bool {
    let magic = BATCH_MAGIC.to_le_bytes();
    (offset + 1..bytes.len().saturating_sub(BATCH_HEADER_BYTES - 1))
        .filter(|&at| bytes[at..at + 4] == magic)
        .any(|at| decode_batch_at(bytes, at).is_ok())
}

fn apply(log: &mut RecoveredLog, record: Record) -> Result<(), &'static str> {
    match record {
        Record::HardState(hs) => log.hard_state = hs,
        Record::Removed(ids) => log.removed = ids,
        Record::Snapshot { meta, data } => {
            log.entries.clear();
            log.snapshot = Some((meta, data));
        }
        Record::Entries(entries) => {
            let Some(first) = entries.first().map(|e| e.index) else { return Ok(()) };
            if entries.windows(2).any(|w| w[1].index != w[0].index + 1) {
                return Err("entries in one record are not contiguous");
            }
            let snapshot_index = log.snapshot.as_ref().map_or(0, |(m, _)| m.index);
            let next = log.entries.last().map_or(snapshot_index + 1, |e| e.index + 1);
            if first > next {
                return Err("entries leave a gap after the log's end");
            }
            if first <= snapshot_index {
                return Err("entries overwrite a snapshot");
            }
            let keep = usize::try_from(first - (snapshot_index + 1)).unwrap_or(usize::MAX);
            log.entries.truncate(keep);
            log.entries.extend(entries);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::encode_batch;
    use crate::wire::WireEntryPayload;

    fn entry(index: u64, term: u64) -> WireEntry {
        WireEntry {
            term,
            index,
            payload: WireEntryPayload::Normal(Bytes::from(vec![index as u8; 40])),
            context: Bytes::new(),
        }
    }

    fn three_batches() -> (Vec<u8>, Vec<usize>) {
        let mut disk = Vec::new();
        let mut ends = Vec::new();
        for i in 1..=3 {
            disk.extend(encode_batch(&[
                Record::Entries(vec![entry(i, 1)]),
                Record::HardState(DurableHardState { term: 1, vote: 1, commit: i - 1 }),
            ]));
            ends.push(disk.len());
        }
        (disk, ends)
    }

    #[test]
    fn clean_disk_recovers_everything() {
        let (disk, _) = three_batches();
        let log = recover(&[&disk]).unwrap();
        assert_eq!(log.entries.len(), 3);
        assert_eq!(log.hard_state.commit, 2);
        assert_eq!(log.last_segment_valid_bytes, disk.len());
        assert_eq!(log.torn_tail_bytes, 0);
    }

    #[test]
    fn every_torn_tail_is_truncated_to_the_last_whole_batch() {
        let (disk, ends) = three_batches();
        for cut in ends[1]..disk.len() {
            let log = recover(&[&disk[..cut]]).unwrap();
            assert_eq!(log.entries.len(), 2, "cut at {cut}");
            assert_eq!(log.last_segment_valid_bytes, ends[1]);
        }
        let mut zeroed = disk.clone();
        zeroed[ends[1] + 3..].fill(0);
        assert_eq!(recover(&[&zeroed]).unwrap().entries.len(), 2);
    }

    #[test]
    fn damage_before_the_tail_is_an_error() {
        let (disk, ends) = three_batches();
        let mut bad = disk.clone();
        bad[ends[0] + 20] ^= 0x40;
        assert!(matches!(
            recover(&[&bad]),
            Err(RecoveryError::Corrupt { segment: 0, offset, .. }) if offset == ends[0]
        ));
        let mut earlier_segment = disk.clone();
        earlier_segment.truncate(ends[2] - 1);
        assert!(matches!(
            recover(&[&earlier_segment, &disk]),
            Err(RecoveryError::Corrupt { segment: 0, .. })
        ));
    }

    #[test]
    fn overwrites_conflicting_suffix_and_snapshot_resets() {
        let mut disk =
            encode_batch(&[Record::Entries(vec![entry(1, 1), entry(2, 1), entry(3, 1)])]);
        disk.extend(encode_batch(&[Record::Entries(vec![entry(2, 2)])]));
        let log = recover(&[&disk]).unwrap();
        assert_eq!(
            log.entries.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
            [(1, 1), (2, 2)]
        );
        let meta = WireSnapshotMeta { index: 5, term: 2, ..Default::default() };
        disk.extend(encode_batch(&[
            Record::Snapshot { meta: meta.clone(), data: Bytes::from_static(b"s") },
            Record::Entries(vec![entry(6, 2)]),
        ]));
        let log = recover(&[&disk]).unwrap();
        assert_eq!(log.snapshot.unwrap().0, meta);
        assert_eq!(log.entries.len(), 1);
        let gap = encode_batch(&[Record::Entries(vec![entry(9, 2)])]);
        disk.extend(gap);
        assert!(matches!(recover(&[&disk]), Err(RecoveryError::Inconsistent { .. })));
    }

    #[test]
    fn the_latest_removed_record_wins() {
        let mut disk = encode_batch(&[Record::Removed(vec![4])]);
        assert_eq!(recover(&[&disk]).unwrap().removed, [4]);
        disk.extend(encode_batch(&[
            Record::Removed(vec![4, 7]),
            Record::Entries(vec![entry(1, 1)]),
        ]));
        assert_eq!(recover(&[&disk]).unwrap().removed, [4, 7]);
    }
}
