//! `kith tail` misses no change: edits and reactions made while the
//! replica it follows is down reach it once the replica is back, however
//! many messages came after the changed ones, and no entry is shown twice.
//! (The replica resumes the subscription from the tail's change cursor;
//! docs/PROTOCOL.md, section 7. Before change cursors only changes among
//! the 128 entries before the tail's cursor were sent again.)

mod support;

use kith_core::im::protocol::{Operation, RoomId};
use std::process::Stdio;
use std::time::Duration;
use support::{cli_ok, kith, send_all, user, Cluster};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStdout;

/// The tail's JSON lines for messages, until `done` holds of the last one.
async fn until(
    lines: &mut Lines<BufReader<ChildStdout>>,
    seen: &mut Vec<serde_json::Value>,
    done: impl Fn(&serde_json::Value) -> bool,
) {
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["kind"] == "message" {
                seen.push(v.clone());
                if done(&v) {
                    return;
                }
            }
        }
        panic!("the tail ended; it showed {seen:#?}");
    })
    .await;
    assert!(waited.is_ok(), "the tail did not show it; it showed {seen:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_shows_changes_made_while_its_replica_was_down() {
    let mut cluster = Cluster::start("tail-resume", 3, &[]).await;
    let home = cluster.scratch.0.join("home");
    let home = home.to_str().unwrap().to_string();
    let nodes: Vec<String> = cluster.replicas.iter().map(|r| r.dial_addr().to_string()).collect();
    for name in ["alice", "bob"] {
        cli_ok(&home, &nodes[0], &["id", "new", name]).await;
        cli_ok(&home, &nodes[0], &["--as", name, "register"]).await;
    }
    cli_ok(&home, &nodes[0], &["--as", "alice", "room", "create", "general"]).await;
    cli_ok(&home, &nodes[0], &["--as", "bob", "room", "join", "general"]).await;
    cli_ok(&home, &nodes[0], &["--as", "alice", "send", "general", "frist"]).await;
    cli_ok(&home, &nodes[0], &["--as", "alice", "send", "general", "second"]).await;

    let mut tail = kith()
        .env("KITH_HOME", &home)
        .args(["--json", "--as", "bob", "--node", &nodes[2], "tail", "general", "--from", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    until(&mut lines, &mut seen, |v| v["text"] == "second").await;
    let seq = |text: &str, seen: &[serde_json::Value]| {
        seen.iter().find(|v| v["text"] == text).and_then(|v| v["seq"].as_u64()).unwrap()
    };
    let (first, second) = (seq("frist", &seen), seq("second", &seen));
    // Many messages after them: more than any window of recent entries.
    let mut carol = user(&cluster.keys_dir(), "carol", cluster.addrs()).await;
    let general = RoomId::Group("general".into());
    support::ok(carol.submit(Operation::Join { room: general.clone() }).await.unwrap());
    send_all(&mut carol, &general, (0..140).map(|i| format!("filler {i}"))).await;
    until(&mut lines, &mut seen, |v| v["text"] == "filler 139").await;
    let (first_arg, second_arg) = (first.to_string(), second.to_string());

    // The tail's replica goes down; the others change both messages.
    cluster.kill(2).await;
    cli_ok(&home, &nodes[0], &["--as", "alice", "edit", "general", &first_arg, "first"]).await;
    cli_ok(&home, &nodes[1], &["--as", "bob", "react", "general", &second_arg, "+1"]).await;
    cluster.restart(2);

    until(&mut lines, &mut seen, |v| v["seq"] == first && v["text"] == "first" && v["edits"] == 1)
        .await;
    until(&mut lines, &mut seen, |v| {
        v["seq"] == second && v["reactions"]["+1"] == serde_json::json!(["bob"])
    })
    .await;
    // A message sent now follows, and nothing came twice as new: each
    // message showed once as sent and once per change.
    cli_ok(&home, &nodes[0], &["--as", "alice", "send", "general", "third"]).await;
    until(&mut lines, &mut seen, |v| v["text"] == "third").await;
    let texts: Vec<&str> = seen
        .iter()
        .filter_map(|v| v["text"].as_str())
        .filter(|t| !t.starts_with("filler"))
        .collect();
    assert_eq!(texts, ["frist", "second", "first", "second", "third"], "{seen:#?}");
    let fillers =
        seen.iter().filter(|v| v["text"].as_str().is_some_and(|t| t.starts_with("filler")));
    assert_eq!(fillers.count(), 140, "each filler once");
}
