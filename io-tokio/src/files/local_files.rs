//! The files a client offers while it uploads them: the sender's side of
//! `/kith/chunks/1`. Which requests are served is the core's [`Offer`];
//! this hashes local files, keeps their hash trees in memory (64 bytes a
//! 16 KiB group: 4 MiB for a 1 GiB file) and encodes the groups asked for
//! straight from the file, checked against the tree on the way, so a file
//! changed since it was hashed is never sent as the old one.

use super::chunk_stream::ChunkStream;
use super::shared_answers::SharedAnswers;
use bytes::Bytes;
use kith_core::files::{
    outboard_of, ChunkResponse, FileId, Geometry, Offer, OfferDecision, OfferFull, OutboardError,
    ServeError,
};
use kith_core::limits::FILE_BYTES_MAX;
use kith_core::wire::chunk_protocol::ChunkAnswer;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Why a local file cannot be offered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalFileError {
    /// It cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path given.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// It is a directory, a device or the like.
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
    /// It is over the size limit.
    #[error("{path} is {size_bytes} bytes; kith takes files of at most {max} bytes")]
    TooLarge {
        /// The path given.
        path: PathBuf,
        /// Its size.
        size_bytes: u64,
        /// [`FILE_BYTES_MAX`].
        max: u64,
    },
    /// The client already offers as many files as it may.
    #[error(transparent)]
    Full(#[from] OfferFull),
}

/// One local file, hashed.
#[derive(Debug)]
pub struct LocalFile {
    /// Its id.
    pub id: FileId,
    /// Where it is.
    pub path: PathBuf,
    outboard: Vec<u8>,
}

impl LocalFile {
    /// Reads `path` once (blocking) to compute its id and hash tree;
    /// `hashed` hears the bytes read so far.
    pub fn open(path: &Path, mut hashed: impl FnMut(u64)) -> Result<LocalFile, LocalFileError> {
        let io_err = |source| LocalFileError::Io { path: path.to_path_buf(), source };
        let meta = std::fs::metadata(path).map_err(io_err)?;
        if !meta.is_file() {
            return Err(LocalFileError::NotAFile(path.to_path_buf()));
        }
        let size_bytes = meta.len();
        if size_bytes > FILE_BYTES_MAX {
            let path = path.to_path_buf();
            return Err(LocalFileError::TooLarge { path, size_bytes, max: FILE_BYTES_MAX });
        }
        let file = File::open(path).map_err(io_err)?;
        let reader = Counting {
            inner: BufReader::with_capacity(1 << 20, file),
            read: 0,
            hashed: &mut hashed,
        };
        let mut outboard = Vec::new();
        let id = outboard_of(size_bytes, reader, &mut outboard).map_err(|e| match e {
            OutboardError::Io(source) => io_err(source),
            other => io_err(io::Error::other(other.to_string())),
        })?;
        Ok(LocalFile { id, path: path.to_path_buf(), outboard })
    }

    /// Encodes `groups` from the file as it is now.
    fn read(&self, groups: std::ops::Range<u64>) -> Result<ChunkResponse, ServeError> {
        let geometry = Geometry::new(self.id)
            .map_err(|_| ServeError::OutOfRange { groups: groups.clone(), total: 0 })?;
        let data = File::open(&self.path)?;
        ChunkResponse::encode(&geometry, groups, &data, &self.outboard[..])
    }
}

/// A reader that reports how much it has read.
struct Counting<'a, R, F> {
    inner: R,
    read: u64,
    hashed: &'a mut F,
}

impl<R: Read, F: FnMut(u64)> Read for Counting<'_, R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.hashed)(self.read);
        Ok(n)
    }
}

/// The files one client offers, and what it has served of them.
#[derive(Debug, Default)]
pub struct LocalFiles {
    offer: Mutex<Offer<Arc<LocalFile>>>,
    served_bytes: AtomicU64,
    /// Answers shared by replicas asking for the same groups.
    shared: SharedAnswers,
}

impl LocalFiles {
    /// Serves `file` until [`Self::withdraw`].
    pub fn offer(&self, file: Arc<LocalFile>) -> Result<(), LocalFileError> {
        self.offer.lock().expect("not poisoned").add(file.id, file)?;
        Ok(())
    }

    /// Stops serving `file`.
    pub fn withdraw(&self, file: FileId) {
        self.offer.lock().expect("not poisoned").remove(file);
    }

    /// Group bytes served so far, all files.
    pub fn served_bytes(&self) -> u64 {
        self.served_bytes.load(Ordering::Relaxed)
    }

    /// Answers chunk requests from `requests` until the channel closes.
    pub fn serve(self: &Arc<Self>, mut requests: mpsc::Receiver<ChunkStream>) {
        let files = self.clone();
        tokio::spawn(async move {
            while let Some(request) = requests.recv().await {
                let files = files.clone();
                tokio::spawn(async move { files.answer(request).await });
            }
        });
    }

    async fn answer(self: Arc<Self>, request: ChunkStream) {
        let decision = match self.offer.lock().expect("not poisoned").answer(&request.frame) {
            OfferDecision::Answer(answer) => Err(answer),
            OfferDecision::Serve { local, groups } => Ok((local.clone(), groups)),
        };
        let frame = match decision {
            Ok((local, groups)) => {
                let (file, range) = (local.id, groups.clone());
                let make = || async {
                    let answer = self.read(local, groups).await;
                    let carries_groups = matches!(answer, ChunkAnswer::Groups(_));
                    (Bytes::from(answer.encode()), carries_groups)
                };
                let (frame, carries_groups) = self.shared.answer(file, range, make).await;
                if carries_groups {
                    self.served_bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
                }
                frame
            }
            Err(answer) => Bytes::from(answer.encode()),
        };
        request.reply.answer(frame);
    }

    async fn read(&self, local: Arc<LocalFile>, groups: std::ops::Range<u64>) -> ChunkAnswer {
        let path = local.path.clone();
        match tokio::task::spawn_blocking(move || local.read(groups)).await {
            Ok(Ok(response)) => ChunkAnswer::Groups(response),
            Ok(Err(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot serve the file as it was hashed");
                ChunkAnswer::NotHere
            }
            Err(_) => ChunkAnswer::NotHere,
        }
    }
}
