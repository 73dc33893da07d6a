//! The disk under the benchmark's data: how long an fdatasync of a small
//! append takes here, the floor under any system that syncs before it
//! acknowledges.

use anyhow::Result;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Median time of `n` appends of 64 bytes, each followed by fdatasync, to
/// a new file in `dir`.
pub fn fdatasync_p50(dir: &Path, n: usize) -> Result<Duration> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path)?;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f.write_all(&[b'x'; 64])?;
        f.sync_data()?;
        samples.push(t.elapsed());
    }
    drop(f);
    std::fs::remove_file(&path)?;
    samples.sort();
    Ok(samples.get(n / 2).copied().unwrap_or_default())
}
