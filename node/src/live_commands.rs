//! The commands that stay open: `tail` and `chat`.

use crate::cli::Cli;
use crate::render;
use crate::session::Session;
use crate::user_commands::announce;
use anyhow::{bail, Result};
use kith_core::im::identity::UserId;
use kith_core::im::presence::PresenceStatus;
use kith_core::im::protocol::{Operation, QueryKind, QueryReply, RoomId, Target};
use kith_core::session::Reply;
use kith_core::wire::client_protocol::{ClientRequest, LiveFrame, RoomFrom};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// Where a live view of one room is: the last entry shown and the last
/// change number heard, so that a new stream (after a reconnect, to any
/// replica) misses no entry and no edit, deletion or reaction.
#[derive(Clone, Debug)]
struct Position {
    seq: u64,
    change: u64,
    /// Authors of the latest entries shown, so that a read position a
    /// user's own message moved is not announced as news.
    authors: std::collections::VecDeque<(u64, kith_core::im::identity::UserId)>,
}

/// Entries whose authors a position remembers.
const AUTHORS_REMEMBERED: usize = 256;

impl Position {
    fn follow(&self, room: &RoomId) -> Vec<RoomFrom> {
        vec![RoomFrom::new(room.clone(), self.seq, self.change)]
    }
}

/// Where a room's live view starts: after `from`, else ten entries back;
/// changes from now on (older ones are in the entries as shown).
async fn start_cursor(s: &mut Session, room: &RoomId, from: Option<u64>) -> Result<Position> {
    let seq = match from {
        Some(from) => from,
        None => match s.query(QueryKind::Room { room: room.clone() }).await? {
            QueryReply::Room(info) => info.summary.last_seq.saturating_sub(10),
            _ => bail!("unexpected answer to a room query"),
        },
    };
    // A change cursor beyond the room's latest change means "from now".
    Ok(Position { seq, change: u64::MAX, authors: Default::default() })
}

/// Follows a room until interrupted; reconnects (to any configured replica)
/// and resumes from the last sequence number shown and the last change
/// heard, so nothing is missed or shown twice.
pub async fn tail(cli: &Cli, room: &str, from: Option<u64>) -> Result<()> {
    let mut s = Session::open(cli).await?;
    let room = s.resolve_room(room).await?;
    let mut cursor = start_cursor(&mut s, &room, from).await?;
    let mut first = None;
    loop {
        let mut frames = match first.take() {
            Some(frames) => frames,
            None => s.client.subscribe(cursor.follow(&room)).await?,
        };
        loop {
            tokio::select! {
                frame = frames.recv() => match frame {
                    Some(frame) => {
                        if let Some(end) = show(cli, &mut s, frame, &mut cursor).await? {
                            return end;
                        }
                    }
                    None => break,
                },
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
        tracing::warn!("the live stream ended; reconnecting");
        let Some((session, more)) = reopen(cli, &room, &cursor).await else { return Ok(()) };
        (s, first) = (session, Some(more));
    }
}

/// A new session and stream from `cursor`, retried with back-off while no
/// replica can be reached (a restart, a partition); None if interrupted.
async fn reopen(
    cli: &Cli,
    room: &RoomId,
    cursor: &Position,
) -> Option<(Session, mpsc::Receiver<LiveFrame>)> {
    let mut pause = Duration::from_millis(500);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = tokio::signal::ctrl_c() => return None,
        }
        let attempt = async {
            let mut s = Session::open(cli).await?;
            let frames = s.client.subscribe(cursor.follow(room)).await?;
            anyhow::Ok((s, frames))
        };
        match attempt.await {
            Ok(open) => return Some(open),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot follow the room yet; retrying")
            }
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Moves the change cursor on. A replica behind the one heard from may send
/// a change again; the cursor only moves forward.
/// The change cursor is the number the current subscription named last:
/// a replica lagging the one heard before sets it back, and the entries it
/// sends then show only the changes it has applied (docs/PROTOCOL.md).
fn hear(cursor: &mut Position, change: u64) {
    cursor.change = change;
}

/// Shows one frame; `Some` when the subscription is over.
async fn show(
    cli: &Cli,
    s: &mut Session,
    frame: LiveFrame,
    cursor: &mut Position,
) -> Result<Option<Result<()>>> {
    match frame {
        LiveFrame::Entry { room, entry } => {
            cursor.seq = entry.seq;
            if cursor.authors.len() == AUTHORS_REMEMBERED {
                cursor.authors.pop_front();
            }
            cursor.authors.push_back((entry.seq, entry.author));
            render::print_entry(s, cli.json, &room, &entry).await;
        }
        LiveFrame::Read { room, user, seq } => {
            let own = cursor.authors.iter().any(|(at, author)| *at == seq && *author == user);
            if user != s.me && !own {
                let name = s.name_of(user).await;
                if cli.json {
                    let label = s.room_label(&room).await;
                    let v = serde_json::json!({
                        "kind": "read", "room": label, "user": user.to_string(),
                        "name": name, "read_seq": seq,
                    });
                    println!("{v}");
                } else {
                    println!("-- {name} read up to {seq}");
                }
            }
        }
        LiveFrame::Changed { room, change, entry } => {
            hear(cursor, change);
            render::print_entry(s, cli.json, &room, &entry).await;
        }
        LiveFrame::ChangesSeen { change, .. } => hear(cursor, change),
        LiveFrame::Updated { room, entry } => render::print_entry(s, cli.json, &room, &entry).await,
        LiveFrame::Ended { room, last_seq } => {
            let label = s.room_label(&room).await;
            return Ok(Some(Err(anyhow::anyhow!(
                "you can no longer read {label} (after seq {last_seq})"
            ))));
        }
        LiveFrame::Refused(why) => {
            return Ok(Some(Err(anyhow::anyhow!("subscription refused: {why}"))))
        }
        LiveFrame::Typing { room, user, active } => {
            let name = s.name_of(user).await;
            if cli.json {
                let label = s.room_label(&room).await;
                let v = serde_json::json!({
                    "kind": "typing", "room": label, "user": user.to_string(),
                    "name": name, "active": active,
                });
                println!("{v}");
            } else if active {
                println!("-- {name} is typing");
            }
        }
        _ => {}
    }
    Ok(None)
}

/// Interactive chat in one room.
pub async fn chat(cli: &Cli, room: Option<String>) -> Result<()> {
    let mut s = Session::open(cli).await?;
    let room = match room {
        Some(r) => s.resolve_room(&r).await?,
        None => match s.query(QueryKind::Rooms).await? {
            QueryReply::Rooms(rooms) if !rooms.is_empty() => rooms[0].room.clone(),
            _ => bail!("you are in no room yet: `kith chat ROOM` (create one with `kith room create ROOM`)"),
        },
    };
    let label = s.room_label(&room).await;
    announce(&mut s, PresenceStatus::Online).await?;
    let mut cursor = start_cursor(&mut s, &room, None).await?;
    let mut frames = s.client.subscribe(cursor.follow(&room)).await?;
    println!(
        "-- {label}: type a message and press Enter; /edit SEQ TEXT, /delete SEQ, \
         /react SEQ EMOJI, /unreact SEQ EMOJI, /away, /online, /who, /quit"
    );
    let (lines_tx, mut lines) = mpsc::channel::<String>(16);
    tokio::spawn(async move {
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = stdin.next_line().await {
            if lines_tx.send(line).await.is_err() {
                return;
            }
        }
    });
    let mut heartbeat = tokio::time::interval(Duration::from_secs(30));
    let mut seen: BTreeMap<UserId, PresenceStatus> = BTreeMap::new();
    let mut status = PresenceStatus::Online;
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(frame) => if let Some(end) = show(cli, &mut s, frame, &mut cursor).await? { return end },
                None => {
                    println!("-- reconnecting");
                    let Some((session, more)) = reopen(cli, &room, &cursor).await else { break };
                    (s, frames) = (session, more);
                }
            },
            line = lines.recv() => match line.as_deref().map(str::trim) {
                None | Some("/quit") => break,
                Some("") => {}
                Some("/away") => { status = PresenceStatus::Away; announce(&mut s, status).await?; }
                Some("/online") => { status = PresenceStatus::Online; announce(&mut s, status).await?; }
                Some("/who") => who(&mut s, &room, &mut seen, true).await?,
                Some(command) if command.starts_with('/') => match change(&room, command) {
                    Ok(op) => {
                        if let Err(e) = s.submit(op).await {
                            println!("-- not done: {e:#}");
                        }
                    }
                    Err(usage) => println!("-- {usage}"),
                },
                Some(text) => {
                    let to = match &room {
                        RoomId::Direct(a, b) => Target::User(if *a == s.me { *b } else { *a }),
                        group => Target::Room(group.clone()),
                    };
                    if let Err(e) = s.submit(Operation::Send { to, text: text.to_string() }).await {
                        println!("-- not sent: {e:#}");
                    }
                }
            },
            _ = heartbeat.tick() => {
                announce(&mut s, status).await?;
                who(&mut s, &room, &mut seen, false).await?;
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let _ = announce(&mut s, PresenceStatus::Offline).await;
    Ok(())
}

/// A chat command that changes a message: `/edit SEQ TEXT`, `/delete SEQ`,
/// `/react SEQ EMOJI`, `/unreact SEQ EMOJI`.
fn change(room: &RoomId, command: &str) -> std::result::Result<Operation, String> {
    let (verb, rest) = command.split_once(' ').unwrap_or((command, ""));
    let (seq, arg) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
    let seq: u64 =
        seq.parse().map_err(|_| format!("{verb} needs a message number: {verb} SEQ ..."))?;
    let (room, arg) = (room.clone(), arg.trim().to_string());
    let needs = |what: &str| format!("{verb} needs {what}: {verb} SEQ {}", what.to_uppercase());
    match verb {
        "/edit" if !arg.is_empty() => Ok(Operation::Edit { room, seq, text: arg }),
        "/edit" => Err(needs("text")),
        "/delete" => Ok(Operation::Delete { room, seq }),
        "/react" | "/unreact" if !arg.is_empty() => {
            Ok(Operation::React { room, seq, reaction: arg, add: verb == "/react" })
        }
        "/react" | "/unreact" => Err(needs("emoji")),
        _ => Err(format!("unknown command {verb}")),
    }
}

/// Prints presence changes of the room's members (all of them with `all`).
async fn who(
    s: &mut Session,
    room: &RoomId,
    seen: &mut BTreeMap<UserId, PresenceStatus>,
    all: bool,
) -> Result<()> {
    let QueryReply::Room(info) = s.query(QueryKind::Room { room: room.clone() }).await? else {
        return Ok(());
    };
    let users: Vec<UserId> = info.members.iter().map(|(u, _)| *u).collect();
    if let Reply::Presence(list) = s.client.call(ClientRequest::PresenceOf(users)).await? {
        for p in list {
            if all || seen.get(&p.user) != Some(&p.status) {
                let name = s.name_of(p.user).await;
                println!("-- {name} is {}", format!("{:?}", p.status).to_lowercase());
            }
            seen.insert(p.user, p.status);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_commands_change_messages_and_explain_mistakes() {
        let room = RoomId::Group("general".into());
        assert_eq!(
            change(&room, "/edit 4 better words"),
            Ok(Operation::Edit { room: room.clone(), seq: 4, text: "better words".into() })
        );
        assert_eq!(
            change(&room, "/delete 9"),
            Ok(Operation::Delete { room: room.clone(), seq: 9 })
        );
        assert_eq!(
            change(&room, "/unreact 2 +1"),
            Ok(Operation::React { room: room.clone(), seq: 2, reaction: "+1".into(), add: false })
        );
        assert!(change(&room, "/edit 4").unwrap_err().contains("needs text"));
        assert!(change(&room, "/react x +1").unwrap_err().contains("message number"));
        assert!(change(&room, "/shout 1").unwrap_err().contains("unknown command"));
    }
}
