//! A blob's data file opened a second time for direct writes (`O_DIRECT`),
//! so verified groups go to the disk without passing through the page
//! cache, where the file system allows it.
//!
//! Why: a fetched blob is written once and synced at once. Through the
//! page cache every byte is first copied into newly allocated cache pages,
//! and that copy was 40% of a replica's CPU while it stored an upload
//! (`perf`, docs/PERFORMANCE.md section 5): more than decrypting and
//! hashing the same bytes. A direct write hands an aligned buffer to the
//! disk instead (one copy into it, in user space, is far cheaper).
//!
//! Rules:
//! - Only writes of whole aligned blocks at aligned offsets go direct
//!   (every chunk group but a file's last); the rest go through the page
//!   cache, on the other handle of the same file.
//! - A file system that refuses direct I/O (tmpfs refuses the open; some
//!   refuse the write) gets buffered writes from then on; a direct write
//!   that fails for any reason is made again through the cache, which
//!   reports a disk that truly failed.
//! - Durability is unchanged: the blob's sync covers the inode, whichever
//!   handle wrote. Reads stay buffered; the kernel keeps them coherent with
//!   direct writes.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The alignment direct I/O asks of offsets, lengths and buffers (the
/// page size; a multiple of every logical block size in use).
const ALIGN: usize = 4096;

/// The direct handle of one data file, if it has one.
#[derive(Debug)]
pub(super) struct DirectData {
    file: Option<File>,
    /// Direct writes still work here.
    on: AtomicBool,
    /// An aligned copy of the bytes being written.
    scratch: Mutex<Vec<u8>>,
}

impl DirectData {
    /// Opens `path` (which exists) for direct writes; without a direct
    /// handle every write is buffered.
    pub(super) fn open(path: &Path) -> DirectData {
        let file = open_direct(path).ok();
        DirectData { on: AtomicBool::new(file.is_some()), file, scratch: Mutex::new(Vec::new()) }
    }

    /// Writes `data` at `offset` directly if it can; false means it did
    /// not (misaligned, no direct I/O here, or the direct write failed)
    /// and the caller writes it through the page cache.
    pub(super) fn write_at(&self, data: &[u8], offset: u64) -> bool {
        let Some(file) = self.file.as_ref() else { return false };
        let aligned = offset.is_multiple_of(ALIGN as u64)
            && data.len().is_multiple_of(ALIGN)
            && !data.is_empty();
        if !aligned || !self.on.load(Ordering::Relaxed) {
            return false;
        }
        let mut scratch = self.scratch.lock().expect("no writer panicked");
        if scratch.len() < data.len() + ALIGN {
            scratch.resize(data.len() + ALIGN, 0);
        }
        let start = scratch.as_ptr().align_offset(ALIGN);
        if start >= ALIGN {
            return false;
        }
        let buffer = &mut scratch[start..start + data.len()];
        buffer.copy_from_slice(data);
        match file.write_all_at(buffer, offset) {
            Ok(()) => true,
            // Some file systems refuse direct writes only when one is made
            // (`EINVAL`, `EOPNOTSUPP`, ...). Whatever the error, the write
            // is made again through the cache, and so are the later ones:
            // a disk that truly failed fails that write too, and is
            // reported from there.
            Err(e) => {
                tracing::debug!(error = %e, "a direct write failed: writing through the cache");
                self.on.store(false, Ordering::Relaxed);
                false
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path)
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> io::Result<File> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn aligned_writes_go_direct_and_read_back_through_the_cache() {
        let dir = std::env::temp_dir().join(format!("kith-direct-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("data");
        let buffered = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .expect("opens");
        let direct = DirectData::open(&path);
        let (a, b, tail) = (bytes(2 * ALIGN, 1), bytes(ALIGN, 2), bytes(100, 3));
        // Read through the cache first, so stale cached pages would show.
        buffered.write_all_at(&vec![0; 3 * ALIGN], 0).expect("zeros");
        let mut seen = vec![0; 3 * ALIGN];
        buffered.read_exact_at(&mut seen, 0).expect("reads");
        for (data, at) in [(&a, 0u64), (&b, 2 * ALIGN as u64)] {
            if !direct.write_at(data, at) {
                buffered.write_all_at(data, at).expect("buffered write");
            }
        }
        // Misaligned: never direct.
        assert!(!direct.write_at(&tail, 3 * ALIGN as u64 + 1));
        assert!(!direct.write_at(&bytes(ALIGN + 1, 4), 0));
        buffered.write_all_at(&tail, 3 * ALIGN as u64).expect("tail");
        buffered.sync_data().expect("syncs");
        let mut back = vec![0; 3 * ALIGN + tail.len()];
        buffered.read_exact_at(&mut back, 0).expect("reads");
        assert_eq!(&back[..2 * ALIGN], &a[..]);
        assert_eq!(&back[2 * ALIGN..3 * ALIGN], &b[..]);
        assert_eq!(&back[3 * ALIGN..], &tail[..]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
