//! A simulated disk under the core's durable format, with a crash model:
//! writes are pending until their completion time; a crash loses every
//! pending write and may tear the first one (a prefix of its blocks lands).
//! A full disk refuses writes; reads can fail; a bit can rot at rest.
//! Recovery runs the core's real [`crate::durable::recover`].

use crate::durable::{decode_batch_at, recover, RecoveredLog, RecoveryError};
use crate::ids::PersistId;
use crate::rng::SeededRng;
use crate::time::Instant;
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Duration;

/// Fault parameters of a simulated disk.
#[derive(Clone, Debug, PartialEq)]
pub struct DiskConfig {
    /// Minimum write+fsync latency.
    pub latency_min: Duration,
    /// Maximum write+fsync latency.
    pub latency_max: Duration,
    /// Probability that a crash tears the oldest pending write.
    pub tear_on_crash: f64,
    /// Tear granularity in bytes.
    pub block_bytes: usize,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            latency_min: Duration::from_micros(200),
            latency_max: Duration::from_millis(3),
            tear_on_crash: 0.5,
            block_bytes: 64,
        }
    }
}

#[derive(Debug)]
struct PendingWrite {
    id: PersistId,
    new_segment: bool,
    bytes: Bytes,
    due: Instant,
}

/// One replica's disk.
#[derive(Debug, Default)]
pub struct SimDisk {
    /// Fault parameters.
    pub config: DiskConfig,
    segments: Vec<Vec<u8>>,
    pending: VecDeque<PendingWrite>,
    /// Writes torn by crashes so far.
    pub tears: u64,
    /// While set, every write fails (no space left on the device).
    pub full: bool,
    /// Writes refused because the disk was full.
    pub refused: u64,
    /// How many upcoming reads of the whole disk (at recovery) fail with
    /// an I/O error.
    pub read_errors: u32,
    /// Reads that failed so far.
    pub failed_reads: u64,
    /// Bits flipped at rest so far.
    pub corruptions: u64,
}

/// A write the disk refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no space left on device")]
pub struct DiskFull;

impl SimDisk {
    /// An empty disk.
    pub fn new(config: DiskConfig) -> SimDisk {
        SimDisk { config, ..SimDisk::default() }
    }

    /// Starts a write that completes (durably, in order) after a latency;
    /// a full disk refuses it and nothing of it lands.
    pub fn write(
        &mut self,
        now: Instant,
        rng: &mut SeededRng,
        id: PersistId,
        new_segment: bool,
        bytes: Bytes,
    ) -> Result<(), DiskFull> {
        if self.full {
            self.refused += 1;
            return Err(DiskFull);
        }
        let min = self.config.latency_min.as_micros() as u64;
        let max = self.config.latency_max.as_micros() as u64;
        let due = Instant::from_micros(now.as_micros() + rng.range(min, max + 1));
        let due = self.pending.back().map_or(due, |last| due.max(last.due));
        self.pending.push_back(PendingWrite { id, new_segment, bytes, due });
        Ok(())
    }

    /// When the next write completes.
    pub fn next_completion(&self) -> Option<Instant> {
        self.pending.front().map(|w| w.due)
    }

    /// Lands every write due by `now`; returns the last id now durable.
    pub fn complete_due(&mut self, now: Instant) -> Option<PersistId> {
        let mut last = None;
        while self.pending.front().is_some_and(|w| w.due <= now) {
            let w = self.pending.pop_front().expect("front exists");
            self.land(w.new_segment, &w.bytes);
            last = Some(w.id);
        }
        last
    }

    fn land(&mut self, new_segment: bool, bytes: &[u8]) {
        if new_segment || self.segments.is_empty() {
            self.segments.push(bytes.to_vec());
            // The driver deletes older segments once the new one is durable.
            let keep = self.segments.len() - 1;
            self.segments.drain(..keep);
        } else {
            self.segments.last_mut().expect("non-empty").extend_from_slice(bytes);
        }
    }

    /// Power loss: pending writes vanish; the oldest may land torn.
    pub fn crash(&mut self, rng: &mut SeededRng) {
        if let Some(first) = self.pending.pop_front() {
            if rng.chance(self.config.tear_on_crash) {
                let blocks = first.bytes.len().div_ceil(self.config.block_bytes) as u64;
                let kept = rng.range(0, blocks) as usize * self.config.block_bytes;
                let torn = &first.bytes[..kept.min(first.bytes.len())];
                if first.new_segment {
                    // A torn new segment: older segments are still there.
                    self.segments.push(torn.to_vec());
                } else if let Some(last) = self.segments.last_mut() {
                    last.extend_from_slice(torn);
                }
                self.tears += 1;
            }
        }
        self.pending.clear();
    }

    /// Whether this read of the disk fails (consuming one pending error): a
    /// driver then retries later, as a supervisor restarting it would.
    pub fn read_fails(&mut self) -> bool {
        let fails = self.read_errors > 0;
        self.read_errors = self.read_errors.saturating_sub(1);
        self.failed_reads += u64::from(fails);
        fails
    }

    /// Flips one bit of data that was durable (corruption at rest);
    /// returns false when there is nothing to corrupt.
    ///
    /// The newest batch is spared: a damaged last batch is, to this format,
    /// exactly what a torn write looks like, and recovery cuts it off as one.
    /// Rot there would silently drop entries the replica acknowledged; that
    /// case needs redundant headers (protocol-aware recovery) and is outside
    /// this model (docs/SIMULATION.md, "Fault model").
    pub fn corrupt_at_rest(&mut self, rng: &mut SeededRng) -> bool {
        let Some(last) = self.segments.last() else { return false };
        let mut offset = 0;
        let mut newest = 0;
        while let Ok((_, len)) = decode_batch_at(last, offset) {
            newest = offset;
            offset += len;
        }
        let older: usize = self.segments[..self.segments.len() - 1].iter().map(Vec::len).sum();
        let exposed = older + newest;
        if exposed == 0 {
            return false;
        }
        let mut at = rng.range(0, exposed as u64) as usize;
        let bit = 1u8 << rng.range(0, 8);
        for segment in &mut self.segments {
            if at < segment.len() {
                segment[at] ^= bit;
                break;
            }
            at -= segment.len();
        }
        self.corruptions += 1;
        true
    }

    /// Recovers the log, truncating a torn tail as a driver would.
    pub fn recover(&mut self) -> Result<RecoveredLog, RecoveryError> {
        let views: Vec<&[u8]> = self.segments.iter().map(Vec::as_slice).collect();
        let log = recover(&views)?;
        if let Some(last) = self.segments.last_mut() {
            last.truncate(log.last_segment_valid_bytes);
        }
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::{encode_batch, DurableHardState, Record};

    fn landed(batches: usize) -> SimDisk {
        let mut disk = SimDisk::new(DiskConfig::default());
        let mut rng = SeededRng::new(1);
        for i in 0..batches {
            let hs = DurableHardState { term: i as u64 + 1, vote: 0, commit: 0 };
            let bytes = Bytes::from(encode_batch(&[Record::HardState(hs)]));
            disk.write(Instant::ZERO, &mut rng, PersistId(i as u64), false, bytes).unwrap();
        }
        disk.complete_due(Instant::from_micros(1_000_000));
        disk
    }

    #[test]
    fn rot_at_rest_is_found_by_recovery_and_spares_the_newest_batch() {
        assert!(!landed(1).corrupt_at_rest(&mut SeededRng::new(7)), "only the newest batch");
        for seed in 0..200 {
            let mut disk = landed(3);
            assert!(disk.corrupt_at_rest(&mut SeededRng::new(seed)));
            assert!(
                matches!(disk.recover(), Err(RecoveryError::Corrupt { .. })),
                "seed {seed}: rot must never pass for a torn tail"
            );
        }
    }
}
