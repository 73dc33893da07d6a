//! `kith room ...`: create, join and leave rooms, manage members and roles,
//! and show what rooms there are.

use crate::cli::{Cli, RoleArg, RoomCommand};
use crate::render;
use crate::session::Session;
use anyhow::{bail, Result};
use kith_core::im::protocol::{Operation, QueryKind, QueryReply, Role, Visibility};
use serde_json::json;

/// `kith room ...`.
pub async fn run(cli: &Cli, s: &mut Session, command: RoomCommand) -> Result<()> {
    let op = match command {
        RoomCommand::Create { room, private } => {
            let visibility = if private { Visibility::Private } else { Visibility::Public };
            Operation::CreateRoom { name: room.trim_start_matches('#').to_string(), visibility }
        }
        RoomCommand::Invite { room, user } => Operation::Invite {
            room: s.resolve_room(&room).await?,
            user: s.resolve_user(&user).await?,
        },
        RoomCommand::Join { room } => Operation::Join { room: s.resolve_room(&room).await? },
        RoomCommand::Leave { room } => Operation::Leave { room: s.resolve_room(&room).await? },
        RoomCommand::Kick { room, user } => Operation::Kick {
            room: s.resolve_room(&room).await?,
            user: s.resolve_user(&user).await?,
        },
        RoomCommand::Ban { room, user } => Operation::Ban {
            room: s.resolve_room(&room).await?,
            user: s.resolve_user(&user).await?,
        },
        RoomCommand::Unban { room, user } => Operation::Unban {
            room: s.resolve_room(&room).await?,
            user: s.resolve_user(&user).await?,
        },
        RoomCommand::Role { room, user, role } => Operation::SetRole {
            room: s.resolve_room(&room).await?,
            user: s.resolve_user(&user).await?,
            role: match role {
                RoleArg::Member => Role::Member,
                RoleArg::Admin => Role::Admin,
                RoleArg::Owner => Role::Owner,
            },
        },
        RoomCommand::Rename { room, title } => {
            Operation::Rename { room: s.resolve_room(&room).await?, title }
        }
        RoomCommand::Topic { room, topic } => {
            Operation::SetTopic { room: s.resolve_room(&room).await?, topic }
        }
        RoomCommand::List => return room_list(cli, s).await,
        RoomCommand::Invites => return invites(cli, s).await,
        RoomCommand::Decline { room } => {
            Operation::DeclineInvite { room: s.resolve_room(&room).await? }
        }
        RoomCommand::Info { room } => return room_info(cli, s, &room).await,
    };
    let receipt = s.submit(op).await?;
    render::receipt(cli, s, &receipt).await;
    Ok(())
}

async fn room_list(cli: &Cli, s: &mut Session) -> Result<()> {
    let QueryReply::Rooms(rooms) = s.query(QueryKind::Rooms).await? else {
        bail!("unexpected answer to a room list");
    };
    for r in rooms {
        let label = s.room_label(&r.room).await;
        let unread = r.last_seq.saturating_sub(r.read_seq);
        if cli.json {
            println!(
                "{}",
                json!({ "room": label, "members": r.members, "last_seq": r.last_seq, "read_seq": r.read_seq, "topic": r.topic })
            );
        } else {
            println!("{label}\t{} members\t{unread} unread\t{}", r.members, r.topic);
        }
    }
    Ok(())
}

async fn invites(cli: &Cli, s: &mut Session) -> Result<()> {
    let QueryReply::Invites(invites) = s.query(QueryKind::Invites).await? else {
        bail!("unexpected answer to an invitations query");
    };
    for invite in invites {
        let label = s.room_label(&invite.room).await;
        let by = if invite.inviter_name.is_empty() { "?" } else { invite.inviter_name.as_str() };
        if cli.json {
            println!(
                "{}",
                json!({ "room": label, "title": invite.title, "inviter": invite.inviter.map(|u| u.to_string()), "inviter_name": invite.inviter_name })
            );
        } else {
            println!("{label}\t{}\tinvited by {by}", invite.title);
        }
    }
    Ok(())
}

async fn room_info(cli: &Cli, s: &mut Session, room: &str) -> Result<()> {
    let room = s.resolve_room(room).await?;
    let QueryReply::Room(info) = s.query(QueryKind::Room { room: room.clone() }).await? else {
        bail!("unexpected answer to a room query");
    };
    let mut members = Vec::new();
    for (user, role) in &info.members {
        members.push((s.name_of(*user).await, format!("{role:?}").to_lowercase()));
    }
    let label = s.room_label(&room).await;
    if cli.json {
        let m: Vec<_> = members.iter().map(|(n, r)| json!({ "name": n, "role": r })).collect();
        println!(
            "{}",
            json!({ "room": label, "topic": info.summary.topic, "last_seq": info.summary.last_seq, "members": m })
        );
    } else {
        println!("{label} ({} entries) {}", info.summary.last_seq, info.summary.topic);
        for (n, r) in members {
            println!("  {n} ({r})");
        }
    }
    Ok(())
}
