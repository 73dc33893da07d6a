//! Segment files: recovery at start-up and appends afterwards.

use kith_core::durable::{self, RecoveredLog, RecoveryError};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why the disk could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The log is damaged before its tail.
    #[error(
        "{path} is corrupt at byte {offset} ({detail}): data that was once durable is damaged, \
         so the replica will not start. Replace it as a new member: `kith cluster remove` its \
         peer id (see `kith cluster status`), move {dir} aside, start an empty replica with \
         --join (a fresh directory is a fresh key), and add it with `kith cluster add` so it \
         copies a healthy replica's state"
    )]
    Corrupt {
        /// The damaged segment.
        path: PathBuf,
        /// Where in it.
        offset: usize,
        /// What is wrong there.
        detail: String,
        /// The data directory to move aside.
        dir: PathBuf,
    },
    /// A file in `log/` that is not a segment.
    #[error("unexpected file {0} in the log directory; remove it or restore the directory")]
    StrayFile(PathBuf),
    /// Another process holds the directory.
    #[error("{0} is in use by another kith process (its LOCK file is held)")]
    Locked(PathBuf),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| StorageError::Io { action, path: path.to_path_buf(), source }
}

/// The open log of one replica.
#[derive(Debug)]
pub struct SegmentLog {
    dir: PathBuf,
    /// Segment numbers on disk, oldest first; the last is open for append.
    segments: Vec<u64>,
    file: File,
    _lock: File,
}

impl SegmentLog {
    /// Opens (creating if needed) the log under `data_dir`, recovers it, and
    /// truncates a torn tail. Damage before the tail is an error that names
    /// the file.
    pub fn open(data_dir: &Path) -> Result<(SegmentLog, RecoveredLog), StorageError> {
        let lock_path = data_dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        if lock.try_lock().is_err() {
            return Err(StorageError::Locked(data_dir.to_path_buf()));
        }
        let dir = data_dir.join("log");
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let mut segments = list_segments(&dir)?;
        let mut contents = Vec::with_capacity(segments.len());
        for n in &segments {
            let path = segment_path(&dir, *n);
            contents.push(fs::read(&path).map_err(io_err("read", &path))?);
        }
        let views: Vec<&[u8]> = contents.iter().map(Vec::as_slice).collect();
        let recovered = durable::recover(&views).map_err(|cause| {
            let (index, offset, detail) = match &cause {
                RecoveryError::Corrupt { segment, offset, cause } => {
                    (*segment, *offset, cause.to_string())
                }
                RecoveryError::Inconsistent { segment, offset, reason } => {
                    (*segment, *offset, (*reason).to_string())
                }
                other => (0, 0, other.to_string()),
            };
            StorageError::Corrupt {
                path: segment_path(&dir, segments.get(index).copied().unwrap_or(0)),
                offset,
                detail,
                dir: data_dir.to_path_buf(),
            }
        })?;
        if segments.is_empty() {
            segments.push(1);
        }
        let last = segment_path(&dir, *segments.last().expect("non-empty"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&last)
            .map_err(io_err("open", &last))?;
        if recovered.torn_tail_bytes > 0 {
            tracing::warn!(
                file = %last.display(),
                torn_bytes = recovered.torn_tail_bytes,
                "truncating a torn write at the end of the log"
            );
            file.set_len(recovered.last_segment_valid_bytes as u64)
                .map_err(io_err("truncate", &last))?;
            file.sync_all().map_err(io_err("fsync", &last))?;
        }
        sync_dir(&dir)?;
        let mut log = SegmentLog { dir, segments, file, _lock: lock };
        log.seek_end()?;
        Ok((log, recovered))
    }

    fn seek_end(&mut self) -> Result<(), StorageError> {
        use std::io::Seek;
        let path = self.current_path();
        self.file.seek(io::SeekFrom::End(0)).map_err(io_err("seek", &path))?;
        Ok(())
    }

    fn current_path(&self) -> PathBuf {
        segment_path(&self.dir, *self.segments.last().expect("never empty"))
    }

    /// Appends one batch (not yet durable). With `new_segment` the batch
    /// starts a new file; the previous one is synced first so that the old
    /// segments stay complete until the new one is durable.
    pub fn append(&mut self, new_segment: bool, bytes: &[u8]) -> Result<(), StorageError> {
        if new_segment {
            self.sync()?;
            let next = self.segments.last().copied().unwrap_or(0) + 1;
            let path = segment_path(&self.dir, next);
            self.file = OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(&path)
                .map_err(io_err("create", &path))?;
            self.segments.push(next);
            sync_dir(&self.dir)?;
        }
        let path = self.current_path();
        self.file.write_all(bytes).map_err(io_err("write", &path))
    }

    /// Makes every append so far durable.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        let path = self.current_path();
        self.file.sync_data().map_err(io_err("fdatasync", &path))
    }

    /// Deletes every segment older than the current one (call only once the
    /// current segment's first batch is durable).
    pub fn purge_older(&mut self) -> Result<(), StorageError> {
        let keep = self.segments.len().saturating_sub(1);
        for n in self.segments.drain(..keep) {
            let path = segment_path(&self.dir, n);
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
        }
        sync_dir(&self.dir)
    }

    /// The segment files on disk, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|n| segment_path(&self.dir, *n)).collect()
    }
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.seg"))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let path = entry.map_err(io_err("list", dir))?.path();
        let number = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".seg"))
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok());
        match number {
            Some(n) => found.push(n),
            None => return Err(StorageError::StrayFile(path)),
        }
    }
    found.sort_unstable();
    Ok(found)
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync directory", dir))
}
