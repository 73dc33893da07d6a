//! File messages: who may fetch, quotas, references and their release,
//! tombstones, retries and snapshots.

use super::*;
use crate::files::FileId;

fn info(content: &[u8], name: &str) -> FileInfo {
    FileInfo { id: FileId::of(content), name: name.into(), media_type: "text/plain".into() }
}

/// A replica's key.
fn replica() -> Identity {
    Identity::from_secret([9; 32])
}

/// A replica records that it holds `file`.
fn hold(fx: &mut Fx, file: FileId) {
    fx.ok(&replica(), Operation::HoldFile { file });
}

/// A file message of `file` to room `r`.
fn send_op(r: &RoomId, file: FileInfo, caption: &str) -> Operation {
    Operation::SendFile { to: Target::Room(r.clone()), file, caption: caption.into() }
}

/// Holds the content, then sends the file message.
fn send_file(fx: &mut Fx, who: &Identity, r: &RoomId, file: FileInfo) -> Result<Receipt, ImError> {
    hold(fx, file.id);
    fx.run(who, send_op(r, file, "see"))
}

fn huge(seed: u8) -> FileInfo {
    FileInfo {
        id: FileId { root: [seed; 32], size_bytes: limits::FILE_BYTES_MAX },
        name: format!("big{seed}.bin"),
        media_type: "application/octet-stream".into(),
    }
}

#[test]
fn members_may_fetch_what_they_may_read_and_nobody_else() {
    let mut fx = Fx::new();
    let r = fx.private_room("r");
    let file = info(b"hello", "hello.txt");
    let seq = match send_file(&mut fx, &ann(), &r, file.clone()).unwrap() {
        Receipt::Appended { seq, .. } => seq,
        other => panic!("{other:?}"),
    };
    assert!(fx.m.may_fetch(ann().user(), file.id));
    assert!(!fx.m.may_fetch(bob().user(), file.id), "not a member of the private room");
    assert!(fx.m.is_file_referenced(file.id));
    let page = fx.page(&ann(), &r, None, None, 10);
    let entry = page.entries.iter().find(|e| e.seq == seq).expect("the file entry");
    let EntryKind::File(f) = &entry.kind else { panic!("{entry:?}") };
    assert_eq!((&f.file, f.message.text.as_str()), (&file, "see"));

    // A member who joins later may fetch it (history is readable); one who
    // left keeps what came before their departure, not what came after.
    fx.ok(&ann(), Operation::Invite { room: r.clone(), user: bob().user() });
    fx.ok(&bob(), Operation::Join { room: r.clone() });
    assert!(fx.m.may_fetch(bob().user(), file.id));
    fx.ok(&bob(), Operation::Leave { room: r.clone() });
    let later = info(b"later", "later.txt");
    send_file(&mut fx, &ann(), &r, later.clone()).unwrap();
    assert!(fx.m.may_fetch(bob().user(), file.id));
    assert!(!fx.m.may_fetch(bob().user(), later.id));
    assert!(!fx.m.may_fetch(cat().user(), file.id));
    assert!(matches!(send_file(&mut fx, &cat(), &r, file.clone()), Err(ImError::NotMember)));

    // A public room's files are fetchable by anyone not banned.
    let p = fx.public_room("p");
    let public = info(b"public", "public.txt");
    send_file(&mut fx, &ann(), &p, public.clone()).unwrap();
    assert!(fx.m.may_fetch(cat().user(), public.id));
}

#[test]
fn deleting_the_last_reference_releases_the_content_and_refunds_the_author() {
    let mut fx = Fx::new();
    let r = fx.public_room("r");
    fx.ok(&bob(), Operation::Join { room: r.clone() });
    let file = info(b"shared", "shared.txt");
    hold(&mut fx, file.id);
    let first = fx.seq(&ann(), send_op(&r, file.clone(), ""));
    let second = fx.seq(&bob(), send_op(&r, file.clone(), ""));
    assert_eq!(fx.m.file_usage(ann().user()), 6);
    assert_eq!(fx.m.file_usage(bob().user()), 6, "each message counts its own bytes");

    let body = fx.body(Operation::Delete { room: r.clone(), seq: first });
    let deleted = fx.apply_body(&ann(), &body);
    assert!(deleted.result.is_ok());
    assert!(!deleted.events.iter().any(|e| matches!(e, ImEvent::FileReleased { .. })));
    assert_eq!(fx.m.file_usage(ann().user()), 0);
    assert!(fx.m.may_fetch(cat().user(), file.id), "bob's message still refers to it");

    // An admin deletes bob's message: bob gets his bytes back.
    let body = fx.body(Operation::Delete { room: r.clone(), seq: second });
    let deleted = fx.apply_body(&ann(), &body);
    assert!(deleted.events.contains(&ImEvent::FileReleased { file: file.id }));
    assert_eq!(fx.m.file_usage(bob().user()), 0);
    assert!(!fx.m.is_file_referenced(file.id));
    assert!(!fx.m.may_fetch(ann().user(), file.id));

    // The tombstone keeps its place and nothing of the file.
    let page = fx.page(&ann(), &r, None, None, 10);
    let tomb = page.entries.iter().find(|e| e.seq == second).expect("tombstone");
    let EntryKind::File(f) = &tomb.kind else { panic!("{tomb:?}") };
    assert!(f.message.deleted && f.file == FileInfo::deleted());
    // Deleting again releases nothing twice.
    let body = fx.body(Operation::Delete { room: r.clone(), seq: second });
    assert!(fx
        .apply_body(&ann(), &body)
        .events
        .iter()
        .all(|e| !matches!(e, ImEvent::FileReleased { .. })));
}

#[test]
fn the_quota_bounds_each_user_and_bad_manifests_are_refused() {
    let mut fx = Fx::new();
    let r = fx.public_room("r");
    fx.ok(&bob(), Operation::Join { room: r.clone() });
    fx.ok(&cat(), Operation::Join { room: r.clone() });
    let fits = (limits::USER_FILE_BYTES_MAX / limits::FILE_BYTES_MAX) as u8;
    for seed in 0..fits {
        send_file(&mut fx, &ann(), &r, huge(seed)).unwrap();
    }
    let over = send_file(&mut fx, &ann(), &r, huge(fits));
    assert!(
        matches!(over, Err(ImError::QuotaExceeded { used_bytes, .. }) if used_bytes == limits::USER_FILE_BYTES_MAX)
    );
    // Someone else's quota is untouched.
    send_file(&mut fx, &bob(), &r, huge(fits)).unwrap();

    let mut bad_name = info(b"x", "../etc/passwd");
    assert!(matches!(
        send_file(&mut fx, &bob(), &r, bad_name.clone()),
        Err(ImError::BadFile(FileInfoError::Name { .. }))
    ));
    bad_name.name = "ok.txt".into();
    bad_name.media_type = "nonsense".into();
    assert!(matches!(
        send_file(&mut fx, &bob(), &r, bad_name),
        Err(ImError::BadFile(FileInfoError::MediaType { .. }))
    ));
    let mut too_big = huge(200);
    too_big.id.size_bytes += 1;
    let op = send_op(&r, too_big, "");
    assert!(matches!(fx.run(&cat(), op), Err(ImError::BadFile(FileInfoError::TooLarge { .. }))));
    let long_caption = "x".repeat(limits::MESSAGE_BYTES_MAX + 1);
    let op = send_op(&r, info(b"c", "c.txt"), &long_caption);
    assert!(matches!(fx.run(&cat(), op), Err(ImError::BadLength { .. })));
}

#[test]
fn retries_place_a_file_once_and_captions_edit_and_react() {
    let mut fx = Fx::new();
    let r = fx.public_room("r");
    hold(&mut fx, FileId::of(b"a"));
    hold(&mut fx, FileId::of(b"d"));
    let op = send_op(&r, info(b"a", "a.txt"), "one");
    let body = fx.body(op);
    let first = fx.apply_body(&ann(), &body);
    let again = fx.apply_body(&ann(), &body);
    assert!(again.duplicate);
    assert_eq!(first.result, again.result);
    assert_eq!(fx.m.file_usage(ann().user()), 1, "charged once: {:?}", first.result);
    let Ok(Receipt::Appended { seq, .. }) = first.result else { panic!() };
    fx.ok(&bob(), Operation::Join { room: r.clone() });
    fx.ok(&ann(), Operation::Edit { room: r.clone(), seq, text: "two".into() });
    fx.ok(&bob(), Operation::React { room: r.clone(), seq, reaction: "+1".into(), add: true });
    let page = fx.page(&ann(), &r, None, None, 10);
    let EntryKind::File(f) = &page.entries.iter().find(|e| e.seq == seq).unwrap().kind else {
        panic!()
    };
    assert_eq!(
        (f.message.text.as_str(), f.message.edits, f.message.reactions.len()),
        ("two", 1, 1)
    );
    // A direct file message opens the direct room like a text one.
    fx.ok(&ann(), Operation::RequestContact { user: bob().user() });
    fx.ok(&bob(), Operation::AcceptRequest { user: ann().user() });
    let op = Operation::SendFile {
        to: Target::User(bob().user()),
        file: info(b"d", "d.txt"),
        caption: String::new(),
    };
    fx.ok(&ann(), op);
    assert!(fx.m.may_fetch(bob().user(), FileId::of(b"d")));
}

#[test]
fn snapshots_carry_references_and_usage() {
    let mut fx = Fx::new();
    let r = fx.private_room("r");
    let kept = info(b"kept", "kept.txt");
    let gone = info(b"gone", "gone.txt");
    send_file(&mut fx, &ann(), &r, kept.clone()).unwrap();
    let Receipt::Appended { seq, .. } = send_file(&mut fx, &ann(), &r, gone.clone()).unwrap()
    else {
        panic!()
    };
    fx.ok(&ann(), Operation::Delete { room: r.clone(), seq });
    let mut copy = ImMachine::default();
    copy.restore(&fx.m.snapshot(crate::ids::LogIndex(fx.index), &[])).unwrap();
    assert_eq!(copy.digest(), fx.m.digest());
    assert!(copy.may_fetch(ann().user(), kept.id) && !copy.may_fetch(ann().user(), gone.id));
    assert!(!copy.may_fetch(bob().user(), kept.id));
    assert_eq!(copy.file_usage(ann().user()), 4);
    assert_eq!(copy.files, fx.m.files);
}

#[test]
fn content_must_be_held_first_and_orphans_are_released_after_a_day() {
    let mut fx = Fx::new();
    let r = fx.public_room("r");
    let file = info(b"late", "late.txt");
    let op = |file: &FileInfo| send_op(&r, file.clone(), "");
    assert_eq!(fx.run(&ann(), op(&file)), Err(ImError::FileNotStored));
    let held = fx.ok(&replica(), Operation::HoldFile { file: file.id });
    assert_eq!(held, Receipt::Held { file: file.id });
    fx.ok(&Identity::from_secret([8; 32]), Operation::HoldFile { file: file.id });
    assert_eq!(fx.m.file_holders(file.id).len(), 2);
    fx.ok(&ann(), op(&file));

    // Content nobody sends is released a day after it was first held; sent
    // content is not.
    let orphan = FileId::of(b"orphan");
    hold(&mut fx, orphan);
    fx.clock_ms += limits::ORPHAN_HOLD_MS + 1;
    let body = fx.body(Operation::Send { to: Target::Room(r.clone()), text: "tick".into() });
    let response = fx.apply_body(&ann(), &body);
    assert!(response.events.contains(&ImEvent::FileReleased { file: orphan }));
    assert!(fx.m.file_holders(orphan).is_empty());
    assert_eq!(fx.m.file_holders(file.id).len(), 2, "referenced content stays held");
    let late = FileInfo { id: orphan, ..file.clone() };
    assert_eq!(fx.run(&ann(), op(&late)), Err(ImError::FileNotStored));
    // Deleting the last message releases the content and its holders.
    let mut copy = ImMachine::default();
    copy.restore(&fx.m.snapshot(crate::ids::LogIndex(fx.index), &[])).unwrap();
    assert_eq!(copy.digest(), fx.m.digest(), "holdings travel in snapshots");
    assert_eq!(copy.file_holders(file.id), fx.m.file_holders(file.id));
}
