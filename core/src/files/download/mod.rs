//! The download state machine: fetches a file's chunk groups from several
//! sources, in any order, verifying each on arrival.
//!
//! Rules:
//! - A group is written only after it verified against the root
//!   ([`ChunkResponse::decode`]); a refused response writes nothing.
//! - Progress is handed out for saving only for groups the driver reported
//!   durable, so a saved record never claims data the disk lacks.
//! - At most [`DOWNLOAD_REQUESTS_IN_FLIGHT_MAX`] requests are in flight (and
//!   [`DOWNLOAD_REQUESTS_PER_SOURCE_MAX`] to one source); none while the
//!   requests in flight and the writes waiting on the disk together reach
//!   [`DOWNLOAD_WRITES_PENDING_MAX`] (each request may become a write).
//!   Only groups neither held nor in flight are asked for.
//! - A request that fails, is refused or times out returns its groups to
//!   the missing set and benches its source ([`sources`]); the groups go to
//!   another source.
//! - Complete means every group is durable; as every group matched the
//!   root, the file does too (the driver's final outboard pass re-checks).
//!
//! # The run loop a driver writes
//!
//! ```text
//! let mut d = Download::new(file)?;            // or Download::resume(file, &saved)?
//! d.add_source(now, a); d.add_source(now, b);
//! loop {
//!     while let Some(out) = d.poll_output() {
//!         match out {
//!             Output::Request { id, source, groups } => ask(source, id, groups),
//!             Output::Write { id, offset, data, hash_pairs } => write_sync_then(Input::Written { id }),
//!             Output::SaveProgress { bytes } => replace_atomically_then(Input::ProgressSaved), // or SaveFailed
//!             Output::Completed => return finish(),    // the outboard is whole: its top pair re-checks
//!             Output::Failed(e) => return Err(e),
//!         }
//!     }
//!     match wait_until(d.poll_timeout()) {
//!         Answer(id, response) => { let _ = d.handle_input(now, Input::Answered { id, response }); }
//!         Timer => d.handle_timeout(now),
//!         ...
//!     }
//! }
//! ```

mod input;
mod output;
pub(crate) mod progress;
mod sources;
#[cfg(test)]
mod tests;

pub use input::Input;
pub use output::{DownloadError, Output};
pub use progress::ProgressError;

use super::{ChunkRefusal, ChunkResponse, FileId, FileIdError, Geometry, GroupSet};
use crate::limits::{
    CHUNK_GROUP_BYTES, CHUNK_REQUEST_TIMEOUT_MS, DOWNLOAD_ANSWERED_REMEMBERED_MAX,
    DOWNLOAD_REQUESTS_IN_FLIGHT_MAX, DOWNLOAD_WRITES_PENDING_MAX, GROUPS_PER_REQUEST_MAX,
};
use crate::time::Instant;
use bytes::Bytes;
use sources::{AfterFailure, Sources};
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::time::Duration;

/// Names one chunk request of one download.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Names one write of one download.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteId(pub u64);

/// A request in flight.
#[derive(Clone, Debug)]
struct Flight<S> {
    source: S,
    groups: Range<u64>,
    deadline: Instant,
}

/// Where a download stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes verified (written or being written).
    pub verified_bytes: u64,
    /// Bytes on disk and synced.
    pub durable_bytes: u64,
    /// The file's size.
    pub total_bytes: u64,
}

/// One file's download. `S` names a source (a peer) for the driver.
#[derive(Debug)]
pub struct Download<S> {
    geometry: Geometry,
    /// Verified: written or being written.
    held: GroupSet,
    /// Written and synced.
    durable: GroupSet,
    /// Asked for and not yet answered.
    flying: GroupSet,
    requests: BTreeMap<RequestId, Flight<S>>,
    answered: VecDeque<RequestId>,
    writes: BTreeMap<WriteId, Range<u64>>,
    sources: Sources<S>,
    /// Where the next request starts looking, so requests go forward.
    cursor: u64,
    save_in_flight: bool,
    /// Durable groups not yet in a saved record.
    progress_dirty: bool,
    outputs: VecDeque<Output<S>>,
    finished: bool,
    next_request: u64,
    next_write: u64,
}

impl<S: Ord + Clone> Download<S> {
    /// A download of `file` from nothing.
    pub fn new(file: FileId) -> Result<Download<S>, FileIdError> {
        let geometry = Geometry::new(file)?;
        let durable = GroupSet::empty(geometry.groups());
        Ok(Download::with_durable(geometry, durable))
    }

    /// A download of `file` that goes on from a saved progress record.
    pub fn resume(file: FileId, saved: &[u8]) -> Result<Download<S>, ResumeError> {
        let geometry = Geometry::new(file)?;
        let durable = progress::decode(&geometry, saved)?;
        Ok(Download::with_durable(geometry, durable))
    }

    /// A download of `file` that goes on from `saved` if it is a usable
    /// record; an unusable one is returned with the download started over,
    /// which loses nothing (no byte of a partial file was acknowledged).
    pub fn resume_or_new(
        file: FileId,
        saved: Option<&[u8]>,
    ) -> Result<(Download<S>, Option<ProgressError>), FileIdError> {
        let geometry = Geometry::new(file)?;
        let groups = geometry.groups();
        let (durable, unusable) = match saved.map(|bytes| progress::decode(&geometry, bytes)) {
            Some(Ok(durable)) => (durable, None),
            Some(Err(e)) => (GroupSet::empty(groups), Some(e)),
            None => (GroupSet::empty(groups), None),
        };
        Ok((Download::with_durable(geometry, durable), unusable))
    }

    fn with_durable(geometry: Geometry, durable: GroupSet) -> Download<S> {
        let groups = geometry.groups();
        let mut download = Download {
            geometry,
            held: durable.clone(),
            durable,
            flying: GroupSet::empty(groups),
            requests: BTreeMap::new(),
            answered: VecDeque::new(),
            writes: BTreeMap::new(),
            sources: Sources::new(),
            cursor: 0,
            save_in_flight: false,
            progress_dirty: false,
            outputs: VecDeque::new(),
            finished: false,
            next_request: 0,
            next_write: 0,
        };
        download.finish_if_complete();
        download
    }

    /// The file.
    pub fn file(&self) -> FileId {
        self.geometry.file()
    }

    /// Where it stands.
    pub fn progress(&self) -> Progress {
        Progress {
            verified_bytes: self.bytes_of(&self.held),
            durable_bytes: self.bytes_of(&self.durable),
            total_bytes: self.geometry.file().size_bytes,
        }
    }

    /// Bytes in the groups of `set`: whole groups, but the file's last
    /// group may be short.
    fn bytes_of(&self, set: &GroupSet) -> u64 {
        let full = set.count() * CHUNK_GROUP_BYTES;
        match self.geometry.groups().checked_sub(1) {
            Some(last) if set.contains(last) => {
                let bytes = self.geometry.group_bytes(last);
                full - (CHUNK_GROUP_BYTES - (bytes.end - bytes.start))
            }
            _ => full,
        }
    }

    /// Whether it completed or failed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Offers a source. Sources dropped for failing are not taken back.
    pub fn add_source(&mut self, now: Instant, source: S) -> bool {
        let added = !self.finished && self.sources.add(source);
        self.fill(now);
        added
    }

    /// Withdraws a source (it left the cluster); its requests fail.
    pub fn remove_source(&mut self, now: Instant, source: &S) {
        self.forget_requests_to(source);
        self.sources.remove(source);
        self.fill(now);
    }

    /// Forgets every request to `source`; their groups are missing again.
    fn forget_requests_to(&mut self, source: &S) {
        let ids: Vec<RequestId> =
            self.requests.iter().filter(|(_, f)| f.source == *source).map(|(id, _)| *id).collect();
        for id in ids {
            if let Some(flight) = self.requests.remove(&id) {
                self.unfly(&flight.groups);
            }
        }
    }

    /// Takes in one fact. A refused answer is returned as the refusal (the
    /// download has already dealt with it: nothing written, its source
    /// benched); drivers log it.
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), ChunkRefusal> {
        let result = match input {
            Input::Answered { id, response } => self.answered(now, id, &response),
            Input::RequestFailed { id } => {
                if let Some(flight) = self.requests.remove(&id) {
                    self.request_failed(now, flight, false);
                }
                Ok(())
            }
            Input::Refused { id } => {
                if let Some(flight) = self.requests.remove(&id) {
                    self.request_failed(now, flight, true);
                }
                Ok(())
            }
            Input::Written { id } => {
                self.written(id);
                Ok(())
            }
            Input::WriteFailed { id, reason } => {
                assert!(self.writes.remove(&id).is_some(), "write {id:?} was not handed out");
                self.fail(DownloadError::Disk { reason });
                Ok(())
            }
            Input::ProgressSaved => {
                assert!(self.save_in_flight, "no progress record was handed out");
                self.save_in_flight = false;
                self.save_if_dirty();
                Ok(())
            }
            Input::SaveFailed => {
                assert!(self.save_in_flight, "no progress record was handed out");
                self.save_in_flight = false;
                // What it would have named is still unsaved.
                self.progress_dirty = true;
                Ok(())
            }
        };
        self.fill(now);
        result
    }

    /// Expires requests whose time ran out, then asks again.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<RequestId> =
            self.requests.iter().filter(|(_, f)| f.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some(flight) = self.requests.remove(&id) {
                self.request_failed(now, flight, false);
            }
        }
        self.fill(now);
    }

    /// The next command, if any.
    pub fn poll_output(&mut self) -> Option<Output<S>> {
        self.outputs.pop_front()
    }

    /// When [`Download::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        let deadline = self.requests.values().map(|f| f.deadline).min();
        let missing = self.held.count() + self.flying.count() < self.geometry.groups();
        let unbench = missing.then(|| self.sources.next_unbench()).flatten();
        deadline.into_iter().chain(unbench).min()
    }

    fn answered(
        &mut self,
        now: Instant,
        id: RequestId,
        response: &ChunkResponse,
    ) -> Result<(), ChunkRefusal> {
        let Some(flight) = self.requests.remove(&id) else {
            return Err(if self.answered.contains(&id) {
                ChunkRefusal::Duplicate
            } else {
                ChunkRefusal::Unsolicited
            });
        };
        self.remember_answered(id);
        let verified = match response.decode(&self.geometry, &flight.groups) {
            Ok(verified) => verified,
            Err(refusal) => {
                self.request_failed(now, flight, false);
                return Err(refusal);
            }
        };
        self.unfly(&flight.groups);
        if let Some(s) = self.sources.get_mut(&flight.source) {
            s.in_flight -= 1;
        }
        self.sources.succeeded(&flight.source, verified.groups.end - verified.groups.start);
        for group in verified.groups.clone() {
            assert!(self.held.insert(group), "group {group} was in flight, so not held");
        }
        let write = WriteId(self.next_write);
        self.next_write += 1;
        self.writes.insert(write, verified.groups.clone());
        self.outputs.push_back(Output::Write {
            id: write,
            offset: verified.offset,
            data: verified.data,
            hash_pairs: verified.hash_pairs,
        });
        Ok(())
    }

    fn remember_answered(&mut self, id: RequestId) {
        if self.answered.len() == DOWNLOAD_ANSWERED_REMEMBERED_MAX {
            self.answered.pop_front();
        }
        self.answered.push_back(id);
    }

    /// A request ended without groups; `refused`: its source will not
    /// serve this file at all (else it failed, and is benched or dropped).
    fn request_failed(&mut self, now: Instant, flight: Flight<S>, refused: bool) {
        self.unfly(&flight.groups);
        if let Some(s) = self.sources.get_mut(&flight.source) {
            s.in_flight -= 1;
        }
        let after = if refused {
            self.sources.refused(&flight.source)
        } else {
            self.sources.failed(&flight.source, now)
        };
        if after == Some(AfterFailure::Dropped) {
            self.forget_requests_to(&flight.source);
        }
        // Go back to the failed groups first, so the file fills in order.
        self.cursor = self.cursor.min(flight.groups.start);
    }

    fn unfly(&mut self, groups: &Range<u64>) {
        for group in groups.clone() {
            self.flying.remove(group);
        }
    }

    fn written(&mut self, id: WriteId) {
        let groups =
            self.writes.remove(&id).unwrap_or_else(|| panic!("write {id:?} was not handed out"));
        for group in groups {
            self.durable.insert(group);
        }
        self.progress_dirty = true;
        self.save_if_dirty();
        self.finish_if_complete();
    }

    fn save_if_dirty(&mut self) {
        if self.save_in_flight || !self.progress_dirty || self.finished {
            return;
        }
        self.save_in_flight = true;
        self.progress_dirty = false;
        let bytes = Bytes::from(progress::encode(&self.geometry, &self.durable));
        self.outputs.push_back(Output::SaveProgress { bytes });
    }

    fn finish_if_complete(&mut self) {
        if !self.finished && self.durable.is_full() {
            self.finished = true;
            self.outputs.push_back(Output::Completed);
        }
    }

    fn fail(&mut self, error: DownloadError) {
        if !self.finished {
            self.finished = true;
            // Requests in flight are forgotten, their groups with them.
            self.requests.clear();
            self.flying = GroupSet::empty(self.geometry.groups());
            self.outputs.push_back(Output::Failed(error));
        }
    }

    /// Asks for missing groups while the bounds allow.
    fn fill(&mut self, now: Instant) {
        self.sources.unbench(now);
        while !self.finished
            && self.requests.len() < DOWNLOAD_REQUESTS_IN_FLIGHT_MAX
            // Every request may become a write: it counts from when it is asked.
            && self.requests.len() + self.writes.len() < DOWNLOAD_WRITES_PENDING_MAX
        {
            let Some(groups) =
                self.held.first_gap(&self.flying, self.cursor, GROUPS_PER_REQUEST_MAX)
            else {
                break;
            };
            let Some(source) = self.sources.pick(now) else {
                break;
            };
            for group in groups.clone() {
                self.flying.insert(group);
            }
            if let Some(s) = self.sources.get_mut(&source) {
                s.in_flight += 1;
            }
            let id = RequestId(self.next_request);
            self.next_request += 1;
            let deadline = now + Duration::from_millis(CHUNK_REQUEST_TIMEOUT_MS);
            self.requests
                .insert(id, Flight { source: source.clone(), groups: groups.clone(), deadline });
            self.cursor = groups.end;
            self.outputs.push_back(Output::Request { id, source, groups });
        }
        let idle = self.requests.is_empty() && self.writes.is_empty();
        if !self.finished && idle && self.sources.is_empty() && !self.held.is_full() {
            let (dropped, refused) = (self.sources.dropped(), self.sources.refusals());
            self.fail(DownloadError::NoSources { dropped, refused });
        }
        self.check_invariants();
    }

    fn check_invariants(&self) {
        debug_assert!(self.requests.len() <= DOWNLOAD_REQUESTS_IN_FLIGHT_MAX);
        debug_assert!(self.writes.len() <= DOWNLOAD_WRITES_PENDING_MAX);
        debug_assert!(self.requests.len() + self.writes.len() <= DOWNLOAD_WRITES_PENDING_MAX);
        debug_assert!(self.durable.count() <= self.held.count());
        debug_assert_eq!(
            self.flying.count(),
            self.requests.values().map(|f| f.groups.end - f.groups.start).sum::<u64>(),
            "the flying set is the union of the requests (which never overlap)"
        );
        debug_assert!(self.requests.values().all(|f| !self.held.any(&f.groups)));
    }
}

/// Why a saved download cannot be resumed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResumeError {
    /// The file id is out of range.
    #[error(transparent)]
    File(#[from] FileIdError),
    /// The record is unusable.
    #[error(transparent)]
    Progress(#[from] ProgressError),
}
