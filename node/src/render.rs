//! How entries and receipts look: a line for people, a JSON object for
//! scripts.

use crate::cli::Cli;
use crate::session::Session;
use kith_core::im::identity::UserId;
use kith_core::im::protocol::{EntryKind, Receipt, RoomEntry, RoomId};
use serde_json::{json, Value};

/// Local time of day for a UNIX millisecond stamp (UTC; no time zone database).
fn clock(ms: u64) -> String {
    let secs = ms / 1000;
    format!("{:02}:{:02}:{:02}", (secs / 3600) % 24, (secs / 60) % 60, secs % 60)
}

/// What an entry says, in words: the text of a message, or a sentence
/// naming who did what for everything else.
pub async fn describe(session: &mut Session, entry: &RoomEntry) -> String {
    let actor = session.name_of(entry.author).await;
    match &entry.kind {
        EntryKind::Message(m) if m.deleted => "(deleted)".into(),
        EntryKind::Message(m) => {
            let edited = if m.edits > 0 { " (edited)" } else { "" };
            format!("{}{edited}{}", m.text, reactions(&m.reactions))
        }
        EntryKind::Created { visibility } => {
            format!("{actor} created the room ({})", format!("{visibility:?}").to_lowercase())
        }
        EntryKind::Invited { user } => format!("{actor} invited {}", session.name_of(*user).await),
        EntryKind::Joined { user } => format!("{} joined", session.name_of(*user).await),
        EntryKind::Left { user } => format!("{} left", session.name_of(*user).await),
        EntryKind::Kicked { user } => format!("{actor} removed {}", session.name_of(*user).await),
        EntryKind::Banned { user } => format!("{actor} banned {}", session.name_of(*user).await),
        EntryKind::Unbanned { user } => {
            format!("{actor} unbanned {}", session.name_of(*user).await)
        }
        EntryKind::RoleChanged { user, role } => {
            let role = format!("{role:?}").to_lowercase();
            format!("{actor} made {} {role}", session.name_of(*user).await)
        }
        EntryKind::Renamed { title } => format!("{actor} renamed the room to {title}"),
        EntryKind::TopicChanged { topic } => format!("{actor} set the topic: {topic}"),
        EntryKind::File(f) if f.message.deleted => "(deleted file)".into(),
        EntryKind::File(f) => {
            let m = &f.message;
            let edited = if m.edits > 0 { " (edited)" } else { "" };
            let caption = if m.text.is_empty() { String::new() } else { format!(" {}", m.text) };
            let file = &f.file;
            let size = human_bytes(file.id.size_bytes);
            let reactions = reactions(&m.reactions);
            format!(
                "[file {} ({size}, {})]{caption}{edited}{reactions}",
                file.name, file.media_type
            )
        }
        EntryKind::Hidden => format!("(hidden: you block {actor})"),
        _ => "(an entry this version cannot show)".into(),
    }
}

/// A size as people read it: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Reactions as people read them: `  [+1 x2, ok]`, empty when there are none.
fn reactions(reactions: &std::collections::BTreeMap<String, Vec<UserId>>) -> String {
    let shown: Vec<String> = reactions
        .iter()
        .filter(|(_, who)| !who.is_empty())
        .map(|(r, who)| if who.len() == 1 { r.clone() } else { format!("{r} x{}", who.len()) })
        .collect();
    if shown.is_empty() {
        String::new()
    } else {
        format!("  [{}]", shown.join(", "))
    }
}

/// One entry as a line.
pub async fn line(session: &mut Session, room: &RoomId, entry: &RoomEntry) -> String {
    let label = session.room_label(room).await;
    let what = describe(session, entry).await;
    let who =
        if matches!(entry.kind, EntryKind::Message(_) | EntryKind::File(_) | EntryKind::Hidden) {
            format!("{}:", session.name_of(entry.author).await)
        } else {
            "*".to_string()
        };
    format!("{label} {:>4} {} {who} {what}", entry.seq, clock(entry.time_ms))
}

/// One entry as JSON.
pub async fn object(session: &mut Session, room: &RoomId, entry: &RoomEntry) -> Value {
    let author_name = session.name_of(entry.author).await;
    let mut v = json!({
        "room": session.room_label(room).await,
        "seq": entry.seq,
        "time_ms": entry.time_ms,
        "author": entry.author.to_string(),
        "author_name": author_name,
    });
    let message = match &entry.kind {
        EntryKind::Message(m) => {
            v["kind"] = json!("message");
            Some(m)
        }
        EntryKind::File(f) => {
            v["kind"] = json!("file");
            // A tombstone names no file.
            v["file"] = if f.message.deleted {
                Value::Null
            } else {
                json!({
                    "id": f.file.id.to_string(),
                    "name": f.file.name,
                    "media_type": f.file.media_type,
                    "size_bytes": f.file.id.size_bytes,
                })
            };
            Some(&f.message)
        }
        EntryKind::Hidden => {
            v["kind"] = json!("hidden");
            None
        }
        _ => {
            v["kind"] = json!("event");
            v["text"] = json!(describe(session, entry).await);
            None
        }
    };
    if let Some(m) = message {
        v["msg_id"] = json!(m.msg_id.to_string());
        v["text"] = json!(if m.deleted { "" } else { m.text.as_str() });
        v["deleted"] = json!(m.deleted);
        v["edits"] = json!(m.edits);
        let mut reactions = serde_json::Map::new();
        for (reaction, who) in &m.reactions {
            let mut names = Vec::new();
            for user in who {
                names.push(json!(session.name_of(*user).await));
            }
            reactions.insert(reaction.clone(), Value::Array(names));
        }
        v["reactions"] = Value::Object(reactions);
    }
    v
}

/// Prints an entry in the chosen format.
pub async fn print_entry(session: &mut Session, json: bool, room: &RoomId, entry: &RoomEntry) {
    if json {
        println!("{}", object(session, room, entry).await);
    } else {
        println!("{}", line(session, room, entry).await);
    }
}

/// What a command did, as a line (or a JSON object with `--json`).
pub async fn receipt(cli: &Cli, s: &mut Session, receipt: &Receipt) {
    let (what, room, seq) = match receipt {
        Receipt::Registered { name } => {
            if cli.json {
                println!("{}", json!({ "registered": name, "peer_id": s.me.to_string() }));
            } else {
                println!("registered as {name}");
            }
            return;
        }
        Receipt::Appended { room, seq } => ("appended", room, seq),
        Receipt::Updated { room, seq } => ("updated", room, seq),
        Receipt::ReadUpTo { room, seq } => ("read up to", room, seq),
        Receipt::InviteDeclined { room } => {
            let label = s.room_label(room).await;
            if cli.json {
                println!("{}", json!({ "ok": "declined", "room": label }));
            } else {
                println!("declined the invitation to {label}");
            }
            return;
        }
        _ => ("done", &RoomId::Group(String::new()), &0),
    };
    let label = s.room_label(room).await;
    if cli.json {
        println!("{}", json!({ "ok": what, "room": label, "seq": seq }));
    } else {
        println!("{what} {label} seq {seq}");
    }
}
