//! A replica added with `kith cluster add` after the log was compacted
//! catches up by snapshot and then serves the same history.

mod support;

use support::{connect, history, send_all, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_added_after_compaction_catches_up_by_snapshot() {
    // Snapshot every 20 entries so the log is compacted long before the
    // new replica arrives.
    let mut cluster = Cluster::start("add-replica", 3, &["--snapshot-every", "20"]).await;
    let (mut ann, room) = cluster.room_with_owner("ann", "log").await;
    send_all(&mut ann, &room, (0..150).map(|i| format!("m{i}"))).await;
    // Every replica compacted its log past index 100, so entries before it
    // exist only inside snapshots: a new replica can only catch up by one.
    for i in 0..3 {
        let s = cluster.status(i).await;
        assert!(s.snapshot_index.get() > 100, "replica {i} compacted: {s:?}");
    }
    // History lives in history.redb; the log's snapshots only refer to it,
    // so the log holds no copy of the compacted messages.
    let first = b"\x02m0"; // the postcard string "m0"
    for r in &cluster.replicas {
        let mut log = Vec::new();
        for f in std::fs::read_dir(r.dir.join("log")).unwrap() {
            log.extend(std::fs::read(f.unwrap().path()).unwrap());
        }
        let db = std::fs::read(r.dir.join("history.redb")).unwrap();
        let holds = |bytes: &[u8]| bytes.windows(first.len()).any(|w| w == first);
        assert!(!holds(&log), "{}: the log still carries compacted history", r.dir.display());
        assert!(holds(&db), "{}: history.redb holds the history", r.dir.display());
    }

    // `kith cluster add`, through the real CLI, as the operator.
    let new = cluster.init_replica(&["--snapshot-every", "20"]);
    let join = cluster.replicas[0].dial_addr().to_string();
    cluster.spawn(new, &["--join", &join]);
    let home = cluster.scratch.0.join("home");
    std::fs::create_dir_all(home.join("users")).unwrap();
    std::fs::copy(cluster.scratch.0.join("operator.key"), home.join("users/op.key")).unwrap();
    let out = support::kith()
        .args(["--home", home.to_str().unwrap(), "--as", "op", "--node", &join])
        .args(["cluster", "add", &cluster.replicas[new].dial_addr().to_string()])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "cluster add: {}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.matches(" voter ").count(), 4, "four voters after the add:\n{printed}");

    // The new replica serves the full history from its own state.
    let mut reader = connect(&cluster.operator, cluster.replicas[new].dial_addr()).await;
    let mut entries = Vec::new();
    for _ in 0..100 {
        entries = history(&mut reader, &room).await;
        if entries.len() >= 151 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(entries.len(), 151, "created + 150 messages");
    let status = cluster.status(new).await;
    assert!(status.snapshot_index.get() > 100, "the new replica holds a snapshot: {status:?}");
    let mut old = connect(&cluster.operator, cluster.replicas[0].dial_addr()).await;
    assert_eq!(history(&mut old, &room).await, entries);

    // And `kith cluster remove` takes it out again.
    let peer = cluster.replicas[new].peer.to_string();
    let out = support::kith()
        .args(["--home", home.to_str().unwrap(), "--as", "op", "--node", &join])
        .args(["--json", "cluster", "remove", &peer])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "cluster remove: {}", String::from_utf8_lossy(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members = status["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m["peer_id"] != peer.as_str()));
}
