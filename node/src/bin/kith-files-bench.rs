//! `kith-files-bench`: file transfer on loopback beside a plain TCP copy of
//! the same bytes, in one run (issue 16's speed rows; docs/PERFORMANCE.md).
//!
//! A `kith dev` cluster of three replicas (fsync on). Rows:
//! - plain copy: one TCP connection on 127.0.0.1 carrying the file from a
//!   reader to a writer that syncs it at the end (what any copy tool does);
//! - `kith file send`: hashing, upload to one replica, and the answer once
//!   a majority of replicas hold it (synced, checked);
//! - `kith file get`: a fresh fetch from the replicas, every group checked
//!   on arrival and synced, then moved into place;
//! - peak resident memory (VmHWM) of each client and each replica for a
//!   second, larger file.
//!
//! ```text
//! cargo build --release -p kith-node
//! ./target/release/kith-files-bench [--mib 256] [--memory-mib 1024] [--smoke]
//! ```
//!
//! `--smoke` moves a few MiB (the test command runs it so the benchmark
//! never rots). The last line is machine-readable.

use anyhow::{bail, Context, Result};
use kith_io_tokio::storage::BlobStore;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

struct Args {
    mib: u64,
    memory_mib: u64,
}

fn parse_args() -> Result<Args> {
    let mut args = Args { mib: 256, memory_mib: 1024 };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64> {
            it.next()
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{name} takes a number of MiB"))
        };
        match arg.as_str() {
            "--mib" => args.mib = number("--mib")?,
            "--memory-mib" => args.memory_mib = number("--memory-mib")?,
            "--smoke" => args = Args { mib: 4, memory_mib: 8 },
            other => bail!("unknown argument {other:?}: use --mib N, --memory-mib N, --smoke"),
        }
    }
    if args.mib == 0 || args.memory_mib == 0 || args.mib.max(args.memory_mib) > 4096 {
        bail!("sizes are 1 to 4096 MiB");
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let kith = std::env::current_exe()?.with_file_name("kith");
    if !kith.exists() {
        bail!("{} is missing: build it with `cargo build --release -p kith-node`", kith.display());
    }
    let dir = std::env::temp_dir().join(format!("kith-files-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = run(&kith, &dir, &args);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(kith: &Path, dir: &Path, args: &Args) -> Result<()> {
    let dev = Dev::start(kith, dir)?;
    for user in ["alice", "bob"] {
        dev.ok(&["id", "new", user])?;
        dev.ok(&["--as", user, "register"])?;
    }
    dev.ok(&["--as", "alice", "room", "create", "files"])?;
    dev.ok(&["--as", "bob", "room", "join", "files"])?;

    let size = args.mib * MIB;
    let file = dir.join("speed.bin");
    write_content(&file, size, 1)?;
    let copy_s = tcp_copy(&file, &dir.join("copied.bin"))?;
    let send = dev.timed(&["--as", "alice", "file", "send", "files", path(&file)?])?;
    // The third replica copies the content after the send is answered: the
    // fetch is timed on a quiet cluster, not beside that copy.
    dev.wait_replicated(1)?;
    let seq = dev.last_seq()?;
    let got = dir.join("fetched.bin");
    let get = dev.timed(&["--as", "bob", "file", "get", "files", &seq, "-o", path(&got)?])?;
    if !same_content(&file, &got)? {
        bail!("the fetched file differs from the sent one");
    }
    for f in [&file, &got, &dir.join("copied.bin")] {
        let _ = std::fs::remove_file(f);
    }

    let big = dir.join("memory.bin");
    write_content(&big, args.memory_mib * MIB, 2)?;
    let big_send = dev.timed(&["--as", "alice", "file", "send", "files", path(&big)?])?;
    let seq = dev.last_seq()?;
    let big_got = dir.join("memory-fetched.bin");
    let big_get =
        dev.timed(&["--as", "bob", "file", "get", "files", &seq, "-o", path(&big_got)?])?;
    let replicas_kib: Vec<u64> = dev.replica_pids().iter().map(|p| peak_kib(*p)).collect();

    let mb_s = |s: f64| size as f64 / MIB as f64 / s;
    let (copy, sent, fetched) = (mb_s(copy_s), mb_s(send.seconds), mb_s(get.seconds));
    println!("file transfer on loopback, {} MiB (three replicas, fsync on)", args.mib);
    println!("| | MiB/s | seconds | against the plain copy |");
    println!("| --- | ---: | ---: | ---: |");
    println!("| plain TCP copy (synced) | {copy:.0} | {copy_s:.2} | 1.00 |");
    println!(
        "| kith file send (stored on a majority) | {sent:.0} | {:.2} | {:.2} |",
        send.seconds,
        sent / copy
    );
    println!(
        "| kith file get (verified, synced) | {fetched:.0} | {:.2} | {:.2} |",
        get.seconds,
        fetched / copy
    );
    println!();
    println!("peak resident memory, {} MiB file", args.memory_mib);
    println!("| process | MiB |");
    println!("| --- | ---: |");
    println!("| kith file send | {:.1} |", big_send.peak_kib as f64 / 1024.0);
    println!("| kith file get | {:.1} |", big_get.peak_kib as f64 / 1024.0);
    for (i, kib) in replicas_kib.iter().enumerate() {
        println!("| replica {} | {:.1} |", i + 1, *kib as f64 / 1024.0);
    }
    let replica_max = replicas_kib.iter().copied().max().unwrap_or(0);
    println!(
        "BENCH files mib={} copy_mib_s={copy:.1} send_mib_s={sent:.1} get_mib_s={fetched:.1} \
         get_ratio={:.3} send_ratio={:.3} memory_mib={} send_peak_kib={} get_peak_kib={} \
         replica_peak_kib={replica_max}",
        args.mib,
        fetched / copy,
        sent / copy,
        args.memory_mib,
        big_send.peak_kib,
        big_get.peak_kib,
    );
    Ok(())
}

fn path(p: &Path) -> Result<&str> {
    p.to_str().context("a temporary path that is not UTF-8")
}

/// `size` bytes of incompressible content, written 1 MiB at a time.
fn write_content(path: &Path, size: u64, seed: u64) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
    let mut block = vec![0u8; MIB as usize];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(MIB) as usize;
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

/// Copies `from` to `to` over one loopback TCP connection; the writer syncs
/// at the end. Seconds from connect to synced.
fn tcp_copy(from: &Path, to: &Path) -> Result<f64> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let to = to.to_path_buf();
    let writer = std::thread::spawn(move || -> Result<()> {
        let (mut conn, _) = listener.accept()?;
        let mut out = std::fs::File::create(&to)?;
        std::io::copy(&mut conn, &mut out)?;
        out.sync_all()?;
        Ok(())
    });
    let started = Instant::now();
    let mut conn = std::net::TcpStream::connect(addr)?;
    std::io::copy(&mut std::fs::File::open(from)?, &mut conn)?;
    drop(conn);
    writer.join().map_err(|_| anyhow::anyhow!("the copy's writer panicked"))??;
    Ok(started.elapsed().as_secs_f64())
}

fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let (mut a, mut b) =
        (BufReader::new(std::fs::File::open(a)?), BufReader::new(std::fs::File::open(b)?));
    let (mut x, mut y) = (vec![0u8; MIB as usize], vec![0u8; MIB as usize]);
    loop {
        let n = a.read(&mut x)?;
        if n == 0 {
            return Ok(b.read(&mut y)? == 0);
        }
        b.read_exact(&mut y[..n])?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
    }
}

/// Peak resident memory of a process so far (VmHWM), in KiB; 0 if gone.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One CLI run: its wall time and its peak resident memory.
struct Timed {
    seconds: f64,
    peak_kib: u64,
}

/// A `kith dev` cluster of three in `dir`.
struct Dev {
    kith: PathBuf,
    home: PathBuf,
    child: Child,
}

impl Dev {
    fn start(kith: &Path, dir: &Path) -> Result<Dev> {
        let home = dir.join("home");
        let base = 24_000 + (std::process::id() % 1_000) as u16 * 4;
        let mut child = Command::new(kith)
            .env("KITH_HOME", &home)
            .args(["dev", "--replicas", "3", "--base-port", &base.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting kith dev")?;
        let stdout = child.stdout.take().context("kith dev's output")?;
        let mut dev = Dev { kith: kith.to_path_buf(), home, child };
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
            .any(|l| l.contains("Ctrl-C stops the cluster"));
        if !ready {
            dev.stop();
            bail!(
                "kith dev exited before it was ready (see {}/dev/*/replica.log)",
                dev.home.display()
            );
        }
        Ok(dev)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.kith);
        cmd.env("KITH_HOME", &self.home).args(args);
        cmd
    }

    fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.command(args).output()?;
        if !out.status.success() {
            bail!("kith {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a CLI command, watching its peak memory until it exits.
    fn timed(&self, args: &[&str]) -> Result<Timed> {
        let started = Instant::now();
        let mut child = self.command(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
        let mut peak = 0;
        let status = loop {
            peak = peak.max(peak_kib(child.id()));
            if let Some(status) = child.try_wait()? {
                break status;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let seconds = started.elapsed().as_secs_f64();
        if !status.success() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            bail!("kith {args:?}: {err}");
        }
        Ok(Timed { seconds, peak_kib: peak })
    }

    /// The sequence number of the newest file in the room.
    fn last_seq(&self) -> Result<String> {
        let out = self.ok(&["--json", "--as", "bob", "file", "ls", "files", "--limit", "1"])?;
        let line: serde_json::Value =
            serde_json::from_str(out.lines().last().context("no file listed")?)?;
        Ok(line["seq"].as_u64().context("a sequence number")?.to_string())
    }

    /// Waits until every replica holds `files` complete blobs.
    fn wait_replicated(&self, files: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let held = |i: usize| {
            let dir = self.home.join("dev").join(format!("replica-{i}")).join("blobs");
            BlobStore::open(dir).and_then(|store| store.list(None, files)).map_or(0, |l| l.len())
        };
        while (1..=3).any(|i| held(i) < files) {
            if Instant::now() > deadline {
                bail!("the replicas did not all hold the file within 120 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The replicas' processes, found by their data directories.
    fn replica_pids(&self) -> Vec<u32> {
        (1..=3)
            .filter_map(|i| pid_of(&self.home.join("dev").join(format!("replica-{i}"))))
            .collect()
    }

    /// Stops kith dev as Ctrl-C does (it stops its replicas).
    fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let _ = self.child.wait();
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The pid of the `kith node` process whose data directory is `dir`.
fn pid_of(dir: &Path) -> Option<u32> {
    let needle = format!("{}\0", dir.display());
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("\0node\0") && cmdline.contains(&needle) {
            return Some(pid);
        }
    }
    None
}
