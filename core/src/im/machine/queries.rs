//! Answering reads against the applied state, with visibility rules: a
//! member reads everything; anyone not banned reads a public room; a former
//! member reads up to the entry that removed them.

use super::contacts::{contacts_view, hide_blocked};
use super::social::Social;
use super::state::{ImState, Room};
use crate::im::history::{HistoryError, HistoryStore};
use crate::im::identity::UserId;
use crate::im::protocol::{
    EntryKind, ImError, ImQuery, InboxPage, InviteInfo, Page, QueryKind, QueryReply, QueryResult,
    RoomEntry, RoomId, RoomInfo, RoomSummary, UserInfo,
};
use crate::limits;
use std::collections::BTreeSet;

fn page_limit(limit: u32) -> usize {
    (limit as usize).clamp(1, limits::PAGE_ENTRIES_MAX)
}

fn unavailable(e: HistoryError) -> ImError {
    ImError::Unavailable(e.to_string())
}

pub(super) fn answer(
    state: &ImState,
    social: &Social,
    store: &dyn HistoryStore,
    query: &ImQuery,
) -> QueryResult {
    let user = query.as_user;
    let hidden = social.blocked_by(user);
    match &query.kind {
        QueryKind::History { room, after, before, limit } => {
            let (_, up_to) = readable(state, room, user)?;
            let page = history(store, room, up_to, *after, *before, page_limit(*limit));
            Ok(QueryReply::Page(hide_blocked(hidden, page.map_err(unavailable)?)))
        }
        QueryKind::HistoryByTime { room, from_ms, to_ms, after, limit } => {
            let (_, up_to) = readable(state, room, user)?;
            let span = TimeSpan { from_ms: *from_ms, to_ms: *to_ms, after: after.unwrap_or(0) };
            let page = by_time(store, room, up_to, span, page_limit(*limit));
            Ok(QueryReply::Page(hide_blocked(hidden, page.map_err(unavailable)?)))
        }
        QueryKind::Inbox { after, limit } => {
            let mut page = inbox(state, store, user, after.as_ref(), page_limit(*limit))
                .map_err(unavailable)?;
            for (_, entry) in &mut page.items {
                super::contacts::hide_entry(hidden, entry);
            }
            Ok(QueryReply::Inbox(page))
        }
        QueryKind::Unread => {
            Ok(QueryReply::Unread(unread(state, store, user, hidden).map_err(unavailable)?))
        }
        QueryKind::Contacts => Ok(QueryReply::Contacts(
            contacts_view(state, social, store, user, hidden).map_err(unavailable)?,
        )),
        QueryKind::Invites => Ok(QueryReply::Invites(invites(state, social, user))),
        QueryKind::ReadPositions { room } => {
            let (r, _) = readable(state, room, user)?;
            let shared = r.read.iter().filter(|(reader, _)| {
                **reader == user
                    || (r.members.contains_key(reader) && !social.reads_private(**reader))
            });
            Ok(QueryReply::ReadPositions(shared.map(|(u, seq)| (*u, *seq)).collect()))
        }
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

/// Entries `after < seq < before` (of those `user` may read), oldest first;
/// with only `before`, the newest page below it.
fn history(
    store: &dyn HistoryStore,
    room: &RoomId,
    up_to: u64,
    after: Option<u64>,
    before: Option<u64>,
    limit: usize,
) -> Result<Page, HistoryError> {
    let low = after.unwrap_or(0) + 1;
    let high = before.unwrap_or(u64::MAX).min(up_to + 1).saturating_sub(1);
    if high < low {
        return Ok(Page { entries: Vec::new(), next: None });
    }
    let backwards = before.is_some() && after.is_none();
    let (entries, next) = if backwards {
        let from = high.saturating_sub(limit as u64 - 1).max(low);
        let mut entries = store.range(room, from, high, limit)?;
        // The newest entries that fit one frame; the cursor moves up to them.
        let fit = entries_that_fit(entries.iter().rev());
        let cut = entries.len() - fit;
        entries.drain(..cut);
        let more = from > low || cut > 0;
        let next = more.then(|| entries.first().map(|e| e.seq)).flatten();
        (entries, next)
    } else {
        forward_page(store.range(room, low, high, limit + 1)?, limit)
    };
    Ok(Page { entries, next })
}

/// Cuts a page read with one entry to spare; the cursor is its last seq
/// when more follow.
fn forward_page(mut entries: Vec<RoomEntry>, limit: usize) -> (Vec<RoomEntry>, Option<u64>) {
    let keep = limit.min(entries_that_fit(entries.iter()));
    let more = entries.len() > keep;
    entries.truncate(keep);
    let next = more.then(|| entries.last().map(|e| e.seq)).flatten();
    (entries, next)
}

/// How many of `entries`, in the order given, fit in
/// [`limits::PAGE_BYTES_MAX`] encoded (at least one: every entry fits on
/// its own). Without this, 500 long messages made a page of 8 MiB, which
/// no client frame can carry, and such a room could not be read at all.
fn entries_that_fit<'a>(entries: impl Iterator<Item = &'a RoomEntry>) -> usize {
    let mut bytes = 0;
    let mut count = 0;
    for entry in entries {
        bytes += postcard::serialize_with_flavor::<RoomEntry, _, usize>(
            entry,
            postcard::ser_flavors::Size::default(),
        )
        .unwrap_or(usize::MAX / 2);
        if count > 0 && bytes > limits::PAGE_BYTES_MAX {
            break;
        }
        count += 1;
    }
    count
}

/// A time range `[from_ms, to_ms)`, resuming after sequence number `after`.
struct TimeSpan {
    from_ms: u64,
    to_ms: u64,
    after: u64,
}

fn by_time(
    store: &dyn HistoryStore,
    room: &RoomId,
    up_to: u64,
    span: TimeSpan,
    limit: usize,
) -> Result<Page, HistoryError> {
    let start = first_at_or_after(store, room, up_to, span.from_ms)?.max(span.after + 1);
    let end = first_at_or_after(store, room, up_to, span.to_ms)?;
    if end <= start {
        return Ok(Page { entries: Vec::new(), next: None });
    }
    let (entries, next) = forward_page(store.range(room, start, end - 1, limit + 1)?, limit);
    Ok(Page { entries, next })
}

/// The first seq in `1..=up_to` stamped at or after `time_ms` (`up_to + 1`
/// if none): a binary search, since a room's stamps never decrease.
fn first_at_or_after(
    store: &dyn HistoryStore,
    room: &RoomId,
    up_to: u64,
    time_ms: u64,
) -> Result<u64, HistoryError> {
    let (mut low, mut high) = (1, up_to + 1);
    while low < high {
        let mid = low + (high - low) / 2;
        let stamped = store.entry(room, mid)?.map_or(u64::MAX, |e| e.time_ms);
        if stamped < time_ms {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    Ok(low)
}

fn member_rooms(state: &ImState, user: UserId) -> impl Iterator<Item = (&RoomId, &Room)> {
    state
        .memberships
        .get(&user)
        .into_iter()
        .flatten()
        .filter_map(move |id| state.rooms.get(id).map(|r| (id, r)))
}

fn inbox(
    state: &ImState,
    store: &dyn HistoryStore,
    user: UserId,
    after: Option<&(RoomId, u64)>,
    limit: usize,
) -> Result<InboxPage, HistoryError> {
    let mut items = Vec::new();
    for (id, room) in member_rooms(state, user) {
        if after.is_some_and(|(a, _)| id < a) {
            continue;
        }
        let cursor = room.read.get(&user).copied().unwrap_or(0);
        let resume = after.filter(|(a, _)| a == id).map_or(0, |(_, s)| *s);
        let from = cursor.max(resume) + 1;
        if from > room.last_seq {
            continue;
        }
        let room_left = limit - items.len();
        let entries = store.range(id, from, room.last_seq, room_left + 1)?;
        let more = entries.len() > room_left;
        items.extend(entries.into_iter().take(room_left).map(|e| (id.clone(), e)));
        let fit = entries_that_fit(items.iter().map(|(_, e)| e));
        if fit < items.len() {
            items.truncate(fit);
            let next = items.last().map(|(r, e): &(RoomId, RoomEntry)| (r.clone(), e.seq));
            return Ok(InboxPage { items, next });
        }
        if more || (items.len() == limit && has_more_after(state, user, id)) {
            let next = items.last().map(|(r, e): &(RoomId, RoomEntry)| (r.clone(), e.seq));
            return Ok(InboxPage { items, next });
        }
    }
    Ok(InboxPage { items, next: None })
}

/// Whether a room after `room` has unread entries for `user`.
fn has_more_after(state: &ImState, user: UserId, room: &RoomId) -> bool {
    member_rooms(state, user)
        .filter(|(id, _)| *id > room)
        .any(|(_, r)| r.read.get(&user).copied().unwrap_or(0) < r.last_seq)
}

fn is_unread_message(entry: &RoomEntry, user: UserId, hidden: &BTreeSet<UserId>) -> bool {
    matches!(&entry.kind, EntryKind::Message(m) if !m.deleted)
        && entry.author != user
        && !hidden.contains(&entry.author)
}

/// Unread messages per room, counting at most the
/// [`limits::UNREAD_SCAN_ENTRIES_MAX`] entries after the cursor.
fn unread(
    state: &ImState,
    store: &dyn HistoryStore,
    user: UserId,
    hidden: &BTreeSet<UserId>,
) -> Result<Vec<(RoomId, u64)>, HistoryError> {
    let mut counts = Vec::new();
    for (id, room) in member_rooms(state, user) {
        let cursor = room.read.get(&user).copied().unwrap_or(0);
        let last = room.last_seq.min(cursor.saturating_add(limits::UNREAD_SCAN_ENTRIES_MAX));
        let mut count = 0;
        let mut from = cursor + 1;
        while from <= last {
            let page = store.range(id, from, last, limits::PAGE_ENTRIES_MAX)?;
            let Some(end) = page.last().map(|e| e.seq) else { break };
            count += page.iter().filter(|e| is_unread_message(e, user, hidden)).count() as u64;
            from = end + 1;
        }
        counts.push((id.clone(), count));
    }
    Ok(counts)
}

/// `user`'s pending invitations, but those from users it blocks.
fn invites(state: &ImState, social: &Social, user: UserId) -> Vec<InviteInfo> {
    let name = |u: &UserId| state.users.get(u).map_or_else(String::new, |r| r.name.clone());
    social
        .invitations_of(user)
        .iter()
        .filter(|(_, by)| by.is_none_or(|by| !social.blocks(user, by)))
        .map(|(room, by)| InviteInfo {
            room: room.clone(),
            title: state.rooms.get(room).map_or_else(String::new, |r| r.title.clone()),
            inviter: *by,
            inviter_name: by.as_ref().map_or_else(String::new, name),
        })
        .collect()
}

fn summary(id: &RoomId, room: &Room, user: UserId) -> RoomSummary {
    RoomSummary {
        room: id.clone(),
        title: room.title.clone(),
        topic: room.topic.clone(),
        visibility: room.visibility,
        last_seq: room.last_seq,
        read_seq: room.read.get(&user).copied().unwrap_or(0),
        members: room.members.len() as u32,
    }
}
