//! Files through the real binary: `kith dev`, `kith file send`, `get` and
//! `ls`, with replicas and clients killed mid-transfer.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use support::{kith, pid_of, Scratch};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A `kith dev` cluster of three, alice and bob in room `r` (public, or
/// private with bob invited), and the replicas' addresses.
struct Dev {
    dev: tokio::process::Child,
    scratch: Scratch,
    home: String,
    nodes: Vec<String>,
}

impl Dev {
    async fn start(name: &str, slot: u16, private: bool) -> Dev {
        let scratch = Scratch::new(name);
        let home = scratch.0.join("home").to_str().unwrap().to_string();
        // Below the ephemeral range (32768+), where the other tests draw ports.
        let base = 21_000 + (std::process::id() % 450) as u16 * 24 + slot * 4;
        let mut dev = kith()
            .env("KITH_HOME", &home)
            .args(["dev", "--replicas", "3", "--base-port", &base.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        support::until_dev_ready(dev.stdout.take().unwrap()).await;
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(Path::new(&home).join("config.json")).unwrap(),
        )
        .unwrap();
        let nodes = config["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        let d = Dev { dev, scratch, home, nodes };
        for user in ["alice", "bob", "eve"] {
            d.ok(&["id", "new", user]).await;
            d.ok(&["--as", user, "register"]).await;
        }
        if private {
            d.ok(&["--as", "alice", "room", "create", "r", "--private"]).await;
            d.ok(&["--as", "alice", "room", "invite", "r", "bob"]).await;
        } else {
            d.ok(&["--as", "alice", "room", "create", "r"]).await;
        }
        d.ok(&["--as", "bob", "room", "join", "r"]).await;
        d
    }

    async fn run(&self, args: &[&str]) -> std::process::Output {
        kith()
            .env("KITH_HOME", &self.home)
            .current_dir(&self.scratch.0)
            .args(args)
            .output()
            .await
            .unwrap()
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "kith {args:?} failed:\n{err}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A file of `size` bytes in the scratch directory.
    fn file(&self, name: &str, size: usize) -> PathBuf {
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ size as u64;
        let data: Vec<u8> = (0..size)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let path = self.scratch.0.join(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    /// alice sends `path` into `r` (through `node`, or any replica); the
    /// message's sequence number.
    async fn send(&self, path: &Path, node: Option<&str>) -> u64 {
        let mut args = vec!["--json", "--as", "alice"];
        if let Some(node) = node {
            args.extend(["--node", node]);
        }
        args.extend(["file", "send", "r", path.to_str().unwrap()]);
        let out = self.ok(&args).await;
        let sent = json_lines(&out).into_iter().find(|v| v["ok"] == "appended").expect("a receipt");
        sent["seq"].as_u64().unwrap()
    }

    fn replica_dir(&self, i: usize) -> PathBuf {
        Path::new(&self.home).join("dev").join(format!("replica-{i}"))
    }
}

impl Drop for Dev {
    /// Stops `kith dev` as Ctrl-C does, so it stops its replicas; any
    /// replica still running after that is killed.
    fn drop(&mut self) {
        if let Some(pid) = self.dev.id() {
            support::signal(pid, nix::sys::signal::Signal::SIGINT);
        }
        let dirs: Vec<PathBuf> = (1..=3).map(|i| self.replica_dir(i)).collect();
        for _ in 0..100 {
            if dirs.iter().all(|d| pid_of(d).is_none()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        for pid in dirs.iter().filter_map(|d| pid_of(d)) {
            support::signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect()
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

/// Runs `kith file get` for bob with `--json` until a progress event
/// (bytes, total) short of the end for which `stop` is true; returns the
/// child, still running (its output is read on, in the background), and
/// the bytes of that event.
async fn get_until(
    dev: &Dev,
    seq: u64,
    output: &str,
    mut stop: impl FnMut(u64, u64) -> bool,
) -> (tokio::process::Child, Option<u64>) {
    let mut child = kith()
        .env("KITH_HOME", &dev.home)
        .current_dir(&dev.scratch.0)
        .args(["--json", "--as", "bob", "file", "get", "r", &seq.to_string(), "-o", output])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["event"] == "progress" {
            let (bytes, total) = (v["bytes"].as_u64().unwrap(), v["total_bytes"].as_u64().unwrap());
            if bytes < total && stop(bytes, total) {
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return (child, Some(bytes));
            }
        }
    }
    (child, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_sent_through_one_replica_is_fetched_through_another() {
    let dev = Dev::start("files-two-replicas", 0, false).await;
    let path = dev.file("notes.pdf", 3 * 1024 * 1024 + 5);
    let seq = dev.send(&path, Some(&dev.nodes[0])).await;

    let listed = json_lines(&dev.ok(&["--json", "--as", "bob", "file", "ls", "r"]).await);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "notes.pdf");
    assert_eq!(listed[0]["media_type"], "application/pdf");
    assert_eq!(listed[0]["seq"], seq);

    // Bob fetches through the third replica alone: sent means stored on a
    // majority, and the others fetch it in the background.
    let out = dev
        .ok(&[
            "--json",
            "--as",
            "bob",
            "--node",
            &dev.nodes[2],
            "file",
            "get",
            "r",
            &seq.to_string(),
            "-o",
            "got.pdf",
        ])
        .await;
    let done = json_lines(&out).into_iter().find(|v| v["ok"] == "fetched").expect("fetched");
    assert_eq!(done["size_bytes"], 3 * 1024 * 1024 + 5);
    assert!(same_bytes(&path, &dev.scratch.0.join("got.pdf")), "byte-identical");

    // By its id too; an existing file is never overwritten.
    let id = listed[0]["file"].as_str().unwrap();
    dev.ok(&["--as", "bob", "file", "get", "r", id, "-o", "again.pdf"]).await;
    assert!(same_bytes(&path, &dev.scratch.0.join("again.pdf")));
    let refused = dev.run(&["--as", "bob", "file", "get", "r", id, "-o", "again.pdf"]).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already exists"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_member_gets_nothing_and_bad_paths_get_clear_errors() {
    let dev = Dev::start("files-refusals", 1, true).await;
    let path = dev.file("plan.txt", 40_000);
    let seq = dev.send(&path, None).await.to_string();
    let listed = json_lines(&dev.ok(&["--json", "--as", "bob", "file", "ls", "r"]).await);
    let id = listed[0]["file"].as_str().unwrap().to_string();

    for which in [seq.as_str(), id.as_str()] {
        let out = dev.run(&["--as", "eve", "file", "get", "r", which, "-o", "stolen"]).await;
        assert!(!out.status.success(), "eve is not a member");
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a member"), "{out:?}");
        assert!(!dev.scratch.0.join("stolen").exists());
    }
    let dir =
        dev.run(&["--as", "alice", "file", "send", "r", dev.scratch.0.to_str().unwrap()]).await;
    assert!(String::from_utf8_lossy(&dir.stderr).contains("is not a regular file"));
    let missing = dev.run(&["--as", "alice", "file", "send", "r", "no-such-file"]).await;
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
    let not_file = dev.run(&["--as", "bob", "file", "get", "r", "1"]).await;
    assert!(String::from_utf8_lossy(&not_file.stderr).contains("is not a file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_goes_on_from_another_replica_when_one_is_killed() {
    let dev = Dev::start("files-replica-killed", 2, false).await;
    let path = dev.file("film.mkv", 100_000_000);
    let seq = dev.send(&path, None).await;
    // The client connects to the first replica; kill it mid-transfer: at
    // the first progress report short of 60% (reports come at most five a
    // second, and a release build fetches 100 MB in well under a second,
    // so the first one, at the start, may be the only one in time).
    let victim = pid_of(&dev.replica_dir(1)).expect("replica-1 runs");
    let (mut child, stopped) =
        get_until(&dev, seq, "film.mkv.got", |bytes, total| bytes < total * 6 / 10).await;
    let at = stopped.expect("the fetch was seen mid-way");
    support::signal(victim, nix::sys::signal::Signal::SIGKILL);
    let mut stderr = String::new();
    let mut err = child.stderr.take().unwrap();
    tokio::io::AsyncReadExt::read_to_string(&mut err, &mut stderr).await.unwrap();
    assert!(child.wait().await.unwrap().success(), "{stderr}");
    assert!(at < 100_000_000);
    assert!(same_bytes(&path, &dev.scratch.0.join("film.mkv.got")), "byte-identical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_goes_through_when_the_replica_asked_to_help_is_down() {
    let dev = Dev::start("files-helper-down", 5, false).await;
    // The client talks to the first replica and asks the second to store
    // the upload beside it (a majority of three); the second is down, so
    // the third copies it from the first and the send is answered anyway.
    let helper = pid_of(&dev.replica_dir(2)).expect("replica-2 runs");
    support::signal(helper, nix::sys::signal::Signal::SIGKILL);
    let path = dev.file("slides.pdf", 5 * 1024 * 1024 + 1);
    let started = std::time::Instant::now();
    let seq = dev.send(&path, None).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());
    let args = ["--as", "bob", "--node", &dev.nodes[2], "file", "get", "r"];
    dev.ok(&[&args[..], &[&seq.to_string(), "-o", "slides.got"]].concat()).await;
    assert!(same_bytes(&path, &dev.scratch.0.join("slides.got")), "byte-identical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_fetch_run_again_fetches_only_what_was_missing() {
    let dev = Dev::start("files-client-killed", 3, false).await;
    let size = 100_000_000u64;
    let path = dev.file("disk.img", size as usize);
    let seq = dev.send(&path, None).await;
    let (mut child, stopped) =
        get_until(&dev, seq, "disk.img.got", |bytes, total| bytes >= total / 4).await;
    stopped.expect("the fetch was seen mid-way");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    assert!(!dev.scratch.0.join("disk.img.got").exists(), "no half file appears");

    let out = dev
        .ok(&["--json", "--as", "bob", "file", "get", "r", &seq.to_string(), "-o", "disk.img.got"])
        .await;
    let done = json_lines(&out).into_iter().find(|v| v["ok"] == "fetched").expect("fetched");
    let resumed = done["resumed_bytes"].as_u64().unwrap();
    let received = done["received_bytes"].as_u64().unwrap();
    assert!(resumed >= size / 8, "the rerun resumed from disk ({resumed} bytes)");
    // What was missing, plus hashes (64 bytes a group pair) and framing.
    let missing = size - resumed;
    assert!(received >= missing, "{received} < {missing}");
    assert!(
        received <= missing + missing / 50 + 64 * 1024,
        "{received} fetched for {missing} missing"
    );
    assert!(same_bytes(&path, &dev.scratch.0.join("disk.img.got")), "byte-identical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_copy_is_never_served_and_is_fetched_again() {
    let dev = Dev::start("files-damaged", 4, false).await;
    let path = dev.file("photo.png", 2 * 1024 * 1024 + 3);
    let seq = dev.send(&path, None).await.to_string();
    let listed = json_lines(&dev.ok(&["--json", "--as", "bob", "file", "ls", "r"]).await);
    let id = listed[0]["file"].as_str().unwrap().to_string();
    let copy = |i: usize| dev.replica_dir(i).join("blobs").join("complete").join(&id).join("data");
    for _ in 0..300 {
        if (1..=3).all(|i| copy(i).exists()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!((1..=3).all(|i| copy(i).exists()), "every replica holds the file");

    // Rot one byte of the first replica's copy.
    let mut bytes = std::fs::read(copy(1)).unwrap();
    bytes[1024 * 1024] ^= 0x40;
    std::fs::write(copy(1), &bytes).unwrap();

    // Fetched through that replica alone: it does not serve the rotten
    // copy, fetches the file again from the others, then serves it.
    let args =
        ["--as", "bob", "--node", &dev.nodes[0], "file", "get", "r", &seq, "-o", "photo.got"];
    dev.ok(&args).await;
    assert!(same_bytes(&path, &dev.scratch.0.join("photo.got")), "byte-identical");
    assert!(same_bytes(&path, &copy(1)), "the damaged copy was replaced");
}
