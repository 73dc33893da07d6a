//! The subscription hub's tests: entries, changes (both versions) and
//! read positions, as a subscriber sees them.

use super::changes::CHANGE_PAGE;
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
        let at =
            ApplyContext { index: LogIndex(self.n), term: Term(1), position: 0, stamp_ms: 1000 };
        let r = self.m.apply(at, SignedCommand::sign(who, &body));
        assert!(r.result.is_ok(), "{:?}", r.result);
        self.hub.on_events(&self.m, &r.events);
    }

    fn drain(&mut self, id: SubscriptionId) -> Vec<Delivery> {
        std::iter::from_fn(|| self.hub.poll(&self.m, id)).collect()
    }
}

/// A version 1 follow (no change cursor).
fn v1(room: &RoomId, after_seq: u64) -> RoomFrom {
    RoomFrom { room: room.clone(), after_seq, after_change: None }
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
    let send = |text: &str| Operation::Send { to: Target::Room(room.clone()), text: text.into() };
    fx.run(&ann, send("one"));
    // Bob subscribes from an old cursor: entries 2.. come first.
    let id = fx.hub.subscribe(&fx.m, bob.user(), &[v1(&room, 1)]).unwrap();
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
    assert!(fx.hub.subscribe(&fx.m, outsider, &[v1(&room, 0)]).is_err());
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
    let id = fx.hub.subscribe(&fx.m, ann.user(), &[v1(&room, 0)]).unwrap();
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
    // In change order, each entry once, at its last change.
    let changes = updated(&all);
    assert_eq!(changes.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![3, 4, 2]);
    assert_eq!(text(&changes[2].1), "second edit", "as it is now");
    let EntryKind::Message(reacted) = &changes[0].1.kind else { panic!() };
    assert!(reacted.reactions.contains_key("+1"));
    let EntryKind::Message(deleted) = &changes[1].1.kind else { panic!() };
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
    let id = fx.hub.subscribe(&fx.m, bob.user(), &[v1(&room, 0)]).unwrap();
    let first = fx.drain(id);
    let cursor = *seqs(&first).last().unwrap();
    fx.hub.unsubscribe(id);
    fx.run(&ann, edit(&room, 3, "while away"));
    fx.run(&ann, Operation::Delete { room: room.clone(), seq: 4 });
    let id = fx.hub.subscribe(&fx.m, bob.user(), &[v1(&room, cursor)]).unwrap();
    let again = fx.drain(id);
    assert!(seqs(&again).is_empty(), "no entry twice");
    let changes = updated(&again);
    assert_eq!(changes.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(text(&changes[0].1), "while away");
}

/// `(seq, change)` of each numbered change, and the last `ChangesSeen`.
fn numbered(ds: &[Delivery]) -> (Vec<(u64, u64)>, Option<u64>) {
    let changed = ds
        .iter()
        .filter_map(|d| match d {
            Delivery::Updated { entry, change: Some(c), .. } => Some((entry.seq, *c)),
            Delivery::Updated { change: None, .. } => panic!("a version 2 change unnumbered"),
            _ => None,
        })
        .collect();
    let seen = ds.iter().rev().find_map(|d| match d {
        Delivery::ChangesSeen { change, .. } => Some(*change),
        _ => None,
    });
    (changed, seen)
}

/// The change cursor a version 2 client keeps: the last number heard.
fn resume_at(ds: &[Delivery], before: u64) -> u64 {
    ds.iter().fold(before, |at, d| match d {
        Delivery::Updated { change: Some(c), .. } | Delivery::ChangesSeen { change: c, .. } => {
            assert!(*c > at, "change numbers increase along the stream");
            *c
        }
        _ => at,
    })
}

#[test]
fn a_change_cursor_resumes_every_change_however_old() {
    let window = RESUME_UPDATES_WINDOW;
    let (mut fx, ann, bob, room) = room_with(window * 3);
    let v2 = |seq, change| RoomFrom::new(room.clone(), seq, change);
    fx.run(&ann, edit(&room, 2, "before anyone followed"));
    // A new subscriber skips the room's past changes and is told so.
    let id = fx.hub.subscribe(&fx.m, bob.user(), &[v2(0, 0)]).unwrap();
    let first = fx.drain(id);
    let (changed, seen) = numbered(&first);
    assert!(changed.is_empty(), "entries already carry their changes: {changed:?}");
    assert_eq!(seen, Some(fx.m.latest_change(&room).unwrap()));
    let (cursor, change) = (*seqs(&first).last().unwrap(), resume_at(&first, 0));
    fx.hub.unsubscribe(id);
    // Away: changes far older than any window, one of them twice, and
    // one to an entry the subscriber has not received.
    fx.run(&ann, edit(&room, 3, "old"));
    fx.run(&ann, Operation::Delete { room: room.clone(), seq: cursor - 1 });
    fx.run(&ann, edit(&room, 3, "older still"));
    let to = Target::Room(room.clone());
    fx.run(&ann, Operation::Send { to, text: "new".into() });
    fx.run(&ann, edit(&room, cursor + 1, "new, edited"));
    let id = fx.hub.subscribe(&fx.m, bob.user(), &[v2(cursor, change)]).unwrap();
    let again = fx.drain(id);
    assert_eq!(seqs(&again), vec![cursor + 1], "the new entry, once");
    let (changed, _) = numbered(&again);
    assert_eq!(changed.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![cursor - 1, 3]);
    let three = updated(&again).into_iter().find(|(s, _)| *s == 3).unwrap().1;
    assert_eq!(text(&three), "older still");
    let fresh = again.iter().find_map(|d| match d {
        Delivery::Entry { entry, .. } => Some(entry.clone()),
        _ => None,
    });
    assert_eq!(fresh.as_ref().map(text), Some("new, edited"), "sent as it is now");
    // Resuming from where that left off gets nothing twice.
    let change = resume_at(&again, change);
    fx.hub.unsubscribe(id);
    let id = fx.hub.subscribe(&fx.m, bob.user(), &[v2(cursor + 1, change)]).unwrap();
    let third = fx.drain(id);
    assert!(seqs(&third).is_empty() && updated(&third).is_empty(), "{third:?}");
    // And a live change arrives numbered after it.
    fx.run(&ann, edit(&room, 4, "live"));
    let (changed, _) = numbered(&fx.drain(id));
    assert_eq!(changed.len(), 1);
    assert!(changed[0].1 > change);
}

#[test]
fn a_change_scan_is_bounded_and_catches_up_over_refills() {
    let scan = limits::SUBSCRIPTION_CHANGE_SCAN_MAX as u64;
    let (mut fx, ann, bob, room) = room_with(3);
    let id = fx.hub.subscribe(&fx.m, bob.user(), &[RoomFrom::new(room.clone(), 0, 0)]).unwrap();
    let first = fx.drain(id);
    let (cursor, change) = (*seqs(&first).last().unwrap(), resume_at(&first, 0));
    fx.hub.unsubscribe(id);
    // More reactions than one scan reads, on one entry, then one edit
    // of another.
    for i in 0..scan + 10 {
        let add = i % 2 == 0;
        fx.run(&ann, Operation::React { room: room.clone(), seq: 2, reaction: "+1".into(), add });
    }
    fx.run(&ann, edit(&room, 3, "last"));
    let id = fx
        .hub
        .subscribe(&fx.m, bob.user(), &[RoomFrom::new(room.clone(), cursor, change)])
        .unwrap();
    let again = fx.drain(id);
    let (changed, _) = numbered(&again);
    let entries: BTreeSet<u64> = changed.iter().map(|(s, _)| *s).collect();
    assert_eq!(entries, BTreeSet::from([2, 3]));
    let pages = (scan as usize + 11).div_ceil(CHANGE_PAGE);
    assert!(changed.len() <= pages + 1, "a page sends an entry once: {}", changed.len());
    assert_eq!(resume_at(&again, change), fx.m.latest_change(&room).unwrap());
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
    let id = fx.hub.subscribe(&fx.m, ann.user(), &[v1(&room, 0)]).unwrap();
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

#[test]
fn a_change_cursor_from_now_or_from_a_replica_ahead_is_set_back_and_told() {
    let (mut fx, ann, bob, room) = room_with(5);
    fx.run(&ann, edit(&room, 2, "old news"));
    let latest = fx.m.latest_change(&room).unwrap();
    // "From now on" (beyond any change) while starting mid-room: no old
    // change comes, and the client learns where now is.
    let id = fx.hub.subscribe(&fx.m, bob.user(), &[RoomFrom::new(room.clone(), 3, u64::MAX)]);
    let first = fx.drain(id.unwrap());
    assert_eq!(seqs(&first), vec![4, 5, 6]);
    assert_eq!(numbered(&first), (vec![], Some(latest)));
    // A cursor this replica has not reached yet (another replica was
    // ahead) is set back to its latest; what comes later is numbered after.
    let id = fx.hub.subscribe(&fx.m, bob.user(), &[RoomFrom::new(room.clone(), 6, latest + 99)]);
    let id = id.unwrap();
    assert_eq!(numbered(&fx.drain(id)), (vec![], Some(latest)));
    fx.run(&ann, edit(&room, 3, "new"));
    let (changed, _) = numbered(&fx.drain(id));
    assert_eq!(changed, vec![(3, fx.m.latest_change(&room).unwrap())]);
}
