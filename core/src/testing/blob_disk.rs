//! A simulated blob store under the download state machine, with the same
//! crash model as [`super::disk::SimDisk`]: writes and progress records are
//! pending until their completion time; a crash loses every pending one and
//! may tear the oldest write (a prefix of its blocks lands). A full disk
//! refuses writes; a bit can rot at rest in a complete copy.
//!
//! It mirrors the real store (`kith-io-tokio`, `storage/blob_store`): a
//! partial copy per file (bytes written at offsets, and the core's progress
//! record, replaced whole or not at all), and complete copies (data and
//! hash tree) that every read checks, so a damaged copy is never served.

use super::disk::{DiskConfig, DiskFull};
use crate::files::download::{ProgressError, WriteId};
use crate::files::{
    build_outboard, top_pair_matches, ChunkResponse, Download, FileId, FileIdError, Geometry,
    HashPairs, OutboardError, ServeError, HASH_PAIR_BYTES,
};
use crate::rng::SeededRng;
use crate::time::Instant;
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;

/// What a pending operation does when it lands.
#[derive(Debug)]
enum Op {
    Write { id: WriteId, offset: u64, data: Bytes, hash_pairs: HashPairs },
    Save(Bytes),
}

#[derive(Debug)]
struct Pending {
    file: FileId,
    op: Op,
    due: Instant,
    /// Whether its landing is reported (false once its download is gone).
    reported: bool,
}

/// A write or progress record that became durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobCompletion {
    /// `Input::Written { id }` for the download of `file`.
    Written {
        /// The file.
        file: FileId,
        /// The write.
        id: WriteId,
    },
    /// `Input::ProgressSaved` for the download of `file`.
    Saved {
        /// The file.
        file: FileId,
    },
}

#[derive(Debug, Default)]
struct Partial {
    data: Vec<u8>,
    /// The hash tree as the writes' pairs assemble it.
    outboard: Vec<u8>,
    progress: Option<Bytes>,
}

#[derive(Debug)]
struct Complete {
    data: Vec<u8>,
    outboard: Vec<u8>,
}

/// One replica's (or client's) blob store.
#[derive(Debug, Default)]
pub struct SimBlobStore {
    /// Fault parameters (latency, tears), as for the log's disk.
    pub config: DiskConfig,
    partial: BTreeMap<FileId, Partial>,
    complete: BTreeMap<FileId, Complete>,
    pending: VecDeque<Pending>,
    /// While set, every write fails (no space left on the device).
    pub full: bool,
    /// Writes torn by crashes so far.
    pub tears: u64,
    /// Bits flipped at rest so far.
    pub corruptions: u64,
    /// Reads skip the check against the root (a bug switch's store).
    #[cfg(feature = "bug-switches")]
    pub reads_unchecked: bool,
}

impl SimBlobStore {
    /// An empty store.
    pub fn new(config: DiskConfig) -> SimBlobStore {
        SimBlobStore { config, ..SimBlobStore::default() }
    }

    /// Whether the store holds all of `file`.
    pub fn has(&self, file: FileId) -> bool {
        self.complete.contains_key(&file)
    }

    /// Starts or resumes fetching `file` from its saved progress record (an
    /// unusable one is returned, and the download starts over).
    pub fn start<S: Ord + Clone>(
        &mut self,
        file: FileId,
    ) -> Result<(Download<S>, Option<ProgressError>), FileIdError> {
        let saved = self.partial.get(&file).and_then(|p| p.progress.clone());
        let started = Download::resume_or_new(file, saved.as_deref())?;
        self.partial.entry(file).or_default();
        Ok(started)
    }

    fn due(&self, now: Instant, rng: &mut SeededRng) -> Instant {
        let min = self.config.latency_min.as_micros() as u64;
        let max = self.config.latency_max.as_micros() as u64;
        let due = Instant::from_micros(now.as_micros() + rng.range(min, max + 1));
        self.pending.back().map_or(due, |last| due.max(last.due))
    }

    /// Starts a verified write (`Output::Write`: the data and its hash
    /// pairs); it lands, synced, after a latency. A full disk refuses it
    /// and nothing of it lands.
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &mut self,
        now: Instant,
        rng: &mut SeededRng,
        file: FileId,
        id: WriteId,
        offset: u64,
        data: Bytes,
        hash_pairs: HashPairs,
    ) -> Result<(), DiskFull> {
        if self.full {
            return Err(DiskFull);
        }
        let due = self.due(now, rng);
        self.pending.push_back(Pending {
            file,
            op: Op::Write { id, offset, data, hash_pairs },
            due,
            reported: true,
        });
        Ok(())
    }

    /// Starts replacing the progress record (`Output::SaveProgress`): it
    /// lands whole after a latency, or not at all.
    pub fn save_progress(&mut self, now: Instant, rng: &mut SeededRng, file: FileId, bytes: Bytes) {
        let due = self.due(now, rng);
        self.pending.push_back(Pending { file, op: Op::Save(bytes), due, reported: true });
    }

    /// When the next pending operation lands.
    pub fn next_completion(&self) -> Option<Instant> {
        self.pending.front().map(|p| p.due)
    }

    /// Lands everything due by `now`, in order. Operations on a file
    /// removed meanwhile land nowhere and are not reported.
    pub fn complete_due(&mut self, now: Instant) -> Vec<BlobCompletion> {
        let mut done = Vec::new();
        while self.pending.front().is_some_and(|p| p.due <= now) {
            let p = self.pending.pop_front().expect("front exists");
            let Some(partial) = self.partial.get_mut(&p.file) else { continue };
            match p.op {
                Op::Write { id, offset, data, hash_pairs } => {
                    land(&mut partial.data, offset, &data);
                    for (at, pairs) in hash_pairs.runs() {
                        land(&mut partial.outboard, at, pairs);
                    }
                    if p.reported {
                        done.push(BlobCompletion::Written { file: p.file, id });
                    }
                }
                Op::Save(bytes) => {
                    partial.progress = Some(bytes);
                    if p.reported {
                        done.push(BlobCompletion::Saved { file: p.file });
                    }
                }
            }
        }
        done
    }

    /// The download of `file` that handed out the pending operations is
    /// gone (it failed, or was stopped): they still land, as writes handed
    /// to a disk do, but a later download of the file does not hear of
    /// them (their ids are not its).
    pub fn detach(&mut self, file: FileId) {
        for p in self.pending.iter_mut().filter(|p| p.file == file) {
            p.reported = false;
        }
    }

    /// After `Output::Completed`: the hash tree the writes' pairs
    /// assembled, its top pair checked against the root, makes the copy
    /// complete (the data is not read again). A tree that does not reach
    /// the root discards the partial copy.
    pub fn finish(&mut self, file: FileId) -> Result<(), OutboardError> {
        let geometry = Geometry::new(file).map_err(|e| {
            OutboardError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))
        })?;
        let mut partial = self.partial.remove(&file).unwrap_or_default();
        partial.data.resize(file.size_bytes as usize, 0);
        partial.outboard.resize(geometry.outboard_bytes() as usize, 0);
        if let Some(at) = partial.outboard.len().checked_sub(HASH_PAIR_BYTES) {
            let top = partial.outboard[at..].try_into().expect("64 bytes");
            if !top_pair_matches(&geometry, top) {
                return Err(OutboardError::Unassembled);
            }
        }
        let (data, outboard) = (partial.data, partial.outboard);
        self.complete.insert(file, Complete { data, outboard });
        Ok(())
    }

    /// Encodes `groups` of a complete copy, checked against the root.
    pub fn read(&self, file: FileId, groups: Range<u64>) -> Result<ChunkResponse, ServeError> {
        let Some(copy) = self.complete.get(&file) else {
            return Err(ServeError::Io(std::io::ErrorKind::NotFound.into()));
        };
        let geometry = Geometry::new(file)
            .map_err(|_| ServeError::OutOfRange { groups: groups.clone(), total: 0 })?;
        #[cfg(feature = "bug-switches")]
        if self.reads_unchecked {
            return ChunkResponse::encode_unchecked(&geometry, groups, &copy.data, &copy.outboard);
        }
        ChunkResponse::encode(&geometry, groups, &copy.data[..], &copy.outboard[..])
    }

    /// Whether `file`'s complete copy is intact (its data and hash tree
    /// match the root), for a fault injector that must leave one good copy.
    pub fn is_intact(&self, file: FileId) -> bool {
        let Some(copy) = self.complete.get(&file) else { return false };
        let Ok(geometry) = Geometry::new(file) else { return false };
        let mut outboard = Vec::new();
        build_outboard(&geometry, &copy.data[..], &mut outboard).is_ok()
            && outboard == copy.outboard
    }

    /// Every file it holds complete, in id order.
    pub fn complete_files(&self) -> Vec<FileId> {
        self.complete.keys().copied().collect()
    }

    /// Removes `file`, complete or partial; its pending operations land
    /// nowhere.
    pub fn remove(&mut self, file: FileId) {
        self.complete.remove(&file);
        self.partial.remove(&file);
        self.pending.retain(|p| p.file != file);
    }

    /// Power loss: pending operations vanish; the oldest write may land
    /// torn (a prefix of its blocks), as a real disk may.
    pub fn crash(&mut self, rng: &mut SeededRng) {
        if let Some(first) = self.pending.pop_front() {
            // A torn write lands a prefix of its data, none of its pairs.
            if let (Op::Write { offset, data, .. }, true) =
                (&first.op, rng.chance(self.config.tear_on_crash))
            {
                let blocks = data.len().div_ceil(self.config.block_bytes) as u64;
                let kept =
                    (rng.range(0, blocks) as usize * self.config.block_bytes).min(data.len());
                if let Some(partial) = self.partial.get_mut(&first.file) {
                    land(&mut partial.data, *offset, &data[..kept]);
                    self.tears += 1;
                }
            }
        }
        self.pending.clear();
    }

    /// Flips one bit of `file`'s complete copy (its data or its hash
    /// tree); false when there is no complete copy to damage.
    pub fn rot(&mut self, rng: &mut SeededRng, file: FileId) -> bool {
        let Some(copy) = self.complete.get_mut(&file) else { return false };
        let total = copy.data.len() + copy.outboard.len();
        if total == 0 {
            return false;
        }
        let at = rng.range(0, total as u64) as usize;
        let bit = 1u8 << rng.range(0, 8);
        match at.checked_sub(copy.data.len()) {
            None => copy.data[at] ^= bit,
            Some(i) => copy.outboard[i] ^= bit,
        }
        self.corruptions += 1;
        true
    }

    /// The complete copy's bytes (for checkers).
    pub fn content(&self, file: FileId) -> Option<&[u8]> {
        self.complete.get(&file).map(|c| &c.data[..])
    }
}

/// Writes `data` at `offset` of `buf`, growing it as a file grows.
fn land(buf: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[offset as usize..end].copy_from_slice(data);
}

#[cfg(test)]
mod tests;
