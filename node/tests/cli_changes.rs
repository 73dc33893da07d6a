//! Every change a member can make to a room or a message, through the real
//! binary: edit, react (and take back), delete, ban and unban, set a role,
//! rename; `history` and `room info` show the result; invitations listed,
//! declined and accepted; leaving.

mod support;

use support::{cli_ok, kith, Cluster};

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_change_messages_and_rooms_from_the_command_line() {
    let cluster = Cluster::start("cli-changes", 1, &[]).await;
    let home = cluster.scratch.0.join("home");
    let home = home.to_str().unwrap();
    let node = cluster.replicas[0].dial_addr().to_string();
    let node = node.as_str();
    for name in ["alice", "bob"] {
        cli_ok(home, node, &["id", "new", name]).await;
        cli_ok(home, node, &["--as", name, "register"]).await;
    }
    cli_ok(home, node, &["--as", "alice", "room", "create", "general"]).await;
    cli_ok(home, node, &["--as", "bob", "room", "join", "general"]).await;
    let sent = json_lines(
        &cli_ok(home, node, &["--json", "--as", "alice", "send", "general", "helo"]).await,
    );
    let hello = sent[0]["seq"].as_u64().expect("a sequence number").to_string();
    let sent = json_lines(
        &cli_ok(home, node, &["--json", "--as", "bob", "send", "general", "oops"]).await,
    );
    let oops = sent[0]["seq"].as_u64().expect("a sequence number").to_string();

    let edited = json_lines(
        &cli_ok(home, node, &["--json", "--as", "alice", "edit", "general", &hello, "hello"]).await,
    );
    assert_eq!(edited[0]["ok"], "updated");
    for who in ["alice", "bob"] {
        cli_ok(home, node, &["--as", who, "react", "general", &hello, "+1"]).await;
    }
    cli_ok(home, node, &["--as", "bob", "react", "general", &hello, "ok"]).await;
    cli_ok(home, node, &["--as", "bob", "react", "general", &hello, "ok", "--remove"]).await;
    cli_ok(home, node, &["--as", "bob", "delete", "general", &oops]).await;
    cli_ok(home, node, &["--as", "alice", "room", "ban", "general", "bob"]).await;
    cli_ok(home, node, &["--as", "alice", "room", "unban", "general", "bob"]).await;
    cli_ok(home, node, &["--as", "bob", "room", "join", "general"]).await;
    cli_ok(home, node, &["--as", "alice", "room", "role", "general", "bob", "admin"]).await;
    cli_ok(home, node, &["--as", "alice", "room", "rename", "general", "General chat"]).await;

    let history =
        json_lines(&cli_ok(home, node, &["--json", "--as", "bob", "history", "general"]).await);
    let at = |seq: &str| {
        history
            .iter()
            .find(|e| e["seq"].as_u64().map(|s| s.to_string()).as_deref() == Some(seq))
            .unwrap_or_else(|| panic!("entry {seq} in {history:?}"))
            .clone()
    };
    let message = at(&hello);
    assert_eq!((message["text"].as_str(), message["edits"].as_u64()), (Some("hello"), Some(1)));
    let mut plus_one: Vec<&str> =
        message["reactions"]["+1"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    plus_one.sort();
    assert_eq!(plus_one, ["alice", "bob"]);
    assert!(message["reactions"]
        .get("ok")
        .is_none_or(|v| v.as_array().is_some_and(|a| a.is_empty())));
    assert_eq!(at(&oops)["deleted"], true);
    let events: Vec<&str> = history.iter().filter_map(|e| e["text"].as_str()).collect();
    for wanted in [
        "alice banned bob",
        "alice unbanned bob",
        "alice made bob admin",
        "alice renamed the room to General chat",
    ] {
        assert!(events.contains(&wanted), "{wanted:?} not in {events:?}");
    }

    let lines = cli_ok(home, node, &["--as", "bob", "history", "general"]).await;
    assert!(lines.contains("hello (edited)  [+1 x2]"), "people see edits and reactions:\n{lines}");
    assert!(lines.contains("(deleted)"), "and deletions:\n{lines}");
    let info = json_lines(
        &cli_ok(home, node, &["--json", "--as", "alice", "room", "info", "general"]).await,
    );
    let roles = info[0]["members"].as_array().unwrap();
    assert!(roles.iter().any(|m| m["name"] == "bob" && m["role"] == "admin"), "{roles:?}");
    // Bob is no author of alice's message: the replica refuses, and says why.
    let out = kith()
        .env("KITH_HOME", home)
        .args(["--node", node, "--as", "bob", "edit", "general", &hello, "mine now"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "only the author edits a message");
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty(), "with a reason");

    // Invitations: listed with who sent them, turned down, or accepted by
    // joining; and a member leaves.
    cli_ok(home, node, &["--as", "alice", "room", "create", "quiet", "--private"]).await;
    cli_ok(home, node, &["--as", "alice", "room", "create", "loud", "--private"]).await;
    for room in ["quiet", "loud"] {
        cli_ok(home, node, &["--as", "alice", "room", "invite", room, "bob"]).await;
    }
    let invites = cli_ok(home, node, &["--as", "bob", "room", "invites"]).await;
    assert!(invites.contains("#quiet\tquiet\tinvited by alice"), "{invites}");
    let declined = cli_ok(home, node, &["--as", "bob", "room", "decline", "quiet"]).await;
    assert_eq!(declined.trim(), "declined the invitation to #quiet");
    cli_ok(home, node, &["--as", "bob", "room", "join", "loud"]).await;
    let invites =
        json_lines(&cli_ok(home, node, &["--json", "--as", "bob", "room", "invites"]).await);
    assert!(invites.is_empty(), "{invites:?}");
    cli_ok(home, node, &["--as", "bob", "room", "leave", "loud"]).await;
    let left = json_lines(&cli_ok(home, node, &["--json", "--as", "bob", "room", "list"]).await);
    assert!(left.iter().all(|r| r["room"] != "#loud"), "{left:?}");
}
