//! Live subscriptions: a client follows rooms from a sequence cursor and
//! receives every entry from there on, in order, without gaps or
//! duplicates.
//!
//! The hub never forwards events blindly: whenever a followed room changes,
//! it *pulls* the entries after the subscriber's cursor from the applied
//! log (with the subscriber's visibility rules). A subscriber that started
//! from an old cursor is therefore backfilled, one that reconnects to
//! another replica resumes from its own cursor, and one that is removed
//! from a room stops exactly at the entry that removed it. Queues are
//! bounded: a slow subscriber's cursor simply stops advancing until it
//! drains, and is refilled from the log; nothing is dropped.

use crate::im::identity::UserId;
use crate::im::machine::ImMachine;
use crate::im::protocol::{
    ImError, ImEvent, ImQuery, Page, QueryKind, QueryReply, RoomEntry, RoomId,
};
use crate::limits;
use crate::state_machine::StateMachine;
use std::collections::{BTreeMap, VecDeque};

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

impl SubscriptionHub {
    /// Follows `rooms`, each from the cursor given (entries after it are
    /// delivered, starting with any already in the log).
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
            page_after(machine, user, room, *cursor, 1)
                .map_err(|error| SubscribeError::Room { room: room.to_string(), error })?;
            follows.insert(room.clone(), Follow { cursor: *cursor, ended: false });
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
            let (room, updated) = match event {
                ImEvent::Appended { room, .. } => (room, None),
                ImEvent::Updated { room, entry } => (room, Some(entry)),
                ImEvent::Read { .. } => continue,
            };
            let ids: Vec<SubscriptionId> = self
                .subscribers
                .iter()
                .filter(|(_, s)| s.rooms.contains_key(room))
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                if let Some(entry) = updated {
                    let s = self.subscribers.get_mut(&id).expect("listed");
                    let f = &s.rooms[room];
                    if entry.seq <= f.cursor
                        && !f.ended
                        && s.queue.len() < limits::SUBSCRIBER_QUEUE_MAX
                    {
                        s.queue.push_back(Delivery::Updated {
                            room: room.clone(),
                            entry: entry.clone(),
                        });
                    }
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

    /// Tops the queue up from the log, room by room.
    fn refill(&mut self, machine: &ImMachine, id: SubscriptionId) {
        let Some(s) = self.subscribers.get_mut(&id) else { return };
        let user = s.user;
        for (room, follow) in s.rooms.iter_mut().filter(|(_, f)| !f.ended) {
            let room_space = limits::SUBSCRIBER_QUEUE_MAX.saturating_sub(s.queue.len());
            if room_space == 0 {
                return;
            }
            let page = match page_after(
                machine,
                user,
                room,
                follow.cursor,
                room_space.min(limits::PAGE_ENTRIES_MAX),
            ) {
                Ok(page) => page,
                Err(_) => {
                    follow.ended = true;
                    s.queue
                        .push_back(Delivery::Ended { room: room.clone(), last_seq: follow.cursor });
                    continue;
                }
            };
            for entry in page.entries {
                follow.cursor = entry.seq;
                s.queue.push_back(Delivery::Entry { room: room.clone(), entry });
            }
            let readable = machine.readable_up_to(room, user);
            if page.next.is_none()
                && readable.is_some_and(|r| r == follow.cursor)
                && !machine.can_follow(room, user)
            {
                follow.ended = true;
                s.queue.push_back(Delivery::Ended { room: room.clone(), last_seq: follow.cursor });
            }
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
}
