//! A simulated replica's file content: chunk requests become facts for the
//! service, its `ServeChunks`, `FetchFile` and `RemoveBlob` are carried out
//! on the slot's [`SimBlobStore`](kith_core::testing::blob_disk::SimBlobStore),
//! and the checkers see every chunk served, written and every copy removed.

use super::{Driver, Reply};
use crate::chunk_wire::{self, ChunkDatagram};
use crate::world::replica_addr;
use kith_core::files::FileId;
use kith_core::replica::{AskerId, BlobRemoval, FileSource, ServiceInput};
use kith_core::testing::file_observation::FileObservation;
use kith_core::time::Instant;
use kith_core::wire::chunk_protocol::ChunkAnswer;
use std::ops::Range;

impl Driver {
    /// A chunk datagram: a request becomes a fact for the service, an
    /// answer goes to the download that asked.
    pub(super) fn chunk_arrival(
        &mut self,
        now: Instant,
        datagram: ChunkDatagram,
    ) -> Option<ServiceInput> {
        match datagram {
            ChunkDatagram::Request { from, correlation, user, frame } => {
                let asker = self.asker(Reply::Chunk(from, correlation, user));
                Some(ServiceInput::ChunkRequested { asker, user: Some(user), frame })
            }
            ChunkDatagram::Answer { correlation, frame } => {
                self.fetches.answered(now, correlation, &frame);
                None
            }
        }
    }

    /// `ServeChunks`: reads the groups from the store, checked against the
    /// root; a copy that fails the check is reported damaged and the asker
    /// told `NotHere`.
    pub(super) fn serve_chunks(
        &mut self,
        now: Instant,
        asker: AskerId,
        file: FileId,
        groups: Range<u64>,
    ) {
        let Some(Reply::Chunk(to, correlation, user)) = self.askers.remove(&asker) else { return };
        let applied = self.service().node().status().applied;
        let read = {
            let mut w = self.world.lock();
            let w = &mut *w;
            let blobs = &mut w.replicas.get_mut(&self.id).expect("exists").blobs;
            #[cfg(feature = "bug-switches")]
            {
                blobs.reads_unchecked = w.bugs.serve_unchecked_copies;
            }
            let read = blobs.read(file, groups);
            if let Ok(response) = &read {
                let served = FileObservation::Served {
                    node: Some(self.id),
                    applied,
                    to: user,
                    file,
                    response,
                };
                if let Err(v) = w.checker.on_file(served) {
                    w.fail(v);
                }
            }
            read
        };
        let answer = match read {
            Ok(response) => ChunkAnswer::Groups(response),
            Err(_) => {
                self.service().handle_input(now, ServiceInput::BlobDamaged { file });
                ChunkAnswer::NotHere
            }
        };
        chunk_wire::send_answer(&self.world, &self.endpoint, to, correlation, &answer.encode());
    }

    /// `FetchFile`: starts (or resumes) the download.
    pub(super) fn fetch_file(&mut self, now: Instant, file: FileId, sources: Vec<FileSource>) {
        let started = {
            let mut w = self.world.lock();
            let blobs = &mut w.replicas.get_mut(&self.id).expect("exists").blobs;
            self.fetches.start(now, blobs, file, sources)
        };
        if let Err(reason) = started {
            self.service().handle_input(now, ServiceInput::FetchFailed { file, reason });
        }
    }

    /// `ListBlobs`: the store's whole copies.
    pub(super) fn list_blobs(&mut self, now: Instant, after: Option<FileId>, max: usize) {
        let files: Vec<FileId> = {
            let w = self.world.lock();
            let all = w.replicas[&self.id].blobs.complete_files();
            all.into_iter().filter(|f| after.is_none_or(|a| *f > a)).take(max).collect()
        };
        self.service().handle_input(now, ServiceInput::BlobsListed { files });
    }

    /// `RemoveBlob`: stops fetching and deletes every copy.
    pub(super) fn remove_blob(&mut self, file: FileId, why: BlobRemoval) {
        let mut w = self.world.lock();
        let blobs = &mut w.replicas.get_mut(&self.id).expect("exists").blobs;
        self.fetches.cancel(file, blobs);
        blobs.remove(file);
        let removed = FileObservation::Removed { node: self.id, file, why };
        if let Err(v) = w.checker.on_file(removed) {
            w.fail(v);
        }
    }

    /// Lands the store's due writes and runs the downloads' timers.
    pub(super) fn wake_fetches(&mut self, now: Instant) {
        let landed =
            self.world.lock().replicas.get_mut(&self.id).expect("exists").blobs.complete_due(now);
        for completion in landed {
            self.fetches.completed(now, completion);
        }
        self.fetches.expire(now);
    }

    /// Carries out what the downloads ask; true if any ended (the service
    /// heard, and may have more to say).
    pub(super) fn pump_fetches(&mut self, now: Instant) -> bool {
        let step = {
            let mut w = self.world.lock();
            let w = &mut *w;
            let blobs = &mut w.replicas.get_mut(&self.id).expect("exists").blobs;
            let step = self.fetches.pump(now, blobs, &mut w.files.rng);
            for (file, offset, data) in &step.written {
                let written = FileObservation::Written { file: *file, offset: *offset, data };
                if let Err(v) = w.checker.on_file(written) {
                    w.fail(v);
                }
            }
            step
        };
        for (source, correlation, frame) in step.requests {
            let to = match source {
                FileSource::Replica(id) => Some(replica_addr(id)),
                FileSource::Client(user) => {
                    self.world.lock().files.client_addrs.get(&user).copied()
                }
            };
            // An address nobody has: the request times out, as a dial would.
            if let Some(to) = to {
                chunk_wire::send_request(
                    &self.world,
                    &self.endpoint,
                    to,
                    correlation,
                    self.me,
                    &frame,
                );
            }
        }
        let ended = !step.done.is_empty();
        for (file, result) in step.done {
            let input = match result {
                Ok(()) => ServiceInput::BlobStored { file },
                Err(reason) => ServiceInput::FetchFailed { file, reason },
            };
            self.service().handle_input(now, input);
        }
        ended
    }

    /// When the store lands its next write, and the downloads' next timer
    /// or transport deadline, on the simulation's clock.
    pub(super) fn fetches_wake(&self) -> Option<madsim::time::Instant> {
        let landing = self.world.lock().replicas[&self.id].blobs.next_completion();
        let (timer, deadline) = self.fetches.next_wake();
        let core = [landing, timer].into_iter().flatten().min().map(|t| self.clock.deadline(t));
        [core, deadline].into_iter().flatten().min()
    }
}
