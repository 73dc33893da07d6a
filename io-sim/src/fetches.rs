//! Downloads in the simulation: the core's
//! [`Download`](kith_core::files::Download) run loop (documented in
//! `kith_core::files::download`) over chunk datagrams and a
//! [`SimBlobStore`], for a replica's fetches and a client's alike. Every
//! decision is the download's; this file numbers requests, gives up on an
//! unanswered one after a transport timeout (as a real stream times out),
//! and carries writes to the store and completions back.

use bytes::Bytes;
use kith_core::files::download::{Input, Output, RequestId};
use kith_core::files::{Download, FileId};
use kith_core::rng::SeededRng;
use kith_core::testing::blob_disk::{BlobCompletion, SimBlobStore};
use kith_core::time::Instant;
use kith_core::wire::chunk_protocol::{ChunkAnswer, ChunkRequest};
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a chunk request may go unanswered (the datagram or its answer
/// may be lost) before its download hears it failed.
const CHUNK_TRANSPORT_TIMEOUT: Duration = Duration::from_millis(1500);

/// A request on the wire: whose, which, and when it is given up.
struct Asked {
    file: FileId,
    id: RequestId,
    deadline: madsim::time::Instant,
}

/// The downloads one process runs. `S` names a source.
pub struct Fetches<S> {
    downloads: BTreeMap<FileId, Download<S>>,
    /// Files asked for that the store already holds whole: reported stored
    /// by the next pump.
    held: Vec<FileId>,
    asked: BTreeMap<u64, Asked>,
    /// The next correlation: the process's incarnation in the high bits,
    /// so a previous life's answers cannot pass for this one's.
    next: u64,
}

/// What one pump of the downloads asks of the driver.
pub struct Step<S> {
    /// Requests to send: to whom, correlation, frame.
    pub requests: Vec<(S, u64, Vec<u8>)>,
    /// Bytes handed to the store: file, offset, data (for the checkers).
    pub written: Vec<(FileId, u64, Bytes)>,
    /// Downloads that ended: stored whole and checked, or why not.
    pub done: Vec<(FileId, Result<(), String>)>,
}

impl<S: Ord + Clone> Fetches<S> {
    /// No downloads; correlations carry `incarnation` (as every simulated
    /// request's do: `datagram::INCARNATION_SHIFT`).
    pub fn new(incarnation: u64) -> Fetches<S> {
        Fetches {
            downloads: BTreeMap::new(),
            held: Vec::new(),
            asked: BTreeMap::new(),
            next: incarnation << crate::datagram::INCARNATION_SHIFT,
        }
    }

    /// Starts (or resumes from `blobs`' saved progress) fetching `file`
    /// from `sources`; a download already running takes them as more.
    pub fn start(
        &mut self,
        now: Instant,
        blobs: &mut SimBlobStore,
        file: FileId,
        sources: Vec<S>,
    ) -> Result<(), String> {
        // Already here and whole (its record in the log was lost, say, and
        // the replica asked again after a restart): nothing to fetch.
        if !self.downloads.contains_key(&file) && blobs.is_intact(file) {
            self.held.push(file);
            return Ok(());
        }
        let download = match self.downloads.entry(file) {
            Entry::Occupied(running) => running.into_mut(),
            Entry::Vacant(new) => new.insert(blobs.start(file).map_err(|e| e.to_string())?.0),
        };
        for source in sources {
            download.add_source(now, source);
        }
        Ok(())
    }

    /// Whether `file` is being fetched.
    pub fn contains(&self, file: FileId) -> bool {
        self.downloads.contains_key(&file)
    }

    /// Stops fetching `file`: what it handed the store still lands, but a
    /// later download of the file does not hear of it.
    pub fn cancel(&mut self, file: FileId, blobs: &mut SimBlobStore) {
        self.downloads.remove(&file);
        self.held.retain(|f| *f != file);
        self.asked.retain(|_, a| a.file != file);
        blobs.detach(file);
    }

    /// The answer to request `correlation` arrived.
    pub fn answered(&mut self, now: Instant, correlation: u64, frame: &[u8]) {
        let Some(asked) = self.asked.remove(&correlation) else { return };
        let Some(download) = self.downloads.get_mut(&asked.file) else { return };
        let input = match ChunkAnswer::decode(frame) {
            Ok(ChunkAnswer::Groups(response)) => Input::Answered { id: asked.id, response },
            Ok(ChunkAnswer::Forbidden) => Input::Refused { id: asked.id },
            _ => Input::RequestFailed { id: asked.id },
        };
        // A refused response (corrupt, duplicate, out of range) is the
        // download's to count against its source.
        let _ = download.handle_input(now, input);
    }

    /// The store landed a write or a progress record.
    pub fn completed(&mut self, now: Instant, completion: BlobCompletion) {
        let (file, input) = match completion {
            BlobCompletion::Written { file, id } => (file, Input::Written { id }),
            BlobCompletion::Saved { file } => (file, Input::ProgressSaved),
        };
        if let Some(download) = self.downloads.get_mut(&file) {
            let _ = download.handle_input(now, input);
        }
    }

    /// Requests unanswered past the transport timeout fail; downloads
    /// whose timers are due run them.
    pub fn expire(&mut self, now: Instant) {
        let real_now = madsim::time::Instant::now();
        let late: Vec<u64> =
            self.asked.iter().filter(|(_, a)| a.deadline <= real_now).map(|(c, _)| *c).collect();
        for correlation in late {
            let asked = self.asked.remove(&correlation).expect("listed");
            if let Some(download) = self.downloads.get_mut(&asked.file) {
                let _ = download.handle_input(now, Input::RequestFailed { id: asked.id });
            }
        }
        for download in self.downloads.values_mut() {
            if download.poll_timeout().is_some_and(|at| at <= now) {
                download.handle_timeout(now);
            }
        }
    }

    /// The earliest download timer, and the earliest transport deadline.
    pub fn next_wake(&self) -> (Option<Instant>, Option<madsim::time::Instant>) {
        let timer = self.downloads.values().filter_map(Download::poll_timeout).min();
        (timer, self.asked.values().map(|a| a.deadline).min())
    }

    /// Carries out what every download asks: requests to send, writes and
    /// progress records to the store, the end of finished ones.
    pub fn pump(&mut self, now: Instant, blobs: &mut SimBlobStore, rng: &mut SeededRng) -> Step<S> {
        let done = self.held.drain(..).map(|file| (file, Ok(()))).collect();
        let mut step = Step { requests: Vec::new(), written: Vec::new(), done };
        let files: Vec<FileId> = self.downloads.keys().copied().collect();
        for file in files {
            let download = self.downloads.get_mut(&file).expect("listed");
            let mut ended = None;
            while let Some(output) = download.poll_output() {
                match output {
                    Output::Request { id, source, groups } => {
                        self.next += 1;
                        let deadline = madsim::time::Instant::now() + CHUNK_TRANSPORT_TIMEOUT;
                        self.asked.insert(self.next, Asked { file, id, deadline });
                        let request = ChunkRequest {
                            file,
                            first_group: groups.start,
                            group_count: groups.end - groups.start,
                        };
                        step.requests.push((source, self.next, request.encode()));
                    }
                    Output::Write { id, offset, data, hash_pairs } => {
                        match blobs.write(now, rng, file, id, offset, data.clone(), hash_pairs) {
                            Ok(()) => step.written.push((file, offset, data)),
                            Err(full) => {
                                let reason = full.to_string();
                                let _ =
                                    download.handle_input(now, Input::WriteFailed { id, reason });
                            }
                        }
                    }
                    Output::SaveProgress { bytes } => blobs.save_progress(now, rng, file, bytes),
                    Output::Completed => {
                        ended = Some(blobs.finish(file).map_err(|e| e.to_string()));
                        break;
                    }
                    Output::Failed(e) => {
                        ended = Some(Err(e.to_string()));
                        break;
                    }
                }
            }
            if let Some(result) = ended {
                self.cancel(file, blobs);
                step.done.push((file, result));
            }
        }
        step
    }
}
