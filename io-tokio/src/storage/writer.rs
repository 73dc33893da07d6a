//! The writer thread: group commit over a [`SegmentLog`].
//!
//! The run loop hands it `Persist` batches in id order; it appends every
//! batch that is waiting, syncs once, and reports the last id made durable.
//! A batch that starts a new segment lets the writer delete the older
//! segments, but only after that batch itself is durable.

use super::segment_log::{SegmentLog, StorageError};
use bytes::Bytes;
use kith_core::ids::PersistId;
use std::sync::mpsc as std_mpsc;
use tokio::sync::mpsc;

/// One batch to make durable.
struct Job {
    id: PersistId,
    new_segment: bool,
    bytes: Bytes,
}

/// What the writer reports back.
#[derive(Debug)]
pub enum WriteReport {
    /// Every batch up to this one is durable.
    Durable(PersistId),
    /// A write failed; the disk can no longer be trusted.
    Failed {
        /// The batch that failed.
        id: PersistId,
        /// Why.
        reason: String,
    },
}

/// The handle the run loop writes through.
#[derive(Debug)]
pub struct DiskWriter {
    jobs: std_mpsc::SyncSender<Job>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Batches waiting for the writer thread; the core never has more in
/// flight than its own persist pipeline allows, so this only bounds bugs.
const JOBS_MAX: usize = 4096;

impl DiskWriter {
    /// Starts the writer thread; reports arrive on the returned receiver.
    pub fn start(log: SegmentLog) -> (DiskWriter, mpsc::UnboundedReceiver<WriteReport>) {
        let (jobs, rx) = std_mpsc::sync_channel(JOBS_MAX);
        let (reports, report_rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("kith-disk".into())
            .spawn(move || run(log, rx, reports))
            .expect("spawning the disk thread");
        (DiskWriter { jobs, thread: Some(thread) }, report_rx)
    }

    /// Writes and syncs every batch already queued, then stops the thread.
    pub fn close(mut self) {
        let thread = self.thread.take();
        drop(self);
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    /// Queues one batch. Returns false once the writer has stopped.
    pub fn write(&self, id: PersistId, new_segment: bool, bytes: Bytes) -> bool {
        self.jobs.send(Job { id, new_segment, bytes }).is_ok()
    }
}

fn run(
    mut log: SegmentLog,
    jobs: std_mpsc::Receiver<Job>,
    reports: mpsc::UnboundedSender<WriteReport>,
) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while let Ok(more) = jobs.try_recv() {
            group.push(more);
        }
        let last = group.last().expect("non-empty").id;
        let rotated = group.iter().any(|j| j.new_segment);
        let result = write_group(&mut log, &group, rotated);
        let report = match result {
            Ok(()) => WriteReport::Durable(last),
            Err((id, e)) => {
                tracing::error!(error = %e, "disk write failed; the replica stops");
                let _ = reports.send(WriteReport::Failed { id, reason: e.to_string() });
                return;
            }
        };
        if reports.send(report).is_err() {
            return;
        }
    }
    // The run loop dropped its handle: everything sent was written above.
}

fn write_group(
    log: &mut SegmentLog,
    group: &[Job],
    rotated: bool,
) -> Result<(), (PersistId, StorageError)> {
    for job in group {
        log.append(job.new_segment, &job.bytes).map_err(|e| (job.id, e))?;
    }
    let last = group.last().expect("non-empty").id;
    log.sync().map_err(|e| (last, e))?;
    if rotated {
        log.purge_older().map_err(|e| (last, e))?;
    }
    Ok(())
}
