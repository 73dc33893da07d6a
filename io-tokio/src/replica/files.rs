//! Carrying out the service's file commands: serving chunk groups from the
//! blob store, fetching content (a task per file, [`crate::files::fetch`]),
//! removing released or damaged copies. What is served to whom, what is
//! fetched from where and what is kept are the service's decisions.

use super::askers::Channel;
use super::Replica;
use crate::files::chunk_stream::ChunkStream;
use crate::files::fetch::fetch;
use crate::peer_ids::{peer_of, user_of};
use kith_core::files::{FileId, ServeError};
use kith_core::replica::{FileSource, ServiceInput};
use kith_core::wire::chunk_protocol::ChunkAnswer;
use libp2p::PeerId;
use std::ops::Range;
use tokio::sync::mpsc;

/// File reports queued for the run loop (fetches and serves report once
/// each, and both are bounded).
pub(super) const FILE_REPORTS_QUEUED: usize = 256;

/// What a file task found, for the service.
#[derive(Debug)]
pub(super) enum FileReport {
    Stored(FileId),
    FetchFailed(FileId, String),
    Damaged(FileId),
    Listed(Vec<FileId>),
}

impl Replica {
    /// A chunk request arrived: the service decides.
    pub(super) fn on_chunk_stream(&mut self, request: ChunkStream) {
        let user = user_of(&request.peer);
        let asker = self.askers.name(Channel::Chunks(request.reply));
        self.input(ServiceInput::ChunkRequested { asker, user, frame: request.frame.into() });
    }

    /// A file task's report, as a fact.
    pub(super) fn on_file_report(&mut self, report: FileReport) {
        let input = match report {
            FileReport::Stored(file) => {
                self.fetches.remove(&file);
                ServiceInput::BlobStored { file }
            }
            FileReport::FetchFailed(file, reason) => {
                self.fetches.remove(&file);
                ServiceInput::FetchFailed { file, reason }
            }
            FileReport::Damaged(file) => ServiceInput::BlobDamaged { file },
            FileReport::Listed(files) => ServiceInput::BlobsListed { files },
        };
        self.input(input);
    }

    /// `ServeChunks`: read and check the groups off the event loop; a
    /// damaged or missing copy is answered `NotHere` and reported.
    pub(super) fn serve_chunks(
        &mut self,
        asker: kith_core::replica::AskerId,
        file: FileId,
        groups: Range<u64>,
    ) {
        let Some(Channel::Chunks(reply)) = self.askers.take(asker) else { return };
        let (store, reports) = (self.blobs.clone(), self.file_reports.clone());
        tokio::task::spawn_blocking(move || {
            let answer = match store.read(file, groups) {
                Ok(response) => ChunkAnswer::Groups(response),
                Err(e) => {
                    let damaged = match &e {
                        ServeError::Damaged { .. } => true,
                        ServeError::Io(io) => io.kind() == std::io::ErrorKind::NotFound,
                        _ => false,
                    };
                    tracing::warn!(%file, error = %e, damaged, "cannot serve a stored file");
                    if damaged {
                        let _ = reports.blocking_send(FileReport::Damaged(file));
                    }
                    ChunkAnswer::NotHere
                }
            };
            reply.answer(answer.encode());
        });
    }

    /// `FetchFile`: a task fetches it from the sources this replica can
    /// reach, and reports.
    pub(super) fn fetch_file(&mut self, file: FileId, sources: Vec<FileSource>) {
        let peers: Vec<PeerId> = sources
            .iter()
            .filter_map(|source| match source {
                FileSource::Replica(id) => self.directory.peer(*id),
                FileSource::Client(user) => Some(peer_of(*user)),
            })
            .collect();
        if peers.is_empty() {
            tracing::debug!(%file, "no reachable source to fetch from");
            let reason = "no source of it is reachable".to_string();
            self.input(ServiceInput::FetchFailed { file, reason });
            return;
        }
        let reports = self.file_reports.clone();
        let (control, store) = (self.swarm.behaviour().stream.new_control(), self.blobs.clone());
        // A copy found damaged is removed and fetched again at once: the
        // removal must finish before the fetch makes its partial copy.
        let removal = self.removals.remove(&file);
        let task = tokio::spawn(async move {
            if let Some(removal) = removal {
                let _ = removal.await;
            }
            let report = match fetch(&control, &store, file, &peers, |_| {}).await {
                Ok(fetched) => {
                    tracing::info!(%file, resumed_bytes = fetched.resumed_bytes, "stored a file");
                    FileReport::Stored(file)
                }
                Err(e) => {
                    tracing::warn!(%file, error = %e, "fetching a file failed");
                    FileReport::FetchFailed(file, e.to_string())
                }
            };
            let _ = reports.send(report).await;
        });
        if let Some(old) = self.fetches.insert(file, task.abort_handle()) {
            old.abort();
        }
    }

    /// `ListBlobs`: the store's whole copies, listed off the event loop.
    pub(super) fn list_blobs(&mut self, after: Option<FileId>, max: usize) {
        let (store, reports) = (self.blobs.clone(), self.file_reports.clone());
        tokio::task::spawn_blocking(move || match store.list(after, max) {
            Ok(files) => {
                let _ = reports.blocking_send(FileReport::Listed(files));
            }
            Err(e) => tracing::warn!(error = %e, "listing the stored files failed"),
        });
    }

    /// `RemoveBlob`: stop fetching it and delete every copy of it.
    pub(super) fn remove_blob(&mut self, file: FileId) {
        if let Some(fetching) = self.fetches.remove(&file) {
            fetching.abort();
        }
        let store = self.blobs.clone();
        let removal = tokio::task::spawn_blocking(move || {
            if let Err(e) = store.remove(file) {
                tracing::warn!(%file, error = %e, "removing a file's copy failed");
            }
        });
        self.removals.retain(|_, r| !r.is_finished());
        self.removals.insert(file, removal);
    }
}

/// The channel file tasks report on.
pub(super) fn reports() -> (mpsc::Sender<FileReport>, mpsc::Receiver<FileReport>) {
    mpsc::channel(FILE_REPORTS_QUEUED)
}
