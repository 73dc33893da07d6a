//! Each invariant objects to a history that breaks it and accepts one that
//! does not: the checkers can fail, one by one.

use super::*;
use bytes::Bytes;
use kith_core::durable::Record;
use kith_core::ids::{LogIndex, NodeId, Term};
use kith_core::im::identity::UserId;
use kith_core::im::protocol::RoomId;
use kith_core::raft::{Membership, NodeStatus, Role};
use kith_core::state_machine::Digest;
use kith_core::testing::invariant::{
    ClientSends, Invariant, Observation, ReplicaView, StoredMessage,
};
use kith_core::wire::{
    PeerBody, PeerFrame, WireEntry, WireEntryPayload, WireMessage, WireMessageKind,
};
use uuid::Uuid;

/// A replica as a checker sees it, with every field set by the test.
struct Fake {
    id: u64,
    leader: Option<u64>,
    commit: u64,
    applied: u64,
    log: Vec<(u64, u64)>,
    digest: u8,
}

impl Fake {
    fn new(id: u64) -> Fake {
        Fake { id, leader: None, commit: 0, applied: 0, log: Vec::new(), digest: 0 }
    }
}

impl ReplicaView for Fake {
    fn id(&self) -> NodeId {
        NodeId(self.id)
    }
    fn status(&self) -> NodeStatus {
        NodeStatus {
            id: NodeId(self.id),
            role: Role::Follower,
            term: Term(1),
            leader: self.leader.map(NodeId),
            commit: LogIndex(self.commit),
            applied: LogIndex(self.applied),
            last_index: LogIndex(self.log.len() as u64),
            snapshot_index: LogIndex(0),
            membership: Membership::default(),
        }
    }
    fn entry_term(&self, index: LogIndex) -> Option<Term> {
        self.log.iter().find(|(i, _)| *i == index.get()).map(|(_, t)| Term(*t))
    }
    fn digest(&self) -> Digest {
        Digest([self.digest; 32])
    }
    fn digest_checkpoint(&self) -> Option<(LogIndex, Digest)> {
        None
    }
}

fn leader(node: &Fake, term: u64) -> Observation<'_> {
    Observation::BecameLeader { node, term: Term(term) }
}

fn applied(node: u64, incarnation: u64, index: u64, term: u64) -> Observation<'static> {
    Observation::Applied {
        node: NodeId(node),
        incarnation,
        index: LogIndex(index),
        term: Term(term),
        position: 0,
    }
}

fn first_objection(check: &mut dyn Invariant, observations: &[Observation<'_>]) -> Option<String> {
    observations.iter().find_map(|o| check.observe(o).err())
}

#[test]
fn election_safety() {
    let (a, b) = (Fake::new(1), Fake::new(2));
    let fine = [leader(&a, 1), leader(&b, 2), leader(&a, 1)];
    assert_eq!(first_objection(&mut ElectionSafety::default(), &fine), None);
    let broken = [leader(&a, 3), leader(&b, 3)];
    assert!(first_objection(&mut ElectionSafety::default(), &broken).is_some());
}

fn vote(from: u64, to: u64, term: u64, reject: bool) -> PeerFrame {
    let m = WireMessage { reject, ..WireMessage::new(WireMessageKind::RequestVoteResponse, term) };
    PeerFrame { from: NodeId(from), to: NodeId(to), body: PeerBody::Raft(m) }
}

fn sent(frame: &PeerFrame) -> Observation<'_> {
    Observation::Sent { from: frame.from, incarnation: 1, to: frame.to, frame }
}

#[test]
fn vote_safety() {
    let frames = [vote(1, 2, 5, false), vote(1, 3, 5, true), vote(1, 3, 6, false)];
    let fine: Vec<_> = frames.iter().map(sent).collect();
    assert_eq!(first_objection(&mut VoteSafety::default(), &fine), None);
    let twice = [vote(1, 2, 5, false), vote(1, 3, 5, false)];
    let broken: Vec<_> = twice.iter().map(sent).collect();
    assert!(first_objection(&mut VoteSafety::default(), &broken).is_some());
}

fn members(voters: &[u64]) -> Membership {
    Membership { voters: voters.iter().map(|v| NodeId(*v)).collect(), ..Membership::default() }
}

fn adopted(node: u64, incarnation: u64, membership: &Membership) -> Observation<'_> {
    Observation::MembershipChanged { node: NodeId(node), incarnation, membership }
}

#[test]
fn removed_members() {
    let (all, without_3) = (members(&[1, 2, 3]), members(&[1, 2]));
    let (to_3, to_2) = (vote(1, 3, 5, false), vote(1, 2, 5, false));
    // Node 1 drops 3 from its configuration, then keeps talking to 2 only.
    let fine = [adopted(1, 1, &all), sent(&to_3), adopted(1, 1, &without_3), sent(&to_2)];
    assert_eq!(first_objection(&mut RemovedMembers::default(), &fine), None);
    // Added back: talking to it again is fine.
    let back = [adopted(1, 1, &all), adopted(1, 1, &without_3), adopted(1, 1, &all), sent(&to_3)];
    assert_eq!(first_objection(&mut RemovedMembers::default(), &back), None);
    // A vote for the replica it removed.
    let broken = [adopted(1, 1, &all), adopted(1, 1, &without_3), sent(&to_3)];
    let objection = first_objection(&mut RemovedMembers::default(), &broken);
    assert!(objection.is_some_and(|o| o.contains("which it had removed")));
    // Unless 3 won an election since (it was added back, say): a replica
    // may answer the leader of a term, but not in a term 3 did not win.
    let (fake_3, answer) = (Fake::new(3), vote(1, 3, 7, false));
    let elected =
        [adopted(1, 1, &all), adopted(1, 1, &without_3), leader(&fake_3, 7), sent(&answer)];
    assert_eq!(first_objection(&mut RemovedMembers::default(), &elected), None);
    let other_term =
        [adopted(1, 1, &all), adopted(1, 1, &without_3), leader(&fake_3, 6), sent(&answer)];
    assert!(first_objection(&mut RemovedMembers::default(), &other_term).is_some());
    // A forwarded read carries no term: fine to the leader it follows.
    let read = PeerFrame {
        from: NodeId(1),
        to: NodeId(3),
        body: PeerBody::Raft(WireMessage::new(WireMessageKind::ReadIndex, 0)),
    };
    let (following_3, following_none) = (Fake { leader: Some(3), ..Fake::new(1) }, Fake::new(1));
    let stepped = |node| Observation::Stepped { node, incarnation: 1 };
    for (node, fine) in [(&following_3, true), (&following_none, false)] {
        let run = [adopted(1, 1, &all), adopted(1, 1, &without_3), stepped(node), sent(&read)];
        let objection = first_objection(&mut RemovedMembers::default(), &run);
        assert_eq!(objection.is_none(), fine, "{objection:?}");
    }
    // Another node never had 3 and never removed it: nothing to object to.
    let other = vote(2, 3, 5, false);
    let unrelated = [adopted(2, 1, &without_3), sent(&other)];
    assert_eq!(first_objection(&mut RemovedMembers::default(), &unrelated), None);
}

fn batch(index: u64, term: u64, data: &'static [u8]) -> Vec<Record> {
    let payload = WireEntryPayload::Normal(Bytes::from_static(data));
    vec![Record::Entries(vec![WireEntry { term, index, payload, context: Bytes::new() }])]
}

fn persisting(node: u64, records: &[Record]) -> Observation<'_> {
    Observation::Persisting { node: NodeId(node), records }
}

#[test]
fn log_matching() {
    let (x, x_again, y) = (batch(4, 2, b"x"), batch(4, 2, b"x"), batch(4, 2, b"y"));
    let fine = [persisting(1, &x), persisting(2, &x_again)];
    assert_eq!(first_objection(&mut LogMatching::default(), &fine), None);
    let broken = [persisting(1, &x), persisting(2, &y)];
    assert!(first_objection(&mut LogMatching::default(), &broken).is_some());
}

#[test]
fn leader_completeness() {
    let mut holder = Fake::new(2);
    holder.log = vec![(1, 1), (2, 1)];
    let fine = [applied(1, 1, 1, 1), applied(1, 1, 2, 1), leader(&holder, 2)];
    assert_eq!(first_objection(&mut LeaderCompleteness::default(), &fine), None);
    let mut lacking = Fake::new(3);
    lacking.log = vec![(1, 1)];
    let broken = [applied(1, 1, 1, 1), applied(1, 1, 2, 1), leader(&lacking, 2)];
    assert!(first_objection(&mut LeaderCompleteness::default(), &broken).is_some());
    // A leader of term 6 elected late, after term 7 committed entry 2 it
    // never had: Raft allows it (madsim seed 934); a leader of term 8 may not.
    let mut seven = Fake::new(1);
    seven.log = vec![(1, 1), (2, 7)];
    let mut late = Fake::new(3);
    late.log = vec![(1, 1)];
    let stale = [applied(1, 1, 1, 1), leader(&seven, 7), applied(1, 1, 2, 7), leader(&late, 6)];
    assert_eq!(first_objection(&mut LeaderCompleteness::default(), &stale), None);
    let newer = [applied(1, 1, 1, 1), leader(&seven, 7), applied(1, 1, 2, 7), leader(&late, 8)];
    assert!(first_objection(&mut LeaderCompleteness::default(), &newer).is_some());
}

#[test]
fn state_machine_safety() {
    let stepped = |node: &Fake| -> Option<String> {
        let o = Observation::Stepped { node, incarnation: 1 };
        StateMachineSafety::default().observe(&o).err()
    };
    assert_eq!(stepped(&Fake::new(1)), None);
    let mut check = StateMachineSafety::default();
    let (mut a, mut b) = (Fake::new(1), Fake::new(2));
    a.applied = 7;
    b.applied = 7;
    b.digest = 9;
    assert!(check.observe(&Observation::Stepped { node: &a, incarnation: 1 }).is_ok());
    assert!(check.observe(&Observation::Stepped { node: &b, incarnation: 1 }).is_err());
    let terms = [applied(1, 1, 3, 2), applied(2, 1, 3, 4)];
    assert!(first_objection(&mut StateMachineSafety::default(), &terms).is_some());
}

#[test]
fn monotonic_progress() {
    let mut check = MonotonicProgress::default();
    let mut a = Fake::new(1);
    a.commit = 5;
    assert!(check.observe(&Observation::Stepped { node: &a, incarnation: 1 }).is_ok());
    a.commit = 3;
    // A restart may begin lower; the same run may not.
    assert!(check.observe(&Observation::Stepped { node: &a, incarnation: 2 }).is_ok());
    a.commit = 2;
    assert!(check.observe(&Observation::Stepped { node: &a, incarnation: 2 }).is_err());
}

#[test]
fn applied_once() {
    let fine = [applied(1, 1, 3, 1), applied(1, 1, 4, 1), applied(1, 2, 3, 1)];
    assert_eq!(first_objection(&mut AppliedOnce::default(), &fine), None);
    let broken = [applied(1, 1, 3, 1), applied(1, 1, 3, 1)];
    assert!(first_objection(&mut AppliedOnce::default(), &broken).is_some());
}

fn message(room: &RoomId, seq: u64, id: Uuid, author: UserId) -> StoredMessage {
    StoredMessage { room: room.clone(), seq, msg_id: id, author, look: 0 }
}

/// Checks `stored` against one client (user 7) that submitted `ids` and
/// had `acked` acknowledged.
fn settled(
    check: &mut dyn Invariant,
    stored: &[StoredMessage],
    ids: &[Uuid],
    acked: &[(Uuid, RoomId, u64)],
) -> Option<String> {
    let client =
        ClientSends { user: UserId([7; 32]), submitted: ids.to_vec(), acked: acked.to_vec() };
    check.observe(&Observation::Settled { stored, clients: &[client] }).err()
}

#[test]
fn settled_state_invariants() {
    let room = RoomId::Group("#lobby".into());
    let (me, other) = (UserId([7; 32]), UserId([8; 32]));
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let good = [message(&room, 1, a, me), message(&room, 2, b, me)];
    let acks = [(a, room.clone(), 1), (b, room.clone(), 2)];
    for check in
        [&mut NoPhantom as &mut dyn Invariant, &mut NoDuplicate, &mut NoAckLost, &mut ClientOrder]
    {
        assert_eq!(settled(check, &good, &[a, b], &acks), None, "{}", check.name());
    }
    // Never sent, or sent under another name.
    assert!(settled(&mut NoPhantom, &good, &[a], &[]).is_some());
    let forged = [message(&room, 1, a, other)];
    assert!(settled(&mut NoPhantom, &forged, &[a], &[]).is_some());
    // Stored twice.
    let twice = [message(&room, 1, a, me), message(&room, 2, a, me)];
    assert!(settled(&mut NoDuplicate, &twice, &[a], &[]).is_some());
    // Acknowledged but missing, or stored elsewhere than acknowledged.
    assert!(settled(&mut NoAckLost, &good[..1], &[a, b], &acks).is_some());
    let moved = [(a, room.clone(), 2)];
    assert!(settled(&mut NoAckLost, &good, &[a, b], &moved).is_some());
    // Sent A then B, but B sits before A.
    let reversed = [(a, room.clone(), 2), (b, room.clone(), 1)];
    assert!(settled(&mut ClientOrder, &good, &[a, b], &reversed).is_some());
}

#[test]
fn live_delivery() {
    let room = RoomId::Group("r".into());
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let followed = |cursor| Observation::Followed { subscriber: 0, room: &room, cursor };
    let got =
        |seq, msg_id| Observation::Delivered { subscriber: 0, room: &room, seq, msg_id, look: 0 };
    let stored = [message(&room, 2, a, UserId([1; 32])), message(&room, 3, b, UserId([1; 32]))];
    let settled = Observation::Settled { stored: &stored, clients: &[] };
    // Resumed from its cursor after a reconnect, every entry once, all true.
    let fine = [followed(0), got(1, None), got(2, Some(a)), followed(2), got(3, Some(b)), settled];
    assert_eq!(first_objection(&mut LiveDelivery::default(), &fine), None);
    let gap = [followed(0), got(1, None), got(3, Some(b))];
    assert!(first_objection(&mut LiveDelivery::default(), &gap).is_some());
    let twice = [followed(0), got(1, None), followed(0)];
    assert!(first_objection(&mut LiveDelivery::default(), &twice).is_some());
    let settled = Observation::Settled { stored: &stored, clients: &[] };
    let untrue = [followed(0), got(1, None), got(2, Some(b)), settled];
    assert!(first_objection(&mut LiveDelivery::default(), &untrue).is_some());
    // Changes: only to messages already received, naming them.
    let changed =
        |seq, msg_id| Observation::Updated { subscriber: 0, room: &room, seq, msg_id, look: 0 };
    let fine = [followed(0), got(1, None), got(2, Some(a)), changed(2, Some(a))];
    assert_eq!(first_objection(&mut LiveDelivery::default(), &fine), None);
    let early = [followed(0), got(1, None), changed(2, Some(a))];
    assert!(first_objection(&mut LiveDelivery::default(), &early).is_some());
    let other = [followed(0), got(1, None), got(2, Some(a)), changed(2, Some(b))];
    assert!(first_objection(&mut LiveDelivery::default(), &other).is_some());
}

#[test]
fn change_delivery() {
    let room = RoomId::Group("r".into());
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let got = |subscriber, seq, msg_id, look| Observation::Delivered {
        subscriber,
        room: &room,
        seq,
        msg_id: Some(msg_id),
        look,
    };
    let changed = |subscriber, seq, msg_id, look| Observation::Updated {
        subscriber,
        room: &room,
        seq,
        msg_id: Some(msg_id),
        look,
    };
    // Message 2 was edited (look 5 -> 6); message 3 never changed.
    let stored = [
        StoredMessage { look: 6, ..message(&room, 2, a, UserId([1; 32])) },
        StoredMessage { look: 7, ..message(&room, 3, b, UserId([1; 32])) },
    ];
    let settled = Observation::Settled { stored: &stored, clients: &[] };
    // One subscriber got the edit; another received the message already edited.
    let fine = [got(0, 2, a, 5), got(0, 3, b, 7), changed(0, 2, a, 6), got(1, 2, a, 6), settled];
    assert_eq!(first_objection(&mut ChangeDelivery::default(), &fine), None);
    let settled = Observation::Settled { stored: &stored, clients: &[] };
    let missed = [got(0, 2, a, 5), got(1, 2, a, 6), settled];
    let objection = first_objection(&mut ChangeDelivery::default(), &missed);
    assert!(objection.is_some_and(|o| o.contains("subscriber 0")));
}

#[test]
fn presence_converges() {
    let (ann, bob) = (UserId([1; 32]), UserId([2; 32]));
    let announced = [(ann, 10), (bob, 20)];
    let agreed =
        [(NodeId(1), ann, Some(10)), (NodeId(2), ann, Some(10)), (NodeId(2), bob, Some(20))];
    let fine = [Observation::PresenceSettled { announced: &announced, seen: &agreed }];
    assert_eq!(first_objection(&mut PresenceConverges, &fine), None);
    for wrong in [None, Some(9)] {
        let seen = [(NodeId(1), ann, Some(10)), (NodeId(3), ann, wrong)];
        let broken = [Observation::PresenceSettled { announced: &announced, seen: &seen }];
        assert!(first_objection(&mut PresenceConverges, &broken).is_some());
    }
}
