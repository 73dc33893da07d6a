//! File content on disk: a content-addressed store of blobs, each named by
//! its [`FileId`]. It carries out what the core decides (the download state
//! machine's writes and progress records; the final check that the bytes
//! are the file) and keeps nothing the core should rule on.
//!
//! Layout, under the store's directory:
//! - `partial/<id>/data`: the content being fetched, written at offsets.
//! - `partial/<id>/outboard`: its hash tree, assembled from the pairs
//!   that proved each group on arrival (synced with the groups).
//! - `partial/<id>/progress`: the core's progress record (replaced
//!   atomically: written beside, synced, renamed, directory synced).
//! - `complete/<id>/data` and `complete/<id>/outboard`: a finished blob and
//!   its BLAKE3 hash tree (bao-tree's post-order outboard), which every
//!   read checks, so a damaged copy is never served.
//!
//! A blob moves from `partial` to `complete` by one directory rename, after
//! its data and outboard are synced: a crash leaves either a partial blob
//! (resumed from its record) or a complete one, never a half-finished one.
//! A fetched blob's data is not read again to finish it: every group and
//! every pair was checked against the root on arrival, and every read of
//! the complete copy checks them again.

use bytes::Bytes;
use kith_core::files::download::ProgressError;
use kith_core::files::{
    build_outboard, top_pair_matches, ChunkResponse, Download, FileId, Geometry, HashPairs,
    OutboardError, ServeError, HASH_PAIR_BYTES,
};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

mod direct_data;

use direct_data::DirectData;

/// Where whole copies live, one directory per file.
const COMPLETE: &str = "complete";
/// Where copies being fetched live, with their progress records.
const PARTIAL: &str = "partial";

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The disk refused (full, read-only, gone).
    #[error("blob store at {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// What the disk said.
        source: io::Error,
    },
    /// The bytes written are not the file: the partial blob is discarded.
    #[error("the fetched bytes are not the file ({0}); fetch it again")]
    NotTheFile(OutboardError),
    /// The file id is out of range.
    #[error(transparent)]
    File(#[from] kith_core::files::FileIdError),
}

/// The blob store of one process.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

/// A blob being fetched: where its bytes and progress go.
#[derive(Debug)]
pub struct PartialBlob {
    file: FileId,
    dir: PathBuf,
    data: File,
    /// The data file again, for writes around the page cache.
    direct: DirectData,
    outboard: File,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Io { path: path.to_path_buf(), source }
}

/// Makes a rename or creation in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_at(dir))
}

impl BlobStore {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<BlobStore, BlobError> {
        let dir = dir.into();
        for sub in [PARTIAL, COMPLETE] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(io_at(&path))?;
        }
        Ok(BlobStore { dir })
    }

    fn complete_dir(&self, file: FileId) -> PathBuf {
        self.dir.join(COMPLETE).join(file.to_string())
    }

    fn partial_dir(&self, file: FileId) -> PathBuf {
        self.dir.join(PARTIAL).join(file.to_string())
    }

    /// Whether the store holds all of `file`.
    pub fn has(&self, file: FileId) -> bool {
        self.complete_dir(file).join("outboard").is_file()
    }

    /// The files the store holds whole, in id order, after `after`, at most
    /// `max` (entries that do not name a file are not the store's: left).
    pub fn list(&self, after: Option<FileId>, max: usize) -> Result<Vec<FileId>, BlobError> {
        let dir = self.dir.join(COMPLETE);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at(&dir)(e)),
        };
        let mut files = std::collections::BTreeSet::new();
        for entry in entries {
            let entry = entry.map_err(io_at(&dir))?;
            let Some(file) = entry.file_name().to_str().and_then(|n| n.parse::<FileId>().ok())
            else {
                continue;
            };
            if after.is_none_or(|a| file > a) && self.has(file) {
                files.insert(file);
                // Keep the `max` smallest only: memory stays bounded.
                if files.len() > max {
                    files.pop_last();
                }
            }
        }
        Ok(files.into_iter().collect())
    }

    /// Whether the store holds all of `file` and its bytes are the file's
    /// (one pass over them: their BLAKE3 root must be the id's).
    pub fn holds_intact(&self, file: FileId) -> Result<bool, BlobError> {
        if !self.has(file) {
            return Ok(false);
        }
        let Ok(geometry) = Geometry::new(file) else { return Ok(false) };
        let path = self.complete_dir(file).join("data");
        let data = File::open(&path).map_err(io_at(&path))?;
        let reader = BufReader::with_capacity(1 << 20, data);
        Ok(build_outboard(&geometry, reader, io::sink()).is_ok())
    }

    /// Starts or resumes fetching `file`: the download state machine, from
    /// the saved progress record if there is a usable one (a damaged record
    /// is reported and the fetch starts over: nothing was ever acknowledged
    /// for a partial blob), and where its bytes go.
    pub fn start<S: Ord + Clone>(
        &self,
        file: FileId,
    ) -> Result<(Download<S>, PartialBlob, Option<ProgressError>), BlobError> {
        let dir = self.partial_dir(file);
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let open = |name: &str| {
            let path = dir.join(name);
            let mut options = OpenOptions::new();
            options.create(true).truncate(false).read(true).write(true);
            options.open(&path).map_err(io_at(&path))
        };
        // A partial blob from before outboards were assembled on arrival
        // has groups without their pairs: it starts over.
        let assembling = dir.join("outboard").is_file();
        let data = open("data")?;
        let direct = DirectData::open(&dir.join("data"));
        let outboard = open("outboard")?;
        let saved = match fs::read(dir.join("progress")) {
            Ok(_) if !assembling => None,
            Ok(saved) => Some(saved),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(BlobError::Io { path: dir.join("progress"), source: e }),
        };
        let (download, damaged) = Download::resume_or_new(file, saved.as_deref())?;
        Ok((download, PartialBlob { file, dir, data, direct, outboard }, damaged))
    }

    /// Encodes `groups` of a complete blob, checking them against the root:
    /// a damaged copy answers [`ServeError::Damaged`] and sends nothing.
    pub fn read(&self, file: FileId, groups: Range<u64>) -> Result<ChunkResponse, ServeError> {
        let geometry = Geometry::new(file)
            .map_err(|_| ServeError::OutOfRange { groups: groups.clone(), total: 0 })?;
        let dir = self.complete_dir(file);
        let data = File::open(dir.join("data"))?;
        let outboard = File::open(dir.join("outboard"))?;
        ChunkResponse::encode(&geometry, groups, &data, &outboard)
    }

    /// Moves a complete blob's content out to `to`, a new file (an existing
    /// one is never overwritten), and forgets the blob. The content is
    /// linked when `to` is on the same file system, else copied and synced
    /// beside `to` and renamed into place: `to` appears whole or not at all.
    pub fn export(&self, file: FileId, to: &Path) -> Result<(), BlobError> {
        let data = self.complete_dir(file).join("data");
        let parent = match to.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match fs::hard_link(&data, to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(io_at(to)(e)),
            Err(_) => {
                let mut part = to.as_os_str().to_owned();
                part.push(".kith-part");
                let part = PathBuf::from(part);
                fs::copy(&data, &part).map_err(io_at(&part))?;
                File::open(&part).and_then(|f| f.sync_all()).map_err(io_at(&part))?;
                if to.exists() {
                    let _ = fs::remove_file(&part);
                    let exists = io::Error::from(io::ErrorKind::AlreadyExists);
                    return Err(io_at(to)(exists));
                }
                fs::rename(&part, to).map_err(io_at(to))?;
            }
        }
        sync_dir(&parent)?;
        self.remove(file)
    }

    /// Removes `file`, complete or partial (released content, or a damaged
    /// copy before it is fetched again).
    pub fn remove(&self, file: FileId) -> Result<(), BlobError> {
        for dir in [self.complete_dir(file), self.partial_dir(file)] {
            match fs::remove_dir_all(&dir) {
                Ok(()) => sync_dir(dir.parent().expect("inside the store"))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(BlobError::Io { path: dir, source: e }),
            }
        }
        Ok(())
    }
}

impl PartialBlob {
    /// Writes verified bytes at `offset` and the pairs that proved them,
    /// and syncs them (the core's `Output::Write`; report `Input::Written`
    /// after, or `WriteFailed`).
    pub fn write(&self, offset: u64, data: &[u8], pairs: &HashPairs) -> Result<(), BlobError> {
        self.write_unsynced(offset, data, pairs)?;
        self.sync()
    }

    /// Writes verified bytes at `offset` and their pairs without syncing:
    /// they are durable (and may be reported `Written`) only after a later
    /// [`Self::sync`].
    pub fn write_unsynced(
        &self,
        offset: u64,
        data: &[u8],
        pairs: &HashPairs,
    ) -> Result<(), BlobError> {
        // Paths are named only on failure: this runs for every answer.
        let failed = |name: &'static str| {
            let dir = &self.dir;
            move |source| BlobError::Io { path: dir.join(name), source }
        };
        if !self.direct.write_at(data, offset) {
            self.data.write_all_at(data, offset).map_err(failed("data"))?;
        }
        for (at, bytes) in pairs.runs() {
            self.outboard.write_all_at(bytes, at).map_err(failed("outboard"))?;
        }
        Ok(())
    }

    /// Makes every write so far durable (one sync for a batch of writes).
    pub fn sync(&self) -> Result<(), BlobError> {
        self.data.sync_data().map_err(io_at(&self.dir.join("data")))?;
        self.outboard.sync_data().map_err(io_at(&self.dir.join("outboard")))
    }

    /// Replaces the progress record (the core's `Output::SaveProgress`):
    /// written beside, synced, renamed over, directory synced.
    pub fn save_progress(&self, record: &Bytes) -> Result<(), BlobError> {
        let tmp = self.dir.join("progress.tmp");
        let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
        f.write_all(record).and_then(|()| f.sync_data()).map_err(io_at(&tmp))?;
        let path = self.dir.join("progress");
        fs::rename(&tmp, &path).map_err(io_at(&path))?;
        sync_dir(&self.dir)
    }

    /// After `Output::Completed`: checks that the hash tree assembled on
    /// arrival reaches the root (its top pair), syncs it and moves the
    /// blob into the complete store. A tree that does not reach the root
    /// discards the partial blob.
    pub fn finish(self, store: &BlobStore) -> Result<(), BlobError> {
        let geometry = Geometry::new(self.file)?;
        let data_path = self.dir.join("data");
        let outboard_path = self.dir.join("outboard");
        self.data.set_len(self.file.size_bytes).map_err(io_at(&data_path))?;
        let outboard_bytes = geometry.outboard_bytes();
        self.outboard.set_len(outboard_bytes).map_err(io_at(&outboard_path))?;
        if let Some(at) = outboard_bytes.checked_sub(HASH_PAIR_BYTES as u64) {
            let mut top = [0; HASH_PAIR_BYTES];
            self.outboard.read_exact_at(&mut top, at).map_err(io_at(&outboard_path))?;
            if !top_pair_matches(&geometry, &top) {
                let _ = fs::remove_dir_all(&self.dir);
                return Err(BlobError::NotTheFile(OutboardError::Unassembled));
            }
        }
        self.outboard.sync_all().map_err(io_at(&outboard_path))?;
        self.data.sync_all().map_err(io_at(&data_path))?;
        let _ = fs::remove_file(self.dir.join("progress"));
        let target = store.complete_dir(self.file);
        match fs::rename(&self.dir, &target) {
            Ok(()) => {}
            // Someone finished the same content first: ours is a duplicate.
            Err(_) if store.has(self.file) => {
                let _ = fs::remove_dir_all(&self.dir);
            }
            Err(e) => return Err(BlobError::Io { path: target, source: e }),
        }
        sync_dir(&store.dir.join(PARTIAL))?;
        sync_dir(&store.dir.join(COMPLETE))
    }
}

#[cfg(test)]
mod tests;
