//! `kith dev` rides out a rebuild of its own executable: once the file it
//! was started from is replaced (as `cargo build` does while a cluster
//! runs), a killed replica still comes back, from the new file, and the
//! other replicas are never touched, even while the file is missing and
//! the restart keeps failing.

mod support;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{pid_of, Scratch};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_after_a_rebuild_comes_back_and_the_others_stay_up() {
    let scratch = Scratch::new("dev-rebuild");
    let home = scratch.0.join("home");
    let exe = scratch.0.join("bin").join("kith");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_kith"), &exe).unwrap();
    // Below cli_session's ports (20000+) and the ephemeral range (32768+).
    let base = 10_000 + (std::process::id() % 10_000) as u16;
    let mut dev = tokio::process::Command::new(&exe)
        .env("KITH_HOME", &home)
        .args(["dev", "--replicas", "3", "--base-port", &base.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let said = Arc::new(Mutex::new(String::new()));
    let mut errors = BufReader::new(dev.stderr.take().unwrap()).lines();
    let heard = said.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = errors.next_line().await {
            let mut text = heard.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    support::until_dev_ready(dev.stdout.take().unwrap()).await;
    let dirs: Vec<_> = (1..=3).map(|i| home.join(format!("dev/replica-{i}"))).collect();
    let pids: Vec<u32> =
        dirs.iter().map(|d| pid_of(d).expect("every replica is running")).collect();

    // The rebuild: the old file goes, and a replica dies before the new
    // one is written. Its restarts fail meanwhile; nothing else may care.
    std::fs::remove_file(&exe).unwrap();
    support::signal(pids[1], nix::sys::signal::Signal::SIGKILL);
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(dev.try_wait().unwrap().is_none(), "kith dev kept running");
        for i in [0, 2] {
            assert_eq!(pid_of(&dirs[i]), Some(pids[i]), "replica {} was never touched", i + 1);
        }
    }
    let log = said.lock().unwrap().clone();
    assert!(log.contains("replica 2 could not be restarted"), "the failure is reported:\n{log}");
    std::fs::copy(env!("CARGO_BIN_EXE_kith"), &exe).unwrap();

    let mut restarted = None;
    for _ in 0..150 {
        assert!(dev.try_wait().unwrap().is_none(), "kith dev kept running");
        for i in [0, 2] {
            assert_eq!(pid_of(&dirs[i]), Some(pids[i]), "replica {} was never touched", i + 1);
        }
        restarted = pid_of(&dirs[1]).filter(|p| *p != pids[1]);
        if restarted.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let restarted = restarted.expect("kith dev restarted the killed replica within 30 s");
    let running = std::fs::read_link(format!("/proc/{restarted}/exe")).unwrap();
    assert_eq!(running, exe, "the restart runs the new file");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(dev.try_wait().unwrap().is_none(), "kith dev kept running");
    assert_eq!(pid_of(&dirs[1]), Some(restarted), "the restarted replica stays up");

    support::signal(dev.id().unwrap(), nix::sys::signal::Signal::SIGINT);
    let status = tokio::time::timeout(Duration::from_secs(20), dev.wait()).await.unwrap().unwrap();
    assert!(status.success(), "kith dev exits cleanly: {status}");
}
