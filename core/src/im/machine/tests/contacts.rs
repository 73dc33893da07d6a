//! Contacts, message requests and blocks: who can reach whom, what stays
//! private, and that no crowd of strangers can lock a user out.

use super::*;

fn to(who: &Identity, text: &str) -> Operation {
    Operation::Send { to: Target::User(who.user()), text: text.into() }
}

fn contacts(fx: &Fx, who: &Identity) -> ContactsView {
    match fx.query(who, QueryKind::Contacts) {
        Ok(QueryReply::Contacts(view)) => view,
        other => panic!("{other:?}"),
    }
}

fn relation(user: &Identity, relation: Relation) -> Receipt {
    Receipt::Relation { user: user.user(), relation }
}

fn rooms(fx: &Fx, who: &Identity) -> Vec<RoomId> {
    match fx.query(who, QueryKind::Rooms) {
        Ok(QueryReply::Rooms(rooms)) => rooms.into_iter().map(|r| r.room).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_message_to_a_stranger_waits_as_a_request_and_a_reply_accepts_it() {
    let mut fx = Fx::new();
    let dm = RoomId::direct(ann().user(), bob().user());
    assert_eq!(fx.seq(&ann(), to(&bob(), "hi bob")), 2);
    assert_eq!(fx.seq(&ann(), to(&bob(), "are you there?")), 3);
    // Bob does not belong to the room yet, and it is not among his rooms.
    assert!(rooms(&fx, &bob()).is_empty());
    let read = QueryKind::History { room: dm.clone(), after: None, before: None, limit: 9 };
    assert_eq!(fx.query(&bob(), read.clone()), Err(ImError::NotMember));
    // He sees who wrote, and the first message.
    let view = contacts(&fx, &bob());
    assert_eq!(view.incoming.len(), 1);
    let request = &view.incoming[0];
    assert_eq!((request.user, request.name.as_str(), request.messages), (ann().user(), "ann", 2));
    let first = request.first.as_ref().expect("a message request shows its first message");
    assert!(matches!(&first.kind, EntryKind::Message(m) if m.text == "hi bob"));
    assert_eq!(contacts(&fx, &ann()).outgoing[0].user, bob().user());
    // The sender may say a few things before an answer, not more.
    for n in 2..limits::REQUEST_MESSAGES_MAX {
        fx.ok(&ann(), to(&bob(), &format!("again {n}")));
    }
    assert!(matches!(fx.run(&ann(), to(&bob(), "and again")), Err(ImError::LimitReached(_))));
    // Sending by the room's id is the same road.
    assert!(matches!(fx.send(&ann(), &dm, "by id"), Err(ImError::LimitReached(_))));
    // Bob's reply accepts: he joins, and they are contacts.
    let Receipt::Appended { seq, .. } = fx.ok(&bob(), to(&ann(), "hello")) else { panic!() };
    let page = fx.page(&bob(), &dm, None, None, 20);
    assert_eq!(page.entries.last().map(|e| e.seq), Some(seq));
    assert!(page.entries.iter().any(|e| e.kind == EntryKind::Joined { user: bob().user() }));
    assert_eq!(contacts(&fx, &bob()).contacts, vec![(ann().user(), "ann".to_string())]);
    assert!(contacts(&fx, &ann()).outgoing.is_empty());
    fx.ok(&ann(), to(&bob(), "now it flows"));
}

#[test]
fn contact_requests_open_direct_rooms_at_once() {
    let mut fx = Fx::new();
    let ask = Operation::RequestContact { user: bob().user() };
    assert_eq!(fx.ok(&ann(), ask.clone()), relation(&bob(), Relation::RequestSent));
    assert_eq!(fx.ok(&ann(), ask), relation(&bob(), Relation::RequestSent), "asking twice");
    let view = contacts(&fx, &bob());
    assert_eq!((view.incoming.len(), view.incoming[0].first.clone()), (1, None));
    let accept = Operation::AcceptRequest { user: ann().user() };
    assert_eq!(fx.ok(&bob(), accept.clone()), relation(&ann(), Relation::Contact));
    assert_eq!(fx.run(&bob(), accept), Err(ImError::NoSuchRequest));
    // Contacts' direct room opens to both with the first message.
    assert_eq!(fx.seq(&ann(), to(&bob(), "hi")), 3, "two joins, then the message");
    assert_eq!(rooms(&fx, &bob()), vec![RoomId::direct(ann().user(), bob().user())]);
    // Asking back when asked accepts.
    fx.ok(&cat(), Operation::RequestContact { user: ann().user() });
    let back = fx.ok(&ann(), Operation::RequestContact { user: cat().user() });
    assert_eq!(back, relation(&cat(), Relation::Contact));
    // Removing a contact is mutual; the room stays.
    let remove = Operation::RemoveContact { user: bob().user() };
    assert_eq!(fx.ok(&ann(), remove.clone()), relation(&bob(), Relation::None));
    assert_eq!(fx.run(&ann(), remove), Err(ImError::NotContact));
    assert!(contacts(&fx, &bob()).contacts.is_empty());
    fx.ok(&bob(), to(&ann(), "still here"));
}

#[test]
fn requests_are_declined_privately_cancelled_and_lapse() {
    let mut fx = Fx::new();
    fx.ok(&ann(), to(&bob(), "hi"));
    let decline = Operation::DeclineRequest { user: ann().user() };
    assert_eq!(fx.ok(&bob(), decline.clone()), relation(&ann(), Relation::None));
    assert_eq!(fx.run(&bob(), decline), Err(ImError::NoSuchRequest));
    assert!(contacts(&fx, &bob()).incoming.is_empty());
    // The sender cannot tell a decline from silence.
    assert_eq!(contacts(&fx, &ann()).outgoing.len(), 1);
    fx.ok(&ann(), to(&bob(), "hello?"));
    // Cancelling withdraws it.
    let cancel = Operation::CancelRequest { user: bob().user() };
    assert_eq!(fx.ok(&ann(), cancel.clone()), relation(&bob(), Relation::None));
    assert_eq!(fx.run(&ann(), cancel), Err(ImError::NoSuchRequest));
    // Commands naming oneself or nobody are refused.
    let me = Operation::RequestContact { user: ann().user() };
    assert_eq!(fx.run(&ann(), me), Err(ImError::Yourself));
    let nobody = Operation::RequestContact { user: UserId([7; 32]) };
    assert_eq!(fx.run(&ann(), nobody), Err(ImError::NoSuchUser));
    // An unanswered request lapses.
    fx.ok(&cat(), Operation::RequestContact { user: bob().user() });
    assert_eq!(contacts(&fx, &bob()).incoming.len(), 1);
    fx.clock_ms += limits::REQUEST_TTL_MS;
    fx.ok(&ann(), Operation::Register { name: "ann".into() });
    assert!(contacts(&fx, &bob()).incoming.is_empty());
    assert!(contacts(&fx, &cat()).outgoing.is_empty());
}

#[test]
fn leaving_a_direct_room_withdraws_its_request_and_a_contact_opens_it_again() {
    let mut fx = Fx::new();
    let dm = RoomId::direct(ann().user(), bob().user());
    fx.ok(&ann(), to(&bob(), "hi"));
    fx.ok(&ann(), Operation::Leave { room: dm.clone() });
    assert!(contacts(&fx, &bob()).incoming.is_empty());
    assert!(rooms(&fx, &ann()).is_empty());
    fx.ok(&ann(), Operation::RequestContact { user: bob().user() });
    fx.ok(&bob(), Operation::AcceptRequest { user: ann().user() });
    fx.ok(&ann(), to(&bob(), "hi again"));
    assert_eq!(rooms(&fx, &bob()), vec![dm.clone()]);
    fx.ok(&bob(), Operation::Leave { room: dm.clone() });
    assert!(rooms(&fx, &bob()).is_empty());
    fx.ok(&ann(), to(&bob(), "back?"));
    assert_eq!(rooms(&fx, &bob()), vec![dm.clone()]);
    assert_eq!(fx.run(&cat(), Operation::Leave { room: dm }), Err(ImError::NotMember));
}

#[test]
fn a_crowd_of_throwaway_keys_cannot_lock_a_user_out() {
    let mut fx = Fx::new();
    // More strangers than a user may have rooms, each writing to ann and
    // asking her to be a contact.
    let crowd = limits::ROOMS_PER_USER_MAX + 10;
    for n in 0..crowd {
        let mut secret = [0xA0; 32];
        secret[..4].copy_from_slice(&(n as u32).to_le_bytes());
        let stranger = Identity::from_secret(secret);
        fx.ok(&stranger, Operation::Register { name: format!("throwaway{n}") });
        fx.ok(&stranger, to(&ann(), "buy now"));
        if n % 2 == 0 {
            fx.ok(&stranger, Operation::RequestContact { user: cat().user() });
        }
    }
    // None of it took a room of hers, and her request list stays bounded.
    assert!(rooms(&fx, &ann()).is_empty());
    assert_eq!(contacts(&fx, &ann()).incoming.len(), limits::REQUESTS_RECEIVED_PENDING_MAX);
    // She still creates, joins and receives rooms.
    let r = fx.public_room("mine");
    fx.ok(&bob(), Operation::CreateRoom { name: "bobs".into(), visibility: Visibility::Private });
    fx.ok(&bob(), Operation::Invite { room: room("bobs"), user: ann().user() });
    fx.ok(&ann(), Operation::Join { room: room("bobs") });
    // A real person's request still reaches her: the newest always lands.
    fx.ok(&bob(), to(&ann(), "lunch?"));
    let incoming = contacts(&fx, &ann()).incoming;
    assert!(incoming.iter().any(|i| i.user == bob().user()));
    fx.ok(&ann(), Operation::AcceptRequest { user: bob().user() });
    assert_eq!(rooms(&fx, &ann()).len(), 3, "{r} and bobs, and the direct room with bob");
}

#[test]
fn blocking_hides_a_user_privately_and_unblocking_shows_them_again() {
    let mut fx = Fx::new();
    let r = fx.public_room("r");
    fx.ok(&bob(), Operation::Join { room: r.clone() });
    fx.send(&bob(), &r, "before").unwrap();
    let block = Operation::Block { user: bob().user() };
    assert_eq!(fx.ok(&ann(), block), relation(&bob(), Relation::Blocked));
    fx.send(&bob(), &r, "after").unwrap();
    fx.send(&cat(), &r, "cat").ok();
    // Ann's views show bob's messages' places, not their content; nor
    // does bob's writing count as unread for her.
    let page = fx.page(&ann(), &r, None, None, 20);
    let bobs: Vec<&RoomEntry> =
        page.entries.iter().filter(|e| e.author == bob().user() && e.seq > 1).collect();
    assert!(bobs
        .iter()
        .filter(|e| !matches!(e.kind, EntryKind::Joined { .. }))
        .all(|e| e.kind == EntryKind::Hidden));
    let Ok(QueryReply::Unread(unread)) = fx.query(&ann(), QueryKind::Unread) else { panic!() };
    assert_eq!(unread, vec![(r.clone(), 0)]);
    let Ok(QueryReply::Inbox(inbox)) =
        fx.query(&ann(), QueryKind::Inbox { after: None, limit: 50 })
    else {
        panic!()
    };
    assert!(inbox
        .items
        .iter()
        .all(|(_, e)| e.author != bob().user() || !matches!(e.kind, EntryKind::Message(_))));
    // Bob cannot tell: his requests and messages go through, and wait
    // where ann never looks.
    assert_eq!(
        fx.ok(&bob(), Operation::RequestContact { user: ann().user() }),
        relation(&ann(), Relation::RequestSent)
    );
    fx.ok(&bob(), to(&ann(), "hello?"));
    assert!(contacts(&fx, &ann()).incoming.is_empty());
    assert!(rooms(&fx, &ann()).iter().all(|room| !matches!(room, RoomId::Direct(..))));
    assert_eq!(contacts(&fx, &ann()).blocked, vec![(bob().user(), "bob".to_string())]);
    // Ann cannot write to or ask bob while she blocks him.
    assert_eq!(fx.run(&ann(), to(&bob(), "x")), Err(ImError::YouBlock));
    let ask = Operation::RequestContact { user: bob().user() };
    assert_eq!(fx.run(&ann(), ask), Err(ImError::YouBlock));
    assert!(fx.m.blocks(ann().user(), bob().user()));
    // Unblocking shows everything again, and his request with it.
    let unblock = Operation::Unblock { user: bob().user() };
    assert_eq!(fx.ok(&ann(), unblock), relation(&bob(), Relation::RequestReceived));
    let page = fx.page(&ann(), &r, None, None, 20);
    assert!(page.entries.iter().all(|e| e.kind != EntryKind::Hidden));
    assert_eq!(contacts(&fx, &ann()).incoming[0].user, bob().user());
}

#[test]
fn read_positions_are_shown_to_members_unless_kept_private() {
    let mut fx = Fx::new();
    let r = fx.public_room("r");
    fx.ok(&bob(), Operation::Join { room: r.clone() });
    let seq = fx.seq(&ann(), Operation::Send { to: Target::Room(r.clone()), text: "x".into() });
    fx.ok(&bob(), Operation::MarkRead { room: r.clone(), seq });
    let positions = |fx: &Fx, who: &Identity| match fx
        .query(who, QueryKind::ReadPositions { room: r.clone() })
    {
        Ok(QueryReply::ReadPositions(p)) => p,
        other => panic!("{other:?}"),
    };
    let both = positions(&fx, &ann());
    assert_eq!(both.len(), 2);
    let private = Operation::ShareReads { share: false };
    assert_eq!(fx.ok(&bob(), private), Receipt::ReadsShared { share: false });
    assert_eq!(positions(&fx, &ann()), vec![(ann().user(), seq)]);
    assert_eq!(positions(&fx, &bob()).len(), 2, "one's own position is always shown");
    assert!(!fx.m.shows_reads(bob().user(), ann().user()));
    fx.ok(&bob(), Operation::ShareReads { share: true });
    assert_eq!(positions(&fx, &ann()).len(), 2);
}

#[cfg(feature = "testing")]
#[test]
fn contacts_requests_and_blocks_travel_in_snapshots() {
    let mut fx = Fx::new();
    fx.ok(&ann(), to(&bob(), "hi"));
    fx.ok(&cat(), Operation::RequestContact { user: ann().user() });
    fx.ok(&ann(), Operation::AcceptRequest { user: cat().user() });
    fx.ok(&bob(), Operation::Block { user: cat().user() });
    fx.ok(&cat(), Operation::ShareReads { share: false });
    let (volatile, durable) =
        crate::testing::im_model::round_trip(&mut fx.m, crate::ids::LogIndex(fx.index));
    for copy in [volatile, durable] {
        let view = |who: &Identity| {
            copy.query(&ImQuery { as_user: who.user(), kind: QueryKind::Contacts })
        };
        assert_eq!(view(&bob()), fx.query(&bob(), QueryKind::Contacts));
        assert_eq!(view(&ann()), fx.query(&ann(), QueryKind::Contacts));
        assert!(copy.blocks(bob().user(), cat().user()));
    }
}

#[test]
fn room_creations_and_new_requests_are_rate_limited_with_the_wait_named() {
    let mut fx = Fx::new();
    let burst = limits::ROOM_CREATION_RATE.burst;
    for n in 0..burst {
        fx.ok(
            &bob(),
            Operation::CreateRoom { name: format!("r{n}"), visibility: Visibility::Public },
        );
    }
    let create =
        |n: u32| Operation::CreateRoom { name: format!("r{n}"), visibility: Visibility::Public };
    let Err(ImError::RateLimited { what, retry_after_ms }) = fx.run(&bob(), create(burst)) else {
        panic!("the creation past the burst is refused")
    };
    assert_eq!(what, "room creations");
    assert!(retry_after_ms > 0 && retry_after_ms <= limits::ROOM_CREATION_RATE.interval_ms);
    // A refusal for another reason costs no token; others are not held up.
    assert!(matches!(fx.run(&bob(), create(0)), Err(ImError::RoomExists(_))));
    fx.ok(&cat(), create(99));
    // After the wait it named, the next one goes through.
    fx.clock_ms += retry_after_ms;
    fx.ok(&bob(), create(burst));
    // New requests: as many as may be pending at once, then at the rate.
    let mut strangers = Vec::new();
    for n in 0..=limits::REQUEST_RATE.burst {
        let stranger = Identity::from_secret([0x50 + n as u8; 32]);
        fx.ok(&stranger, Operation::Register { name: format!("s{n}") });
        strangers.push(stranger);
    }
    for (n, s) in strangers.iter().enumerate().take(limits::REQUESTS_SENT_PENDING_MAX) {
        let ask = Operation::RequestContact { user: s.user() };
        assert_eq!(fx.ok(&ann(), ask), relation(s, Relation::RequestSent), "request {n}");
    }
    // Withdrawing and asking again is what the rate is for.
    let last = &strangers[0];
    fx.ok(&ann(), Operation::CancelRequest { user: last.user() });
    let again = fx.run(&ann(), Operation::RequestContact { user: last.user() });
    assert!(matches!(again, Err(ImError::RateLimited { .. })), "{again:?}");
    fx.clock_ms += limits::REQUEST_RATE.interval_ms;
    fx.ok(&ann(), Operation::RequestContact { user: last.user() });
}

fn invites(fx: &Fx, who: &Identity) -> Vec<InviteInfo> {
    match fx.query(who, QueryKind::Invites) {
        Ok(QueryReply::Invites(invites)) => invites,
        other => panic!("{other:?}"),
    }
}

#[test]
fn invitations_are_listed_declined_used_and_hidden_when_the_inviter_is_blocked() {
    let mut fx = Fx::new();
    let r = fx.private_room("r");
    let s = fx.private_room("s");
    fx.ok(&ann(), Operation::Invite { room: r.clone(), user: bob().user() });
    fx.ok(&ann(), Operation::Invite { room: s.clone(), user: bob().user() });
    let listed = invites(&fx, &bob());
    assert_eq!(listed.len(), 2);
    assert_eq!(
        (&listed[0].room, listed[0].inviter, listed[0].inviter_name.as_str()),
        (&r, Some(ann().user()), "ann")
    );
    // Declining takes it off the room's list; joining uses it.
    let decline = Operation::DeclineInvite { room: r.clone() };
    assert_eq!(fx.ok(&bob(), decline.clone()), Receipt::InviteDeclined { room: r.clone() });
    assert_eq!(fx.run(&bob(), decline), Err(ImError::NotInvited));
    assert_eq!(fx.run(&bob(), Operation::Join { room: r.clone() }), Err(ImError::NotInvited));
    let Ok(QueryReply::Room(info)) = fx.query(&ann(), QueryKind::Room { room: r.clone() }) else {
        panic!()
    };
    assert!(info.invited.is_empty());
    fx.ok(&bob(), Operation::Join { room: s.clone() });
    assert!(invites(&fx, &bob()).is_empty());
    // An invitation from a user one blocks is not shown (and the inviter
    // cannot tell); unblocking shows it.
    fx.ok(&cat(), Operation::Block { user: ann().user() });
    fx.ok(&ann(), Operation::Invite { room: r.clone(), user: cat().user() });
    assert!(invites(&fx, &cat()).is_empty());
    fx.ok(&cat(), Operation::Unblock { user: ann().user() });
    assert_eq!(invites(&fx, &cat()).len(), 1);
    // A ban ends an invitation too.
    fx.ok(&ann(), Operation::Ban { room: r.clone(), user: cat().user() });
    assert!(invites(&fx, &cat()).is_empty());
}

#[test]
fn invitations_of_a_state_from_before_the_index_are_found_again() {
    let mut fx = Fx::new();
    let r = fx.private_room("r");
    fx.ok(&ann(), Operation::Invite { room: r.clone(), user: bob().user() });
    let v5 = fx.m.snapshot(crate::ids::LogIndex(fx.index), &[]);
    // The same state as a version 4 snapshot: nothing after the holdings.
    let social = postcard::to_allocvec(&fx.m.social).unwrap().len();
    let rates = postcard::to_allocvec(&fx.m.rates).unwrap().len();
    let v4 = [&[4u8][..], &v5[1..v5.len() - social - rates]].concat();
    let mut old = ImMachine::default();
    old.restore(&v4).unwrap();
    let q = ImQuery { as_user: bob().user(), kind: QueryKind::Invites };
    let Ok(QueryReply::Invites(found)) = old.query(&q) else { panic!() };
    assert_eq!(found.len(), 1);
    assert_eq!((&found[0].room, found[0].inviter), (&r, None), "who invited is not known");
}
