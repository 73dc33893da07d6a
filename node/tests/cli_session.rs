//! The README's session, run through the real binary: `kith dev`, two
//! users, a room, messages, history, a direct message, presence, inbox,
//! and a clean stop.

mod support;

use std::process::Stdio;
use std::time::Duration;
use support::{kith, pid_of, Scratch};
use tokio::io::{AsyncBufReadExt, BufReader};

async fn run(home: &str, args: &[&str]) -> (bool, String, String) {
    let out = kith().env("KITH_HOME", home).args(args).output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn ok(home: &str, args: &[&str]) -> String {
    let (success, out, err) = run(home, args).await;
    assert!(success, "kith {args:?} failed:\n{err}");
    out
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_session_works_end_to_end() {
    let scratch = Scratch::new("cli");
    let home = scratch.0.to_str().unwrap().to_string();
    // Below the ephemeral range (32768+), where the other tests draw ports.
    let base = 20_000 + (std::process::id() % 10_000) as u16;
    let mut dev = kith()
        .env("KITH_HOME", &home)
        .args(["dev", "--replicas", "3", "--base-port", &base.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    support::until_dev_ready(dev.stdout.take().unwrap()).await;

    ok(&home, &["id", "new", "alice"]).await;
    ok(&home, &["id", "new", "bob"]).await;
    assert!(ok(&home, &["--as", "alice", "register"]).await.contains("registered as alice"));
    ok(&home, &["--as", "bob", "register"]).await;
    ok(&home, &["--as", "alice", "room", "create", "general"]).await;
    ok(&home, &["--as", "bob", "room", "join", "general"]).await;
    let sent =
        json_lines(&ok(&home, &["--json", "--as", "alice", "send", "general", "hello, bob"]).await);
    assert_eq!(sent[0]["ok"], "appended");
    assert_eq!(sent[0]["seq"], 3, "created, joined, then the message");
    ok(&home, &["--as", "bob", "send", "general", "hi alice"]).await;

    let history = json_lines(&ok(&home, &["--json", "--as", "bob", "history", "general"]).await);
    let messages: Vec<(String, String)> = history
        .iter()
        .filter(|v| v["kind"] == "message")
        .map(|v| (v["author_name"].as_str().unwrap().into(), v["text"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        messages,
        [("alice".to_string(), "hello, bob".to_string()), ("bob".into(), "hi alice".into())]
    );
    let limited = json_lines(
        &ok(&home, &["--json", "--as", "bob", "history", "general", "--limit", "1"]).await,
    );
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0]["text"], "hi alice");

    // A direct message from someone who is not a contact waits as a
    // request: bob sees who and the first message, and accepts.
    ok(&home, &["--as", "alice", "dm", "bob", "psst"]).await;
    let (read, _, err) = run(&home, &["--as", "bob", "history", "@alice"]).await;
    assert!(!read && err.contains("not a member"), "not his room before he accepts: {err}");
    let contacts = json_lines(&ok(&home, &["--json", "--as", "bob", "contacts"]).await);
    let asking = &contacts[0]["incoming"][0];
    assert_eq!((asking["name"].as_str(), asking["first"].as_str()), (Some("alice"), Some("psst")));
    let human = ok(&home, &["--as", "bob", "contacts"]).await;
    assert!(human.contains("asking you (1):\n  alice  (1 message)  \"psst\""), "{human}");
    let accepted = ok(&home, &["--as", "bob", "contacts", "accept", "alice"]).await;
    assert_eq!(accepted.trim(), "alice: a contact");
    let dm = json_lines(&ok(&home, &["--json", "--as", "bob", "history", "@alice"]).await);
    assert!(dm.iter().any(|v| v["text"] == "psst" && v["author_name"] == "alice"));
    // `@alice+bob` names that very room for anyone: bob reads the message
    // through it, so eve's refusal below is about the real room, not about
    // a room that does not exist.
    let pair = json_lines(&ok(&home, &["--json", "--as", "bob", "history", "@alice+bob"]).await);
    assert!(pair.iter().any(|v| v["text"] == "psst"), "@alice+bob is their direct room");
    ok(&home, &["id", "new", "eve"]).await;
    ok(&home, &["--as", "eve", "register"]).await;
    let (peeked, out, err) = run(&home, &["--as", "eve", "history", "@alice+bob"]).await;
    assert!(!peeked, "eve cannot read alice and bob's direct room, yet got:\n{out}");
    assert!(
        err.contains("not a member"),
        "refused as a non-member, not for another reason:\n{err}"
    );
    assert!(!out.contains("psst"), "nothing of the room reaches eve");
    let (sent, _, err) = run(&home, &["--as", "eve", "send", "@alice+bob", "hi"]).await;
    assert!(!sent && err.contains("not a member"), "nor may eve write to it: {err}");
    // Eve writes to alice, who blocks her: eve is not told, and nothing of
    // hers reaches alice.
    ok(&home, &["--as", "eve", "dm", "alice", "buy now"]).await;
    let blocked = ok(&home, &["--as", "alice", "block", "eve"]).await;
    assert_eq!(blocked.trim(), "eve: blocked");
    let sent = json_lines(&ok(&home, &["--json", "--as", "eve", "dm", "alice", "hello?"]).await);
    assert_eq!(sent[0]["ok"], "appended", "a blocked user is not told");
    let contacts = json_lines(&ok(&home, &["--json", "--as", "alice", "contacts"]).await);
    assert_eq!(contacts[0]["incoming"], serde_json::json!([]), "{contacts:?}");
    assert_eq!(contacts[0]["blocked"][0]["name"], "eve");
    assert_eq!(contacts[0]["contacts"][0]["name"], "bob");
    // Read positions: alice sees how far bob has read, until he keeps it
    // to himself.
    let reads = ok(&home, &["--as", "alice", "reads", "general"]).await;
    assert!(reads.contains("bob\tread up to 4"), "{reads}");
    // History shows it under the entry bob stopped at.
    let history = json_lines(&ok(&home, &["--json", "--as", "alice", "history", "general"]).await);
    let at_4 = history.iter().find(|v| v["seq"] == 4).expect("entry 4");
    assert_eq!(at_4["read_by"], serde_json::json!(["bob"]), "{history:?}");
    let human = ok(&home, &["--as", "alice", "history", "general"]).await;
    assert!(human.contains("\n     read by bob\n"), "{human}");
    ok(&home, &["--as", "bob", "reads", "--private"]).await;
    let reads = ok(&home, &["--as", "alice", "reads", "general"]).await;
    assert!(!reads.contains("bob"), "{reads}");

    // Inbox: bob's own reply read #general up to it, so only the direct
    // message is unread; afterwards nothing is.
    let inbox = json_lines(&ok(&home, &["--json", "--as", "bob", "inbox"]).await);
    let texts: Vec<&str> = inbox
        .iter()
        .filter(|v| v["kind"] == "message")
        .filter_map(|v| v["text"].as_str())
        .collect();
    assert_eq!(texts, ["psst"]);
    assert!(json_lines(&ok(&home, &["--json", "--as", "bob", "inbox"]).await).is_empty());

    // Presence, announced to one replica and seen through another (it
    // travels between replicas over gossipsub, never through the log).
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(scratch.0.join("config.json")).unwrap())
            .unwrap();
    let nodes: Vec<String> =
        config["nodes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().into()).collect();
    ok(&home, &["--as", "alice", "--node", &nodes[0], "presence", "away"]).await;
    let mut status = serde_json::Value::Null;
    for _ in 0..50 {
        let args = ["--json", "--as", "bob", "--node", &nodes[2], "presence", "--of", "alice"];
        status = json_lines(&ok(&home, &args).await)[0]["status"].clone();
        if status == "away" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, "away", "presence reached the other replica");

    // tail follows live; chat sends what is typed.
    let mut tail = kith()
        .env("KITH_HOME", &home)
        .args(["--json", "--as", "bob", "--node", &nodes[2], "tail", "general", "--from", "0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut tail_lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let mut chat = kith()
        .env("KITH_HOME", &home)
        .args(["--as", "alice", "chat", "general"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = chat.stdin.take().unwrap();
        stdin.write_all(b"typed in chat\n/quit\n").await.unwrap();
    }
    let chat_status =
        tokio::time::timeout(Duration::from_secs(30), chat.wait()).await.unwrap().unwrap();
    assert!(chat_status.success());
    let followed = tokio::time::timeout(Duration::from_secs(30), async {
        let mut texts = Vec::new();
        while let Some(line) = tail_lines.next_line().await.unwrap() {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["kind"] == "message" {
                texts.push(v["text"].as_str().unwrap().to_string());
            }
            if texts.last().map(String::as_str) == Some("typed in chat") {
                return texts;
            }
        }
        panic!("tail ended early");
    })
    .await
    .expect("tail shows the chat message");
    assert_eq!(
        followed,
        ["hello, bob", "hi alice", "typed in chat"],
        "backfill, then live, in order"
    );

    // A typing notice sent to one replica reaches a subscriber on another.
    let typing_seen = async {
        while let Some(line) = tail_lines.next_line().await.unwrap() {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["kind"] == "typing" {
                return v;
            }
        }
        panic!("tail ended early");
    };
    let send_typing = async {
        for _ in 0..50 {
            ok(&home, &["--as", "alice", "--node", &nodes[0], "typing", "general"]).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let typing = tokio::select! {
        v = typing_seen => v,
        () = send_typing => panic!("no typing notice reached the other replica"),
    };
    assert_eq!((typing["name"].as_str(), typing["active"].as_bool()), (Some("alice"), Some(true)));
    let (typed, _, err) = run(&home, &["--as", "eve", "typing", "general"]).await;
    assert!(!typed && err.contains("not a member"), "only members may type: {err}");
    // Read receipts reach the tail: alice reads bob's message.
    ok(&home, &["--as", "bob", "send", "general", "ping"]).await;
    ok(&home, &["--as", "alice", "inbox"]).await;
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = tail_lines.next_line().await.unwrap() {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["kind"] == "read" && v["name"] == "alice" {
                return v;
            }
        }
        panic!("tail ended early");
    })
    .await
    .expect("alice's read position reaches bob's tail");
    assert!(read["read_seq"].as_u64().is_some_and(|seq| seq >= 5), "{read}");
    drop(tail);

    // kill -9 a replica of the dev cluster: the others carry on, and
    // `kith dev` restarts it from its disk.
    let victim = scratch.0.join("dev/replica-1");
    let pid = pid_of(&victim).expect("replica-1 is running");
    support::signal(pid, nix::sys::signal::Signal::SIGKILL);
    ok(&home, &["--as", "alice", "send", "general", "after the crash"]).await;
    let mut restarted = None;
    for _ in 0..50 {
        restarted = pid_of(&victim).filter(|p| *p != pid);
        if restarted.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(restarted.is_some(), "kith dev restarted the killed replica");
    let args = ["--json", "--as", "bob", "--node", &nodes[0], "history", "general", "--limit", "1"];
    let mut last = Vec::new();
    for _ in 0..50 {
        if let (true, out, _) = run(&home, &args).await {
            last = json_lines(&out);
            if last.first().is_some_and(|v| v["text"] == "after the crash") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last[0]["text"], "after the crash", "the restarted replica serves the latest");

    // Errors are clear and exit non-zero.
    let (success, _, err) = run(&home, &["--as", "nobody", "send", "general", "x"]).await;
    assert!(!success && err.contains("kith id new nobody"), "{err}");
    let (success, _, err) = run(&home, &["--as", "alice", "send", "no-such-room", "x"]).await;
    assert!(!success && err.contains("no such room"), "{err}");

    // Ctrl-C (SIGINT) stops everything cleanly.
    let pid = dev.id().unwrap();
    support::signal(pid, nix::sys::signal::Signal::SIGINT);
    let status = tokio::time::timeout(Duration::from_secs(20), dev.wait()).await.unwrap().unwrap();
    assert!(status.success(), "kith dev exits cleanly: {status}");
    let (up, _, _) = run(&home, &["--as", "alice", "send", "general", "x"]).await;
    assert!(!up, "the replicas are gone");
}
