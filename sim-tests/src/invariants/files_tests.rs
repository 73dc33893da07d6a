//! Each file checker objects to a history that breaks it and accepts one
//! that does not.

use super::*;
use kith_core::files::{outboard_of, ChunkResponse, FileId, Geometry};
use kith_core::ids::{LogIndex, NodeId};
use kith_core::im::identity::UserId;
use kith_core::im::protocol::RoomId;
use kith_core::replica::BlobRemoval;
use kith_core::testing::file_observation::FileObservation as F;
use kith_core::testing::invariant::{Invariant, Observation};

fn objection(check: &mut dyn Invariant, facts: Vec<F<'_>>) -> Option<String> {
    facts.into_iter().find_map(|f| check.observe(&Observation::File(f)).err())
}

/// A content of `size` bytes, its id and its hash tree.
fn content(size: u64, byte: u8) -> (Vec<u8>, FileId, Vec<u8>) {
    let data = vec![byte; size as usize];
    let mut outboard = Vec::new();
    let file = outboard_of(size, &data[..], &mut outboard).expect("in memory");
    (data, file, outboard)
}

fn room() -> RoomId {
    RoomId::Group("files".into())
}

#[test]
fn no_corrupt_bytes() {
    let (data, file, outboard) = content(40_000, 7);
    let geometry = Geometry::new(file).expect("small");
    let honest = ChunkResponse::encode(&geometry, 0..2, &data[..], &outboard[..]).expect("intact");
    let mut flipped = honest.encoded.to_vec();
    flipped[100] ^= 1;
    let corrupt = ChunkResponse { encoded: flipped.into(), ..honest.clone() };
    let served = |response| F::Served {
        node: Some(NodeId(1)),
        applied: LogIndex(5),
        to: UserId([1; 32]),
        file,
        response,
    };
    let fine = vec![
        F::Created { file, content: &data },
        served(&honest),
        F::Written { file, offset: 16_384, data: &data[16_384..32_768] },
    ];
    assert_eq!(objection(&mut FilesNoCorruptBytes::default(), fine), None);
    let bad_serve = vec![F::Created { file, content: &data }, served(&corrupt)];
    assert!(objection(&mut FilesNoCorruptBytes::default(), bad_serve).is_some());
    let wrong = vec![8u8; 100];
    let bad_write =
        vec![F::Created { file, content: &data }, F::Written { file, offset: 0, data: &wrong }];
    assert!(objection(&mut FilesNoCorruptBytes::default(), bad_write).is_some());
}

#[test]
fn retrievable() {
    let (_, a, _) = content(10, 1);
    let (_, b, _) = content(10, 2);
    let room = room();
    let sent =
        || vec![F::Sent { file: a, room: &room, seq: 3 }, F::Sent { file: b, room: &room, seq: 4 }];
    let all = [(a, Ok(())), (b, Ok(()))];
    let mut fine = sent();
    fine.push(F::Settled { fetched: &all });
    assert_eq!(objection(&mut FilesRetrievable::default(), fine), None);
    // A file whose deletion was asked for need not be there.
    let only_a = [(a, Ok(()))];
    let mut deleted = sent();
    deleted.push(F::DeleteSubmitted { room: &room, seq: 4 });
    deleted.push(F::Settled { fetched: &only_a });
    assert_eq!(objection(&mut FilesRetrievable::default(), deleted), None);
    let failed = [(a, Ok(())), (b, Err("no source".to_string()))];
    for fetched in [&only_a[..], &failed[..]] {
        let mut broken = sent();
        broken.push(F::Settled { fetched });
        assert!(objection(&mut FilesRetrievable::default(), broken).is_some());
    }
}

#[test]
fn deleted_not_served() {
    let (data, file, outboard) = content(10, 1);
    let geometry = Geometry::new(file).expect("small");
    let response = ChunkResponse::encode(&geometry, 0..1, &data[..], &outboard[..]).expect("ok");
    let room = room();
    let served = |applied| F::Served {
        node: Some(NodeId(2)),
        applied: LogIndex(applied),
        to: UserId([1; 32]),
        file,
        response: &response,
    };
    let history = |twice: bool| {
        let mut h = vec![F::SendSubmitted { file }, F::Sent { file, room: &room, seq: 3 }];
        if twice {
            h.push(F::SendSubmitted { file });
            h.push(F::Sent { file, room: &room, seq: 5 });
        }
        h.push(F::Deleted { room: &room, seq: 3, applied: LogIndex(40) });
        h
    };
    // Lagging behind the deletion, or another message still shows it.
    for (twice, applied) in [(false, 39), (true, 50)] {
        let mut fine = history(twice);
        fine.push(served(applied));
        assert_eq!(objection(&mut FilesDeletedNotServed::default(), fine), None);
    }
    let mut broken = history(false);
    broken.push(served(40));
    assert!(objection(&mut FilesDeletedNotServed::default(), broken).is_some());
}

#[test]
fn no_reclaim_while_referenced() {
    let (_, file, _) = content(10, 1);
    let room = room();
    let removed = |why| F::Removed { node: NodeId(1), file, why };
    let sent =
        || vec![F::Sent { file, room: &room, seq: 3 }, F::Sent { file, room: &room, seq: 4 }];
    let mut fine = sent();
    fine.push(F::DeleteSubmitted { room: &room, seq: 3 });
    fine.push(removed(BlobRemoval::Damaged));
    fine.push(F::DeleteSubmitted { room: &room, seq: 4 });
    fine.push(removed(BlobRemoval::Released));
    assert_eq!(objection(&mut FilesNoReclaimWhileReferenced::default(), fine), None);
    let mut broken = sent();
    broken.push(F::DeleteSubmitted { room: &room, seq: 3 });
    broken.push(removed(BlobRemoval::Released));
    assert!(objection(&mut FilesNoReclaimWhileReferenced::default(), broken).is_some());
}
