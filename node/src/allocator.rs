//! glibc's malloc, tuned for the buffers kith makes and drops.
//!
//! A file transfer moves chunk answers of about 270 KiB, and a busy
//! replica Raft batches of similar size, each allocated on one thread and
//! freed soon after, on every tokio worker. With glibc's defaults each
//! thread's arena gives the freed top of its heap back to the kernel once
//! it passes about a megabyte (`madvise`), and the next buffer faults the
//! same pages in again, zeroed: in a 256 MiB fetch's profile, page faults,
//! page clearing and unmapping took about a tenth of the machine's CPU,
//! and the fetch ran at 0.31-0.32 of a plain TCP copy. With buffers under
//! 1 MiB kept in the arenas and up to 8 MiB of free top kept per arena, the
//! same fetch ran at 0.43-0.61 (docs/PERFORMANCE.md, section 5), and every
//! process stayed under 64 MiB resident with a 1 GiB file. (mimalloc was
//! tried instead: slower here, and over 80 MiB resident.)

/// Allocations at least this large are mapped on their own.
const MMAP_THRESHOLD_BYTES: i32 = 1 << 20;
/// Free memory at the top of an arena kept before it is returned.
const TRIM_THRESHOLD_BYTES: i32 = 8 << 20;

/// Sets glibc's thresholds; call first thing in `main`, before any thread
/// starts. Elsewhere (musl, other systems) the allocator is left as it is.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only changes two of glibc's allocator parameters;
    // it is called before any other thread exists, as glibc asks.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
    }
}
