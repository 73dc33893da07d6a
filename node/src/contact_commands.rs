//! `kith contacts`, `kith block`, `kith unblock`, `kith reads`: who may
//! reach you, and who has read what.

use crate::cli::{Cli, Command, ContactCommand};
use crate::render;
use crate::session::Session;
use anyhow::{bail, Result};
use kith_core::im::protocol::{
    ContactsView, Operation, QueryKind, QueryReply, Receipt, Relation, RequestInfo,
};
use serde_json::{json, Value};

/// The contact commands (a connection is open).
pub async fn run(cli: &Cli, s: &mut Session, command: Command) -> Result<()> {
    let op = match command {
        Command::Contacts { command: None } => return list(cli, s).await,
        Command::Contacts { command: Some(c) } => match c {
            ContactCommand::Add { user } => {
                Operation::RequestContact { user: s.resolve_user(&user).await? }
            }
            ContactCommand::Accept { user } => {
                Operation::AcceptRequest { user: s.resolve_user(&user).await? }
            }
            ContactCommand::Decline { user } => {
                Operation::DeclineRequest { user: s.resolve_user(&user).await? }
            }
            ContactCommand::Cancel { user } => {
                Operation::CancelRequest { user: s.resolve_user(&user).await? }
            }
            ContactCommand::Remove { user } => {
                Operation::RemoveContact { user: s.resolve_user(&user).await? }
            }
        },
        Command::Block { user } => Operation::Block { user: s.resolve_user(&user).await? },
        Command::Unblock { user } => Operation::Unblock { user: s.resolve_user(&user).await? },
        Command::Reads { room: Some(room), share: false, private: false } => {
            return reads(cli, s, &room).await
        }
        Command::Reads { share, private, .. } if share || private => {
            Operation::ShareReads { share: !private }
        }
        Command::Reads { .. } => bail!("name a room, or say --share or --private"),
        _ => unreachable!("dispatched by the caller"),
    };
    let receipt = s.submit(op).await?;
    relation_or_receipt(cli, s, &receipt).await;
    Ok(())
}

/// Relation receipts in words; anything else as any receipt.
async fn relation_or_receipt(cli: &Cli, s: &mut Session, receipt: &Receipt) {
    let (user, relation) = match receipt {
        Receipt::Relation { user, relation } => (*user, *relation),
        Receipt::ReadsShared { share } => {
            let shown = if *share { "shared" } else { "private" };
            if cli.json {
                println!("{}", json!({ "ok": "reads", "reads": shown }));
            } else {
                println!("your read position is {shown}");
            }
            return;
        }
        other => return render::receipt(cli, s, other).await,
    };
    let name = s.name_of(user).await;
    let words = match relation {
        Relation::Contact => "a contact",
        Relation::RequestSent => "asked (waiting for their answer)",
        Relation::RequestReceived => "asking you (accept or decline)",
        Relation::Blocked => "blocked",
        _ => "not a contact",
    };
    if cli.json {
        let relation = format!("{relation:?}").to_lowercase();
        println!("{}", json!({ "user": user.to_string(), "name": name, "relation": relation }));
    } else {
        println!("{name}: {words}");
    }
}

async fn list(cli: &Cli, s: &mut Session) -> Result<()> {
    let QueryReply::Contacts(view) = s.query(QueryKind::Contacts).await? else {
        bail!("unexpected answer to a contacts query");
    };
    if cli.json {
        println!("{}", view_json(s, &view).await);
        return Ok(());
    }
    let ContactsView { contacts, incoming, outgoing, blocked } = view;
    println!("contacts ({}):", contacts.len());
    for (_, name) in &contacts {
        println!("  {name}");
    }
    println!("asking you ({}):", incoming.len());
    for r in &incoming {
        println!("  {}", request_line(s, r).await);
    }
    println!("you asked ({}):", outgoing.len());
    for r in &outgoing {
        println!("  {}", request_line(s, r).await);
    }
    println!("blocked ({}):", blocked.len());
    for (_, name) in &blocked {
        println!("  {name}");
    }
    Ok(())
}

/// One request: who, how many messages, the first of them.
async fn request_line(s: &mut Session, r: &RequestInfo) -> String {
    let mut line = r.name.clone();
    if r.messages > 0 {
        let plural = if r.messages == 1 { "" } else { "s" };
        line.push_str(&format!("  ({} message{plural})", r.messages));
    }
    if let Some(first) = &r.first {
        line.push_str(&format!("  \"{}\"", render::describe(s, first).await));
    }
    line
}

async fn view_json(s: &mut Session, view: &ContactsView) -> Value {
    let user = |(id, name): &(kith_core::im::identity::UserId, String)| json!({ "user": id.to_string(), "name": name });
    json!({
        "contacts": view.contacts.iter().map(user).collect::<Vec<_>>(),
        "incoming": requests_json(s, &view.incoming).await,
        "outgoing": requests_json(s, &view.outgoing).await,
        "blocked": view.blocked.iter().map(user).collect::<Vec<_>>(),
    })
}

async fn requests_json(s: &mut Session, list: &[RequestInfo]) -> Vec<Value> {
    let mut items = Vec::new();
    for r in list {
        let first = match &r.first {
            Some(entry) => Some(render::describe(s, entry).await),
            None => None,
        };
        items.push(json!({
            "user": r.user.to_string(),
            "name": r.name,
            "at_ms": r.at_ms,
            "expires_at_ms": r.expires_at_ms,
            "messages": r.messages,
            "first": first,
        }));
    }
    items
}

async fn reads(cli: &Cli, s: &mut Session, room: &str) -> Result<()> {
    let room = s.resolve_room(room).await?;
    let QueryReply::ReadPositions(positions) =
        s.query(QueryKind::ReadPositions { room: room.clone() }).await?
    else {
        bail!("unexpected answer to a read positions query");
    };
    let label = s.room_label(&room).await;
    for (user, seq) in positions {
        let name = s.name_of(user).await;
        if cli.json {
            println!(
                "{}",
                json!({ "room": label, "user": user.to_string(), "name": name, "read_seq": seq })
            );
        } else {
            println!("{label}\t{name}\tread up to {seq}");
        }
    }
    Ok(())
}
