//! Fetching one file into a blob store: the core's
//! [`Download`](kith_core::files::Download) run loop
//! (documented in `kith_core::files::download`) over `/kith/chunks/1`
//! streams and a [`PartialBlob`].
//!
//! Requests run as tasks (each bounded by the chunk timeout); disk work
//! runs on one blocking worker that writes what has queued and syncs once
//! for all of it (group sync: a write is reported `Written` only after the
//! sync that covers it). Results come back to the loop as facts.
//! Dropping the future aborts the requests; writes already handed to the
//! disk finish, and the progress record never names more than is synced,
//! so a fetch stopped anywhere resumes from what is on disk.

use crate::net::behaviour::CHUNKS_PROTOCOL;
use crate::net::codec::{read_answer_frame, write_frame};
use crate::storage::{BlobError, BlobStore, PartialBlob};
use bytes::Bytes;
use kith_core::files::download::{DownloadError, Input, Output, Progress, RequestId, WriteId};
use kith_core::files::{FileId, HashPairs};
use kith_core::limits::CHUNK_REQUEST_TIMEOUT_MS;
use kith_core::time::DriverClock;
use kith_core::wire::chunk_protocol::{ChunkAnswer, ChunkRequest, CHUNK_ANSWER_FRAME_BYTES_MAX};
use libp2p::PeerId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Why a fetch stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No source could serve it, or the disk failed under the download.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// The blob store refused (disk full, permissions, bytes changed).
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// What a finished fetch did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes already on disk from an earlier, interrupted fetch.
    pub resumed_bytes: u64,
    /// Bytes of answers received in this run (frames, hashes included).
    pub received_bytes: u64,
}

/// A result coming back to the loop.
enum Fact {
    Answered { id: RequestId, answer: Option<ChunkAnswer>, bytes: u64 },
    Written { id: WriteId, result: Result<(), String> },
    Saved(Result<(), String>),
}

/// Fetches `file` into `store` from `sources`, resuming what an earlier
/// fetch left; `progress` hears where it stands after every step. When it
/// returns `Ok`, the store holds the whole file, checked against its root.
pub async fn fetch(
    control: &libp2p_stream::Control,
    store: &BlobStore,
    file: FileId,
    sources: &[PeerId],
    mut progress: impl FnMut(Progress),
) -> Result<Fetched, FetchError> {
    // Already here and whole (its record in the log was lost, say, and the
    // replica asked again after a restart): nothing to fetch.
    let held = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.holds_intact(file))
            .await
            .map_err(blocking_failed)??
    };
    if held {
        return Ok(Fetched { resumed_bytes: file.size_bytes, received_bytes: 0 });
    }
    let opened = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.start::<PeerId>(file))
            .await
            .map_err(blocking_failed)??
    };
    let (mut download, partial, unusable) = opened;
    if let Some(e) = unusable {
        tracing::warn!(%file, error = %e, "the saved progress was unusable; fetching from the start");
    }
    let partial = Arc::new(partial);
    let started = tokio::time::Instant::now();
    let clock = DriverClock::new(0, 0);
    let now = || clock.at(started.elapsed());
    for source in sources {
        download.add_source(now(), *source);
    }
    let resumed_bytes = download.progress().durable_bytes;
    let mut received_bytes = 0;
    let (facts_tx, mut facts) = mpsc::channel(64);
    let mut requests = JoinSet::new();
    let (jobs, jobs_rx) = mpsc::unbounded_channel();
    let disk = {
        let (partial, facts) = (partial.clone(), facts_tx.clone());
        tokio::task::spawn_blocking(move || disk_worker(&partial, jobs_rx, &facts))
    };
    loop {
        while let Some(output) = download.poll_output() {
            match output {
                Output::Request { id, source, groups } => {
                    let request = ChunkRequest {
                        file,
                        first_group: groups.start,
                        group_count: groups.end - groups.start,
                    };
                    requests.spawn(ask(control.clone(), source, request, id, facts_tx.clone()));
                }
                // The worker outlives every job sent to it (it stops when
                // `jobs` is dropped), so a send cannot fail.
                Output::Write { id, offset, data, hash_pairs } => {
                    let _ = jobs.send(DiskJob::Write { id, offset, data, hash_pairs });
                }
                Output::SaveProgress { bytes } => {
                    let _ = jobs.send(DiskJob::Save(bytes));
                }
                Output::Completed => {
                    requests.abort_all();
                    // Nothing more is read: the worker's last reports are
                    // dropped rather than waited on.
                    facts.close();
                    drop(jobs);
                    disk.await.map_err(blocking_failed)?;
                    finish(store, partial).await?;
                    return Ok(Fetched { resumed_bytes, received_bytes });
                }
                Output::Failed(e) => return Err(e.into()),
            }
        }
        progress(download.progress());
        let wake = download.poll_timeout().map_or(Duration::from_secs(1), |at| {
            clock.elapsed_at(at).saturating_sub(started.elapsed())
        });
        tokio::select! {
            Some(fact) = facts.recv() => {
                if let Fact::Answered { bytes, .. } = &fact {
                    received_bytes += bytes;
                }
                if let Err(refusal) = download.handle_input(now(), fact.into_input(file)) {
                    tracing::debug!(%file, %refusal, "a chunk answer was refused");
                }
            }
            () = tokio::time::sleep(wake) => download.handle_timeout(now()),
        }
        // Finished tasks leave the set as the loop goes.
        while requests.try_join_next().is_some() {}
    }
}

impl Fact {
    /// The fact as the download's input.
    fn into_input(self, file: FileId) -> Input {
        match self {
            Fact::Answered { id, answer: Some(ChunkAnswer::Groups(response)), .. } => {
                Input::Answered { id, response }
            }
            Fact::Answered { id, answer: Some(ChunkAnswer::Forbidden), .. } => {
                Input::Refused { id }
            }
            Fact::Answered { id, .. } => Input::RequestFailed { id },
            Fact::Written { id, result: Ok(()) } => Input::Written { id },
            Fact::Written { id, result: Err(reason) } => Input::WriteFailed { id, reason },
            Fact::Saved(Ok(())) => Input::ProgressSaved,
            Fact::Saved(Err(reason)) => {
                tracing::warn!(%file, %reason, "saving download progress failed");
                Input::SaveFailed
            }
        }
    }
}

/// After the download completed and every write finished: checks the
/// assembled hash tree's top pair and moves the blob into place.
async fn finish(store: &BlobStore, partial: Arc<PartialBlob>) -> Result<(), FetchError> {
    let partial = Arc::into_inner(partial).expect("every write has finished");
    let store = store.clone();
    tokio::task::spawn_blocking(move || partial.finish(&store))
        .await
        .map_err(blocking_failed)??;
    Ok(())
}

/// One request on its own stream; the answer (or `None`: no answer in
/// time, a failed stream, an undecodable frame) goes back as a fact.
async fn ask(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    request: ChunkRequest,
    id: RequestId,
    facts: mpsc::Sender<Fact>,
) {
    let exchange = async {
        let mut stream = control.open_stream(peer, CHUNKS_PROTOCOL).await.ok()?;
        write_frame(&mut stream, &request.encode()).await.ok()?;
        read_answer_frame(&mut stream, CHUNK_ANSWER_FRAME_BYTES_MAX).await.ok()
    };
    let limit = Duration::from_millis(CHUNK_REQUEST_TIMEOUT_MS);
    let frame = tokio::time::timeout(limit, exchange).await.ok().flatten();
    let bytes = frame.as_ref().map_or(0, |f| f.len() as u64);
    let answer = frame.and_then(|f| ChunkAnswer::decode(&f).ok());
    if let Some(other) = answer.as_ref().filter(|a| !matches!(a, ChunkAnswer::Groups(_))) {
        tracing::debug!(%peer, answer = ?other, "a source did not serve the groups");
    }
    let _ = facts.send(Fact::Answered { id, answer, bytes }).await;
}

/// Disk work for the worker, in the order the download asked for it.
enum DiskJob {
    Write { id: WriteId, offset: u64, data: Bytes, hash_pairs: HashPairs },
    Save(Bytes),
}

/// Takes whatever jobs have queued, writes them, syncs once, then reports
/// each write and saves the progress records (which name only groups
/// already reported written, so saving after the sync is safe).
fn disk_worker(
    partial: &PartialBlob,
    mut jobs: mpsc::UnboundedReceiver<DiskJob>,
    facts: &mpsc::Sender<Fact>,
) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while let Ok(job) = jobs.try_recv() {
            batch.push(job);
        }
        let mut written = Vec::new();
        let mut saves = Vec::new();
        for job in batch {
            match job {
                DiskJob::Write { id, offset, data, hash_pairs } => {
                    written.push((id, partial.write_unsynced(offset, &data, &hash_pairs)));
                }
                DiskJob::Save(bytes) => saves.push(bytes),
            }
        }
        let synced = partial.sync();
        for (id, result) in written {
            let result = match (&result, &synced) {
                (Err(e), _) | (Ok(()), Err(e)) => Err(e.to_string()),
                (Ok(()), Ok(())) => Ok(()),
            };
            let _ = facts.blocking_send(Fact::Written { id, result });
        }
        for bytes in saves {
            let result = partial.save_progress(&bytes).map_err(|e| e.to_string());
            let _ = facts.blocking_send(Fact::Saved(result));
        }
    }
}

fn blocking_failed(e: tokio::task::JoinError) -> FetchError {
    FetchError::Blob(BlobError::Io {
        path: std::path::PathBuf::new(),
        source: std::io::Error::other(e.to_string()),
    })
}
