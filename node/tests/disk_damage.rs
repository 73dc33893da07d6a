//! Damage on disk: a torn write at the end of the log is truncated and the
//! replica restarts with everything acknowledged; damage before the tail
//! stops the replica with an error naming the file and the fix.

mod support;

use std::path::PathBuf;
use support::{connect, history, send_all, Cluster};

fn segments(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir.join("log")).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_recovered_and_a_corrupt_segment_is_refused() {
    let mut cluster = Cluster::start("disk-damage", 1, &[]).await;
    let (mut ann, room) = cluster.room_with_owner("ann", "notes").await;
    send_all(&mut ann, &room, (0..30).map(|i| format!("n{i}"))).await;
    drop(ann);
    let mut reader = connect(&cluster.operator, cluster.replicas[0].dial_addr()).await;
    let before = history(&mut reader, &room).await;
    assert_eq!(before.len(), 31);
    drop(reader);
    cluster.kill(0).await;

    // A torn tail: half a batch header and some garbage after the last write.
    let dir = cluster.replicas[0].dir.clone();
    let last = segments(&dir).pop().unwrap();
    let intact_len = std::fs::metadata(&last).unwrap().len();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[0x4b, 0x49, 0x54, 0x48, 0xff, 0x00, 0x13]);
    std::fs::write(&last, &bytes).unwrap();
    cluster.restart(0);
    let mut reader = connect(&cluster.operator, cluster.replicas[0].dial_addr()).await;
    assert_eq!(history(&mut reader, &room).await, before, "nothing lost to a torn tail");
    drop(reader);
    cluster.stop(0).await;
    assert!(cluster.log_of(0).contains("torn"), "the truncation is logged");
    assert!(std::fs::metadata(&last).unwrap().len() >= intact_len);

    // Corruption before the tail: flip one byte in the middle of the log.
    let target = segments(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&target).unwrap();
    let intact = bytes.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&target, &bytes).unwrap();
    let out = start_on(&dir).await;
    assert!(!out.status.success(), "a replica must not start on a corrupt log");
    let err = String::from_utf8_lossy(&out.stderr);
    let name = target.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name), "the error names the file: {err}");
    assert!(
        err.contains("corrupt") && err.contains("cluster remove"),
        "the error says what to do: {err}"
    );
    // Nothing was rewritten: the damaged file is left for the operator.
    assert_eq!(std::fs::read(&target).unwrap(), bytes);

    // A history database that is not one: refused, named, with the fix.
    std::fs::write(&target, &intact).unwrap();
    let db = dir.join("history.redb");
    let garbage = vec![0x5au8; 8192];
    std::fs::write(&db, &garbage).unwrap();
    let out = start_on(&dir).await;
    assert!(!out.status.success(), "a replica must not start on a damaged history database");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("history.redb"), "the error names the file: {err}");
    assert!(err.contains("as a new member"), "the error says what to do: {err}");
    assert_eq!(std::fs::read(&db).unwrap(), garbage, "the damaged file is left alone");

    // A lost history database: the log's snapshot refers to history the
    // replica no longer has.
    std::fs::remove_file(&db).unwrap();
    let out = start_on(&dir).await;
    assert!(!out.status.success(), "a replica must not start without its history");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("history store") && err.contains("as a new member"), "{err}");
}

/// Runs `kith node` on `dir` to its exit.
async fn start_on(dir: &std::path::Path) -> std::process::Output {
    support::kith()
        .args(["node", "--dir", dir.to_str().unwrap(), "--listen", "/ip4/127.0.0.1/tcp/0"])
        .output()
        .await
        .unwrap()
}
