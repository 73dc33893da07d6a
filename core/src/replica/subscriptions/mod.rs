//! Live subscriptions: a client follows rooms from a sequence cursor and
//! receives every entry from there on, in order, without gaps or
//! duplicates, then every change to those entries and every member's read
//! position.
//!
//! The hub never forwards events blindly: whenever a followed room changes,
//! it *pulls* the entries after the subscriber's cursor from the applied
//! log (with the subscriber's visibility rules). A subscriber that started
//! from an old cursor is therefore backfilled, one that reconnects to
//! another replica resumes from its own cursor, and one that is removed
//! from a room stops exactly at the entry that removed it. Queues are
//! bounded: a slow subscriber's cursor simply stops advancing until it
//! drains, and is refilled from the log; nothing is dropped.
//!
//! Changes (edits, deletions, reactions) are pulled the same way, from each
//! room's change records (numbered in log order, kept in the history
//! store): a subscription holds a change cursor beside its sequence cursor
//! and is sent, in change order, every later change to an entry up to its
//! sequence cursor, as the entry is now. A change to an entry not yet sent
//! needs nothing: the entry will be sent as it is then. So the rule a
//! subscription keeps is: *every entry sent reflects every change up to the
//! change cursor*. A version 2 subscription names its change cursor and
//! gets the numbers back (`Changed`, and `ChangesSeen` when the cursor moved
//! past changes it did not need); resuming from them misses nothing, across
//! reconnects and replicas. A version 1 subscription (no change cursor)
//! starts from the changes applied when it subscribes, and is first sent
//! the changed entries among the [`RESUME_UPDATES_WINDOW`] entries up to its
//! cursor, as before change numbers existed.
//!
//! Read positions are marks: the latest per user, sent once the entries
//! they name have been sent.

use crate::im::identity::UserId;
use crate::im::machine::ImMachine;
use crate::im::protocol::{
    EntryKind, ImError, ImEvent, ImQuery, Page, QueryKind, QueryReply, RoomEntry, RoomId,
};
use crate::limits;
use crate::state_machine::StateMachine;
use crate::wire::client_protocol::{LiveFrame, RoomFrom};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

mod changes;

use changes::{send_changes, send_marked, space};

/// How many entries up to a new version 1 subscription's cursor are
/// checked for changes to send again. Older changes are not re-sent to it
/// (version 2 subscriptions resume every change from their change cursor).
pub const RESUME_UPDATES_WINDOW: u64 = 128;

/// Names one subscription on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(pub u64);

/// One thing delivered to a subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The next entry of a room (sequence numbers without gaps).
    Entry {
        /// The room.
        room: RoomId,
        /// The entry.
        entry: RoomEntry,
    },
    /// An already-delivered entry changed (edit, delete, reaction).
    Updated {
        /// The room.
        room: RoomId,
        /// The change's number (version 2 subscriptions only).
        change: Option<u64>,
        /// The entry as it is now.
        entry: RoomEntry,
    },
    /// Every entry delivered reflects every change up to `change` (version
    /// 2 subscriptions, when the change cursor moved past changes to
    /// entries not delivered yet).
    ChangesSeen {
        /// The room.
        room: RoomId,
        /// The change number.
        change: u64,
    },
    /// The subscriber may no longer read the room; nothing more will come.
    Ended {
        /// The room.
        room: RoomId,
        /// The last entry they may read.
        last_seq: u64,
    },
    /// A user's read cursor in the room; `seq` is never beyond an entry
    /// already delivered.
    Read {
        /// The room.
        room: RoomId,
        /// Whose cursor.
        user: UserId,
        /// They have read up to and including this entry.
        seq: u64,
    },
}

/// Why a subscription was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscribeError {
    /// Too many rooms in one subscription, or too many subscriptions.
    #[error("subscription limit reached")]
    Limit,
    /// A room cannot be read by this user.
    #[error("cannot follow {room}: {error}")]
    Room {
        /// The room.
        room: String,
        /// Why.
        error: ImError,
    },
}

#[derive(Debug)]
struct Follow {
    /// Last sequence number delivered (or the starting cursor).
    cursor: u64,
    ended: bool,
    /// Every entry delivered reflects every change numbered up to this.
    change_cursor: u64,
    /// The change number the subscriber last heard (or sent), for a
    /// version 2 subscription.
    told: Option<u64>,
    /// Version 1 only: entries at or below `cursor` that changed before it
    /// subscribed, still to be sent as they are now.
    changed: BTreeSet<u64>,
    /// Read positions still to be sent: the latest per user.
    reads: BTreeMap<UserId, u64>,
}

#[derive(Debug)]
struct Subscriber {
    user: UserId,
    rooms: BTreeMap<RoomId, Follow>,
    queue: VecDeque<Delivery>,
    /// The log may hold something it has not been sent: the last refill
    /// stopped short, or something happened that no event reports (a
    /// snapshot). Polling a subscription that is not dirty reads nothing.
    dirty: bool,
}

/// Every live subscription of one node.
#[derive(Debug, Default)]
pub struct SubscriptionHub {
    next_id: u64,
    subscribers: BTreeMap<SubscriptionId, Subscriber>,
}

fn page_after(
    machine: &ImMachine,
    user: UserId,
    room: &RoomId,
    after: u64,
    limit: usize,
) -> Result<Page, ImError> {
    let kind = QueryKind::History {
        room: room.clone(),
        after: Some(after),
        before: None,
        limit: limit as u32,
    };
    match machine.query(&ImQuery { as_user: user, kind })? {
        QueryReply::Page(page) => Ok(page),
        _ => unreachable!("history answers with a page"),
    }
}

/// The entries among the [`RESUME_UPDATES_WINDOW`] up to `cursor` that
/// differ from how they were appended (for version 1 subscriptions).
fn recently_changed(
    machine: &ImMachine,
    user: UserId,
    room: &RoomId,
    cursor: u64,
) -> Result<BTreeSet<u64>, ImError> {
    let window = RESUME_UPDATES_WINDOW.min(cursor);
    let seen = page_after(machine, user, room, cursor - window, window as usize)?;
    Ok(seen.entries.iter().filter(|e| e.seq <= cursor && was_changed(e)).map(|e| e.seq).collect())
}

/// Whether an entry differs from how it was appended.
fn was_changed(entry: &RoomEntry) -> bool {
    matches!(&entry.kind, EntryKind::Message(m) if m.edits > 0 || m.deleted || !m.reactions.is_empty())
}

impl SubscriptionHub {
    /// Follows `rooms`, each from the cursors given (entries after the
    /// sequence cursor are delivered, starting with any already in the log;
    /// changes after the change cursor to entries up to it come first,
    /// then read positions).
    pub fn subscribe(
        &mut self,
        machine: &ImMachine,
        user: UserId,
        rooms: &[RoomFrom],
    ) -> Result<SubscriptionId, SubscribeError> {
        if rooms.len() > limits::SUBSCRIPTION_ROOMS_MAX
            || self.subscribers.len() >= limits::SUBSCRIPTIONS_MAX
        {
            return Err(SubscribeError::Limit);
        }
        let mut follows = BTreeMap::new();
        for from in rooms {
            let (room, cursor) = (&from.room, from.after_seq);
            let refused = |error| SubscribeError::Room { room: room.to_string(), error };
            page_after(machine, user, room, cursor, 1).map_err(refused)?;
            let latest = machine
                .latest_change(room)
                .map_err(|e| refused(ImError::Unavailable(e.to_string())))?;
            let (change_cursor, changed) = match from.after_change {
                // Nothing delivered yet: any change cursor holds, so the
                // room's past changes are skipped. A cursor beyond this
                // replica's latest change (it lags the replica the client
                // heard from, or the client asks for changes from now on)
                // starts at its latest: changes it has yet to apply come
                // again, which is harmless.
                Some(after) => {
                    let skip_past =
                        cursor == 0 || crate::config::bug_on!(machine, ignore_change_cursor);
                    (if skip_past { latest } else { after.min(latest) }, BTreeSet::new())
                }
                None => (latest, recently_changed(machine, user, room, cursor).map_err(refused)?),
            };
            // Where the cursor was moved, `ChangesSeen` tells the client.
            let told = from.after_change;
            let reads = machine
                .read_positions(room)
                .into_iter()
                .filter(|(reader, s)| *s > 0 && machine.shows_reads(*reader, user))
                .collect();
            let follow = Follow { cursor, ended: false, change_cursor, told, changed, reads };
            follows.insert(room.clone(), follow);
        }
        self.next_id += 1;
        let id = SubscriptionId(self.next_id);
        let subscriber = Subscriber { user, rooms: follows, queue: VecDeque::new(), dirty: true };
        self.subscribers.insert(id, subscriber);
        self.refill(machine, id);
        Ok(id)
    }

    /// Marks every subscription as possibly behind the log: call when the
    /// state changed without events (a snapshot was installed).
    pub fn touch_all(&mut self) {
        for s in self.subscribers.values_mut() {
            s.dirty = true;
        }
    }

    /// Stops a subscription.
    pub fn unsubscribe(&mut self, id: SubscriptionId) {
        self.subscribers.remove(&id);
    }

    /// Reacts to applied changes (from `Output::Applied` responses).
    pub fn on_events(&mut self, machine: &ImMachine, events: &[ImEvent]) {
        // The events are of entries already applied, so one refill per
        // subscriber after noting every read mark reads what a refill per
        // event would: the first would take every new entry and the rest
        // would read empty pages (with one subscription per member of a
        // busy room, that was most of the hub's work).
        let mut touched = BTreeSet::new();
        for event in events {
            let room = match event {
                ImEvent::Appended { room, .. }
                | ImEvent::Updated { room, .. }
                | ImEvent::Read { room, .. } => room,
                // Not a room's change: for the replica's blob store.
                ImEvent::FileReleased { .. } | ImEvent::FileHeld { .. } => continue,
            };
            for (id, s) in self.subscribers.iter_mut() {
                let Some(f) = s.rooms.get_mut(room) else { continue };
                // Changes need no marks: the refill compares the room's
                // latest change with the cursor (snapshots bring changes
                // without events).
                match event {
                    ImEvent::Read { user, seq, .. }
                        if !f.ended && machine.shows_reads(*user, s.user) =>
                    {
                        let latest = f.reads.entry(*user).or_default();
                        *latest = (*latest).max(*seq);
                    }
                    _ => {}
                }
                touched.insert(*id);
            }
        }
        for id in touched {
            self.refill(machine, id);
        }
    }

    /// The next delivery for `id`; refills from the log as the queue drains.
    pub fn poll(&mut self, machine: &ImMachine, id: SubscriptionId) -> Option<Delivery> {
        let s = self.subscribers.get_mut(&id)?;
        let next = s.queue.pop_front();
        if s.dirty && s.queue.len() < limits::SUBSCRIBER_QUEUE_MAX / 2 {
            self.refill(machine, id);
        }
        next.or_else(|| self.subscribers.get_mut(&id)?.queue.pop_front())
    }

    /// Tops the queue up from the log, room by room: changes to entries
    /// already sent, then new entries, then read positions up to them.
    fn refill(&mut self, machine: &ImMachine, id: SubscriptionId) {
        let Some(s) = self.subscribers.get_mut(&id) else { return };
        let user = s.user;
        let (queue, dirty) = (&mut s.queue, &mut s.dirty);
        *dirty = false;
        for (room, follow) in s.rooms.iter_mut().filter(|(_, f)| !f.ended) {
            if space(queue) == 0 {
                *dirty = true;
                return;
            }
            let end = |follow: &mut Follow, queue: &mut VecDeque<Delivery>| {
                follow.ended = true;
                follow.changed.clear();
                follow.reads.clear();
                queue.push_back(Delivery::Ended { room: room.clone(), last_seq: follow.cursor });
            };
            send_marked(machine, user, room, follow, queue);
            let changes_sent = send_changes(machine, user, room, follow, queue);
            if !changes_sent || !follow.changed.is_empty() || space(queue) == 0 {
                *dirty = true;
            }
            if space(queue) == 0 {
                return;
            }
            let page = match page_after(
                machine,
                user,
                room,
                follow.cursor,
                space(queue).min(limits::PAGE_ENTRIES_MAX),
            ) {
                Ok(page) => page,
                Err(_) => {
                    end(follow, queue);
                    continue;
                }
            };
            for entry in page.entries {
                follow.cursor = entry.seq;
                if crate::config::bug_on!(machine, skip_live_entry) && entry.seq % 16 == 0 {
                    continue;
                }
                queue.push_back(Delivery::Entry { room: room.clone(), entry });
            }
            let due: Vec<UserId> = follow
                .reads
                .iter()
                .filter(|(_, seq)| **seq <= follow.cursor)
                .map(|(u, _)| *u)
                .take(space(queue))
                .collect();
            for reader in due {
                if let Some(seq) = follow.reads.remove(&reader) {
                    queue.push_back(Delivery::Read { room: room.clone(), user: reader, seq });
                }
            }
            if page.next.is_some() || follow.reads.values().any(|seq| *seq <= follow.cursor) {
                *dirty = true;
            }
            let readable = machine.readable_up_to(room, user);
            if page.next.is_none()
                && readable.is_some_and(|r| r == follow.cursor)
                && !machine.can_follow(room, user)
            {
                end(follow, queue);
            }
        }
    }
}

impl From<Delivery> for LiveFrame {
    fn from(d: Delivery) -> LiveFrame {
        match d {
            Delivery::Entry { room, entry } => LiveFrame::Entry { room, entry },
            Delivery::Updated { room, change: None, entry } => LiveFrame::Updated { room, entry },
            Delivery::Updated { room, change: Some(change), entry } => {
                LiveFrame::Changed { room, change, entry }
            }
            Delivery::ChangesSeen { room, change } => LiveFrame::ChangesSeen { room, change },
            Delivery::Ended { room, last_seq } => LiveFrame::Ended { room, last_seq },
            Delivery::Read { room, user, seq } => LiveFrame::Read { room, user, seq },
        }
    }
}

#[cfg(test)]
mod tests;
