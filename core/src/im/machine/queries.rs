//! Answering reads against the applied state, with visibility rules: a
//! member reads everything; anyone not banned reads a public room; a former
//! member reads up to the entry that removed them.

use super::state::{ImState, Room};
use crate::im::identity::UserId;
use crate::im::protocol::{
    EntryKind, ImError, ImQuery, InboxPage, Page, QueryKind, QueryReply, QueryResult, RoomEntry,
    RoomId, RoomInfo, RoomSummary, UserInfo,
};
use crate::limits;

fn page_limit(limit: u32) -> usize {
    (limit as usize).clamp(1, limits::PAGE_ENTRIES_MAX)
}

pub(super) fn answer(state: &ImState, query: &ImQuery) -> QueryResult {
    let user = query.as_user;
    match &query.kind {
        QueryKind::History { room, after, before, limit } => {
            history(readable(state, room, user)?, *after, *before, page_limit(*limit))
        }
        QueryKind::HistoryByTime { room, from_ms, to_ms, after, limit } => {
            let (r, up_to) = readable(state, room, user)?;
            let visible = &r.entries[..up_to as usize];
            let start = visible.partition_point(|e| e.time_ms < *from_ms);
            let end = visible.partition_point(|e| e.time_ms < *to_ms);
            let after = after.unwrap_or(0);
            let span: Vec<&RoomEntry> =
                visible[start..end.max(start)].iter().filter(|e| e.seq > after).collect();
            let limit = page_limit(*limit);
            let entries: Vec<RoomEntry> = span.iter().take(limit).map(|e| (*e).clone()).collect();
            let next = (span.len() > limit).then(|| entries.last().map(|e| e.seq)).flatten();
            Ok(QueryReply::Page(Page { entries, next }))
        }
        QueryKind::Inbox { after, limit } => {
            Ok(QueryReply::Inbox(inbox(state, user, after.as_ref(), page_limit(*limit))))
        }
        QueryKind::Unread => Ok(QueryReply::Unread(unread(state, user))),
        QueryKind::Rooms => Ok(QueryReply::Rooms(
            member_rooms(state, user).map(|(id, r)| summary(id, r, user)).collect(),
        )),
        QueryKind::Room { room } => {
            let (r, _) = readable(state, room, user)?;
            Ok(QueryReply::Room(RoomInfo {
                summary: summary(room, r, user),
                members: r.members.iter().map(|(u, role)| (*u, *role)).collect(),
                invited: r.invited.iter().copied().collect(),
                banned: r.banned.iter().copied().collect(),
            }))
        }
        QueryKind::UserByName { name } => {
            Ok(QueryReply::User(state.names.get(&name.to_lowercase()).map(|u| UserInfo {
                user: *u,
                name: state.users.get(u).map_or_else(String::new, |r| r.name.clone()),
            })))
        }
        QueryKind::User { user } => Ok(QueryReply::User(
            state.users.get(user).map(|r| UserInfo { user: *user, name: r.name.clone() }),
        )),
    }
}

/// The room and the highest sequence number `user` may read in it.
fn readable<'a>(
    state: &'a ImState,
    room: &RoomId,
    user: UserId,
) -> Result<(&'a Room, u64), ImError> {
    let r = state.rooms.get(room).ok_or(ImError::NoSuchRoom)?;
    let up_to = r.readable_up_to(user).ok_or(ImError::NotMember)?;
    Ok((r, up_to))
}

fn history(
    (room, up_to): (&Room, u64),
    after: Option<u64>,
    before: Option<u64>,
    limit: usize,
) -> QueryResult {
    let low = after.unwrap_or(0);
    let high = before.unwrap_or(u64::MAX).min(up_to + 1);
    let span: &[RoomEntry] =
        if high > low + 1 { &room.entries[low as usize..(high - 1) as usize] } else { &[] };
    let backwards = before.is_some() && after.is_none();
    let (entries, more) = if backwards {
        let start = span.len().saturating_sub(limit);
        (&span[start..], start > 0)
    } else {
        (&span[..span.len().min(limit)], span.len() > limit)
    };
    let next = if !more {
        None
    } else if backwards {
        entries.first().map(|e| e.seq)
    } else {
        entries.last().map(|e| e.seq)
    };
    Ok(QueryReply::Page(Page { entries: entries.to_vec(), next }))
}

fn member_rooms(state: &ImState, user: UserId) -> impl Iterator<Item = (&RoomId, &Room)> {
    state
        .memberships
        .get(&user)
        .into_iter()
        .flatten()
        .filter_map(move |id| state.rooms.get(id).map(|r| (id, r)))
}

fn inbox(state: &ImState, user: UserId, after: Option<&(RoomId, u64)>, limit: usize) -> InboxPage {
    let mut items = Vec::new();
    for (id, room) in member_rooms(state, user) {
        if after.is_some_and(|(a, _)| id < a) {
            continue;
        }
        let cursor = room.read.get(&user).copied().unwrap_or(0);
        let resume = after.filter(|(a, _)| a == id).map_or(0, |(_, s)| *s);
        let from = cursor.max(resume) as usize;
        for entry in &room.entries[from.min(room.entries.len())..] {
            if items.len() == limit {
                let next = items.last().map(|(r, e): &(RoomId, RoomEntry)| (r.clone(), e.seq));
                return InboxPage { items, next };
            }
            items.push((id.clone(), entry.clone()));
        }
    }
    InboxPage { items, next: None }
}

fn is_unread_message(entry: &RoomEntry, user: UserId) -> bool {
    matches!(&entry.kind, EntryKind::Message(m) if !m.deleted) && entry.author != user
}

fn unread(state: &ImState, user: UserId) -> Vec<(RoomId, u64)> {
    member_rooms(state, user)
        .map(|(id, room)| {
            let cursor = room.read.get(&user).copied().unwrap_or(0) as usize;
            let count = room.entries[cursor.min(room.entries.len())..]
                .iter()
                .filter(|e| is_unread_message(e, user))
                .count();
            (id.clone(), count as u64)
        })
        .collect()
}

fn summary(id: &RoomId, room: &Room, user: UserId) -> RoomSummary {
    RoomSummary {
        room: id.clone(),
        title: room.title.clone(),
        topic: room.topic.clone(),
        visibility: room.visibility,
        last_seq: room.last_seq(),
        read_seq: room.read.get(&user).copied().unwrap_or(0),
        members: room.members.len() as u32,
    }
}
