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
//! Changes (edits, deletions, reactions) and read positions get the same
//! treatment: an event only marks *what* changed (an entry's seq, a user's
//! position) per subscriber, and the refill reads the current value when
//! the queue has room. A full queue therefore delays them but never loses
//! one; an entry changed twice before it is sent is sent once, as it is
//! now. Entries after the cursor need no marks: the log already holds them
//! changed. A subscription from a cursor is sent, first, the current state
//! of the changed entries among the [`RESUME_UPDATES_WINDOW`] entries up to
//! the cursor (a reconnecting client may have missed those changes; seeing
//! one twice is harmless, as each carries the whole entry) and every
//! member's read position.

use crate::im::identity::UserId;
use crate::im::machine::ImMachine;
use crate::im::protocol::{
    EntryKind, ImError, ImEvent, ImQuery, Page, QueryKind, QueryReply, RoomEntry, RoomId,
};
use crate::limits;
use crate::state_machine::StateMachine;
use crate::wire::client_protocol::LiveFrame;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How many entries up to a new subscription's cursor are checked for
/// changes to send again. Older changes are not re-sent: a client that
/// wants them subscribes from an older cursor (backfilled entries are sent
/// as they are now).
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
        /// The entry as it is now.
        entry: RoomEntry,
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
    /// Entries at or below `cursor` that changed and are still to be sent
    /// as they are now.
    changed: BTreeSet<u64>,
    /// Read positions still to be sent: the latest per user.
    reads: BTreeMap<UserId, u64>,
}

#[derive(Debug)]
struct Subscriber {
    user: UserId,
    rooms: BTreeMap<RoomId, Follow>,
    queue: VecDeque<Delivery>,
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

/// Whether an entry differs from how it was appended.
fn was_changed(entry: &RoomEntry) -> bool {
    matches!(&entry.kind, EntryKind::Message(m) if m.edits > 0 || m.deleted || !m.reactions.is_empty())
}

impl SubscriptionHub {
    /// Follows `rooms`, each from the cursor given (entries after it are
    /// delivered, starting with any already in the log; before them, the
    /// recent changes to entries up to the cursor and the read positions).
    pub fn subscribe(
        &mut self,
        machine: &ImMachine,
        user: UserId,
        rooms: &[(RoomId, u64)],
    ) -> Result<SubscriptionId, SubscribeError> {
        if rooms.len() > limits::SUBSCRIPTION_ROOMS_MAX
            || self.subscribers.len() >= limits::SUBSCRIPTIONS_MAX
        {
            return Err(SubscribeError::Limit);
        }
        let mut follows = BTreeMap::new();
        for (room, cursor) in rooms {
            let refused = |error| SubscribeError::Room { room: room.to_string(), error };
            page_after(machine, user, room, *cursor, 1).map_err(refused)?;
            let window = RESUME_UPDATES_WINDOW.min(*cursor);
            let seen = page_after(machine, user, room, cursor - window, window as usize)
                .map_err(refused)?;
            let changed = seen
                .entries
                .iter()
                .filter(|e| e.seq <= *cursor && was_changed(e))
                .map(|e| e.seq)
                .collect();
            let reads = machine.read_positions(room).into_iter().filter(|(_, s)| *s > 0).collect();
            follows.insert(room.clone(), Follow { cursor: *cursor, ended: false, changed, reads });
        }
        self.next_id += 1;
        let id = SubscriptionId(self.next_id);
        self.subscribers.insert(id, Subscriber { user, rooms: follows, queue: VecDeque::new() });
        self.refill(machine, id);
        Ok(id)
    }

    /// Stops a subscription.
    pub fn unsubscribe(&mut self, id: SubscriptionId) {
        self.subscribers.remove(&id);
    }

    /// Reacts to applied changes (from `Output::Applied` responses).
    pub fn on_events(&mut self, machine: &ImMachine, events: &[ImEvent]) {
        for event in events {
            let room = match event {
                ImEvent::Appended { room, .. }
                | ImEvent::Updated { room, .. }
                | ImEvent::Read { room, .. } => room,
            };
            let ids: Vec<SubscriptionId> = self
                .subscribers
                .iter()
                .filter(|(_, s)| s.rooms.contains_key(room))
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                let s = self.subscribers.get_mut(&id).expect("listed");
                let f = s.rooms.get_mut(room).expect("followed");
                match event {
                    // Only marks: the refill reads the current value.
                    ImEvent::Updated { entry, .. } if entry.seq <= f.cursor && !f.ended => {
                        f.changed.insert(entry.seq);
                    }
                    ImEvent::Read { user, seq, .. } if !f.ended => {
                        let latest = f.reads.entry(*user).or_default();
                        *latest = (*latest).max(*seq);
                    }
                    _ => {}
                }
                self.refill(machine, id);
            }
        }
    }

    /// The next delivery for `id`; refills from the log as the queue drains.
    pub fn poll(&mut self, machine: &ImMachine, id: SubscriptionId) -> Option<Delivery> {
        let s = self.subscribers.get_mut(&id)?;
        let next = s.queue.pop_front();
        if s.queue.len() < limits::SUBSCRIBER_QUEUE_MAX / 2 {
            self.refill(machine, id);
        }
        next.or_else(|| self.subscribers.get_mut(&id)?.queue.pop_front())
    }

    /// Tops the queue up from the log, room by room: changes to entries
    /// already sent, then new entries, then read positions up to them.
    fn refill(&mut self, machine: &ImMachine, id: SubscriptionId) {
        let Some(s) = self.subscribers.get_mut(&id) else { return };
        let user = s.user;
        let queue = &mut s.queue;
        let space =
            |queue: &VecDeque<Delivery>| limits::SUBSCRIBER_QUEUE_MAX.saturating_sub(queue.len());
        for (room, follow) in s.rooms.iter_mut().filter(|(_, f)| !f.ended) {
            if space(queue) == 0 {
                return;
            }
            let end = |follow: &mut Follow, queue: &mut VecDeque<Delivery>| {
                follow.ended = true;
                follow.changed.clear();
                follow.reads.clear();
                queue.push_back(Delivery::Ended { room: room.clone(), last_seq: follow.cursor });
            };
            while space(queue) > 0 {
                let Some(seq) = follow.changed.pop_first() else { break };
                match page_after(machine, user, room, seq - 1, 1) {
                    Ok(page) => {
                        let now = page.entries.into_iter().find(|e| e.seq == seq);
                        if let Some(entry) = now {
                            queue.push_back(Delivery::Updated { room: room.clone(), entry });
                        }
                    }
                    Err(_) => break,
                }
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
            Delivery::Updated { room, entry } => LiveFrame::Updated { room, entry },
            Delivery::Ended { room, last_seq } => LiveFrame::Ended { room, last_seq },
            Delivery::Read { room, user, seq } => LiveFrame::Read { room, user, seq },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{LogIndex, Term};
    use crate::im::identity::Identity;
    use crate::im::protocol::{
        CommandBody, Operation, SignedCommand, Target, Visibility, IM_PROTOCOL_VERSION,
    };
    use crate::state_machine::ApplyContext;
    use uuid::Uuid;

    struct Fx {
        m: ImMachine,
        hub: SubscriptionHub,
        n: u64,
    }

    impl Fx {
        fn run(&mut self, who: &Identity, op: Operation) {
            self.n += 1;
            let body = CommandBody {
                version: IM_PROTOCOL_VERSION,
                command_id: Uuid::from_u128(self.n.into()),
                issued_at_ms: 1000,
                op,
            };
            let at = ApplyContext {
                index: LogIndex(self.n),
                term: Term(1),
                position: 0,
                stamp_ms: 1000,
            };
            let r = self.m.apply(at, SignedCommand::sign(who, &body));
            assert!(r.result.is_ok(), "{:?}", r.result);
            self.hub.on_events(&self.m, &r.events);
        }

        fn drain(&mut self, id: SubscriptionId) -> Vec<Delivery> {
            std::iter::from_fn(|| self.hub.poll(&self.m, id)).collect()
        }
    }

    fn seqs(ds: &[Delivery]) -> Vec<u64> {
        ds.iter()
            .filter_map(|d| match d {
                Delivery::Entry { entry, .. } => Some(entry.seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn backfills_follows_live_and_stops_at_removal() {
        let (ann, bob) = (Identity::from_secret([1; 32]), Identity::from_secret([2; 32]));
        let mut fx = Fx { m: ImMachine::default(), hub: SubscriptionHub::default(), n: 0 };
        fx.run(&ann, Operation::Register { name: "ann".into() });
        fx.run(&bob, Operation::Register { name: "bob".into() });
        fx.run(&ann, Operation::CreateRoom { name: "r".into(), visibility: Visibility::Private });
        let room = RoomId::Group("r".into());
        fx.run(&ann, Operation::Invite { room: room.clone(), user: bob.user() });
        fx.run(&bob, Operation::Join { room: room.clone() });
        let send =
            |text: &str| Operation::Send { to: Target::Room(room.clone()), text: text.into() };
        fx.run(&ann, send("one"));
        // Bob subscribes from an old cursor: entries 2.. come first.
        let id = fx.hub.subscribe(&fx.m, bob.user(), &[(room.clone(), 1)]).unwrap();
        assert_eq!(seqs(&fx.drain(id)), vec![2, 3, 4]);
        fx.run(&ann, send("two"));
        fx.run(&ann, send("three"));
        assert_eq!(seqs(&fx.drain(id)), vec![5, 6]);
        assert!(fx.drain(id).is_empty(), "nothing twice");
        fx.run(&ann, Operation::Kick { room: room.clone(), user: bob.user() });
        fx.run(&ann, send("after"));
        let after_kick = fx.drain(id);
        assert_eq!(seqs(&after_kick), vec![7]);
        assert_eq!(after_kick.last(), Some(&Delivery::Ended { room: room.clone(), last_seq: 7 }));
        fx.run(&ann, send("later"));
        assert!(fx.drain(id).is_empty());
        let outsider = Identity::from_secret([3; 32]).user();
        assert!(fx.hub.subscribe(&fx.m, outsider, &[(room, 0)]).is_err());
    }

    fn updated(ds: &[Delivery]) -> Vec<(u64, RoomEntry)> {
        ds.iter()
            .filter_map(|d| match d {
                Delivery::Updated { entry, .. } => Some((entry.seq, entry.clone())),
                _ => None,
            })
            .collect()
    }

    fn text(entry: &RoomEntry) -> &str {
        match &entry.kind {
            EntryKind::Message(m) => &m.text,
            other => panic!("not a message: {other:?}"),
        }
    }

    /// A public room "r" by ann with `messages` messages (seqs 2..).
    fn room_with(messages: u64) -> (Fx, Identity, Identity, RoomId) {
        let (ann, bob) = (Identity::from_secret([1; 32]), Identity::from_secret([2; 32]));
        let mut fx = Fx { m: ImMachine::default(), hub: SubscriptionHub::default(), n: 0 };
        fx.run(&ann, Operation::Register { name: "ann".into() });
        fx.run(&bob, Operation::Register { name: "bob".into() });
        fx.run(&ann, Operation::CreateRoom { name: "r".into(), visibility: Visibility::Public });
        let room = RoomId::Group("r".into());
        for i in 0..messages {
            let to = Target::Room(room.clone());
            fx.run(&ann, Operation::Send { to, text: format!("m{i}") });
        }
        (fx, ann, bob, room)
    }

    fn edit(room: &RoomId, seq: u64, text: &str) -> Operation {
        Operation::Edit { room: room.clone(), seq, text: text.into() }
    }

    #[test]
    fn changes_survive_a_full_queue_and_come_after_their_entries() {
        let total = limits::SUBSCRIBER_QUEUE_MAX as u64 + 10;
        let (mut fx, ann, _, room) = room_with(total);
        let id = fx.hub.subscribe(&fx.m, ann.user(), &[(room.clone(), 0)]).unwrap();
        // A reader that does not poll: its queue fills from the log, a page
        // per refill, and then these changes once went nowhere.
        while fx.hub.subscribers[&id].queue.len() < limits::SUBSCRIBER_QUEUE_MAX {
            fx.hub.refill(&fx.m, id);
        }
        fx.run(&ann, edit(&room, 2, "first edit"));
        let reaction = "+1".to_string();
        fx.run(&ann, Operation::React { room: room.clone(), seq: 3, reaction, add: true });
        fx.run(&ann, Operation::Delete { room: room.clone(), seq: 4 });
        fx.run(&ann, edit(&room, 2, "second edit"));
        // Not sent yet: arrives changed, as an entry.
        fx.run(&ann, edit(&room, total + 1, "edited early"));
        let all = fx.drain(id);
        assert_eq!(seqs(&all), (1..=total + 1).collect::<Vec<_>>(), "every entry, in order");
        let changes = updated(&all);
        assert_eq!(changes.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(text(&changes[0].1), "second edit", "as it is now");
        let EntryKind::Message(reacted) = &changes[1].1.kind else { panic!() };
        assert!(reacted.reactions.contains_key("+1"));
        let EntryKind::Message(deleted) = &changes[2].1.kind else { panic!() };
        assert!(deleted.deleted);
        for (seq, _) in &changes {
            let entry_at = all
                .iter()
                .position(|d| matches!(d, Delivery::Entry { entry, .. } if entry.seq == *seq));
            let update_at = all
                .iter()
                .position(|d| matches!(d, Delivery::Updated { entry, .. } if entry.seq == *seq));
            assert!(entry_at < update_at, "seq {seq}: the entry, then its change");
        }
        let last = all.iter().rev().find_map(|d| match d {
            Delivery::Entry { entry, .. } => Some(entry),
            _ => None,
        });
        assert_eq!(last.map(text), Some("edited early"));
        // Live changes after the drain still arrive, once each.
        fx.run(&ann, edit(&room, 5, "live"));
        let live = updated(&fx.drain(id));
        assert_eq!(live.iter().map(|(s, e)| (*s, text(e))).collect::<Vec<_>>(), vec![(5, "live")]);
        assert!(fx.drain(id).is_empty());
    }

    #[test]
    fn a_resubscription_gets_changes_made_while_it_was_away() {
        let (mut fx, ann, bob, room) = room_with(5);
        let id = fx.hub.subscribe(&fx.m, bob.user(), &[(room.clone(), 0)]).unwrap();
        let first = fx.drain(id);
        let cursor = *seqs(&first).last().unwrap();
        fx.hub.unsubscribe(id);
        fx.run(&ann, edit(&room, 3, "while away"));
        fx.run(&ann, Operation::Delete { room: room.clone(), seq: 4 });
        let id = fx.hub.subscribe(&fx.m, bob.user(), &[(room.clone(), cursor)]).unwrap();
        let again = fx.drain(id);
        assert!(seqs(&again).is_empty(), "no entry twice");
        let changes = updated(&again);
        assert_eq!(changes.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(text(&changes[0].1), "while away");
    }

    #[test]
    fn read_positions_reach_subscribers() {
        let (mut fx, ann, bob, room) = room_with(3);
        fx.run(&bob, Operation::Join { room: room.clone() });
        fx.run(&bob, Operation::MarkRead { room: room.clone(), seq: 3 });
        let reads = |ds: &[Delivery]| -> Vec<(UserId, u64)> {
            ds.iter()
                .filter_map(|d| match d {
                    Delivery::Read { user, seq, .. } => Some((*user, *seq)),
                    _ => None,
                })
                .collect()
        };
        // A new subscription learns the positions there are (ann's own
        // messages moved hers to 4)...
        let id = fx.hub.subscribe(&fx.m, ann.user(), &[(room.clone(), 0)]).unwrap();
        let first = fx.drain(id);
        let mut expected = vec![(ann.user(), 4), (bob.user(), 3)];
        expected.sort();
        assert_eq!(reads(&first), expected);
        let read_at = first.iter().position(|d| matches!(d, Delivery::Read { .. }));
        let entry_at =
            first.iter().position(|d| matches!(d, Delivery::Entry { entry, .. } if entry.seq == 5));
        assert!(entry_at < read_at, "positions come after the entries they name");
        // ...and then every move, live: marks, and sending a message.
        fx.run(&bob, Operation::MarkRead { room: room.clone(), seq: 5 });
        let to = Target::Room(room.clone());
        fx.run(&bob, Operation::Send { to, text: "hi".into() });
        assert_eq!(reads(&fx.drain(id)), vec![(bob.user(), 5), (bob.user(), 6)]);
    }
}
