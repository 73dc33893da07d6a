//! The codec end to end: a stored copy and its outboard encode any range of
//! groups, the receiver takes exactly those back, and no single flipped,
//! dropped or added byte gets through.

use super::tests_support::{content, stored};
use super::*;
use crate::limits::CHUNK_GROUP_BYTES as G;
use proptest::prelude::*;
use std::ops::Range;

/// Sizes at every edge of a group, and a few groups.
fn sizes() -> impl Strategy<Value = u64> {
    prop_oneof![Just(1), Just(G - 1), Just(G), Just(G + 1), Just(3 * G + 7), 1..20 * G]
}

#[test]
fn the_outboard_refuses_data_that_is_not_the_file() {
    let data = content(3 * G, 1);
    let (geometry, _) = stored(&data);
    let mut other = data.clone();
    other[G as usize] ^= 1;
    assert!(matches!(
        build_outboard(&geometry, &other[..], Vec::new()),
        Err(OutboardError::Mismatch { .. })
    ));
    assert!(matches!(
        build_outboard(&geometry, &data[..data.len() - 1], Vec::new()),
        Err(OutboardError::Io(_))
    ));
    let empty = Geometry::new(FileId::of(b"")).expect("in range");
    build_outboard(&empty, &b""[..], Vec::new()).expect("the empty file has an outboard");
}

#[test]
fn a_sender_gets_the_id_and_the_tree_in_one_pass() {
    for size in [0, 1, G - 1, G, G + 1, 5 * G + 3] {
        let data = content(size, 2);
        let (geometry, outboard) = stored(&data);
        let mut mine = Vec::new();
        let id = outboard_of(size, &data[..], &mut mine).expect("reads");
        assert_eq!(id, FileId::of(&data), "size {size}");
        assert_eq!(mine, outboard, "size {size}");
        let all = 0..geometry.groups();
        if !all.is_empty() {
            let served = ChunkResponse::encode(&geometry, all.clone(), &data[..], &mine[..]);
            served.expect("intact").decode(&geometry, &all).expect("verifies");
        }
    }
    assert!(matches!(
        outboard_of(G, &content(G - 1, 2)[..], Vec::new()),
        Err(OutboardError::Io(_))
    ));
    assert!(outboard_of(u64::MAX, &b""[..], Vec::new()).is_err(), "over the limit");
}

#[test]
fn a_damaged_copy_is_never_served() {
    let data = content(5 * G, 2);
    let (geometry, outboard) = stored(&data);
    let mut damaged = data.clone();
    damaged[2 * G as usize + 5] ^= 0x80;
    let whole = 0..geometry.groups();
    assert!(matches!(
        ChunkResponse::encode(&geometry, whole.clone(), &damaged[..], &outboard[..]),
        Err(ServeError::Damaged { offset }) if offset == 2 * G
    ));
    // The groups before the damage still serve.
    ChunkResponse::encode(&geometry, 0..2, &damaged[..], &outboard[..]).expect("intact groups");
    let mut bad_tree = outboard.clone();
    bad_tree[0] ^= 1;
    assert!(ChunkResponse::encode(&geometry, whole.clone(), &data[..], &bad_tree[..]).is_err());
    assert!(matches!(
        ChunkResponse::encode(&geometry, 4..6, &data[..], &outboard[..]),
        Err(ServeError::OutOfRange { .. })
    ));
}

#[test]
fn responses_outside_the_request_or_padded_are_refused() {
    let data = content(4 * G, 3);
    let (geometry, outboard) = stored(&data);
    let response = ChunkResponse::encode(&geometry, 1..3, &data[..], &outboard[..]).expect("ok");
    assert!(matches!(response.decode(&geometry, &(2..4)), Err(ChunkRefusal::OutOfRange { .. })));
    let empty = ChunkResponse { group_count: 0, ..response.clone() };
    assert!(matches!(empty.decode(&geometry, &(1..3)), Err(ChunkRefusal::OutOfRange { .. })));
    let mut padded = response.encoded.to_vec();
    padded.push(0);
    let padded = ChunkResponse { encoded: padded.into(), ..response.clone() };
    assert_eq!(
        padded.decode(&geometry, &(1..3)),
        Err(ChunkRefusal::TrailingBytes { extra_bytes: 1 })
    );
    let huge = ChunkResponse {
        encoded: vec![0; crate::limits::CHUNK_RESPONSE_BYTES_MAX as usize + 1].into(),
        ..response.clone()
    };
    assert!(matches!(huge.decode(&geometry, &(1..3)), Err(ChunkRefusal::Oversized { .. })));
    // Claiming fewer groups than it carries leaves trailing bytes; more, a truncation.
    let fewer = ChunkResponse { group_count: 1, ..response.clone() };
    assert!(fewer.decode(&geometry, &(1..3)).is_err());
    let more = ChunkResponse { first_group: 1, group_count: 3, ..response };
    assert!(more.decode(&geometry, &(1..4)).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any range of any file decodes to exactly its bytes.
    #[test]
    fn every_range_round_trips(size in sizes(), a in 0u64..32, b in 0u64..32, seed: u8) {
        let data = content(size, seed);
        let (geometry, outboard) = stored(&data);
        let n = geometry.groups();
        let (a, b) = (a % n, b % n);
        // At most what one request may ask (seed: 17 groups of a 285,633
        // byte file were once drawn, which no honest request asks).
        let low = a.min(b);
        let groups: Range<u64> = low..(a.max(b) + 1).min(low + crate::limits::GROUPS_PER_REQUEST_MAX);
        let response = ChunkResponse::encode(&geometry, groups.clone(), &data[..], &outboard[..])
            .expect("a sound copy serves");
        let verified = response.decode(&geometry, &groups).expect("an honest response decodes");
        let bytes = geometry.groups_bytes(&groups);
        prop_assert_eq!(verified.offset, bytes.start);
        prop_assert_eq!(&verified.data[..], &data[bytes.start as usize..bytes.end as usize]);
        prop_assert_eq!(verified.groups, groups);
    }

    /// Flipping any bit, cutting or extending the encoding is always refused.
    #[test]
    fn no_damaged_response_is_accepted(size in sizes(), at: prop::sample::Index, bit in 0u8..8, cut in 1usize..100) {
        let data = content(size, 9);
        let (geometry, outboard) = stored(&data);
        let groups = 0..geometry.groups().min(crate::limits::GROUPS_PER_REQUEST_MAX);
        let honest = ChunkResponse::encode(&geometry, groups.clone(), &data[..], &outboard[..])
            .expect("a sound copy serves");
        let mut flipped = honest.encoded.to_vec();
        let i = at.index(flipped.len());
        flipped[i] ^= 1 << bit;
        let flipped = ChunkResponse { encoded: flipped.into(), ..honest.clone() };
        prop_assert!(flipped.decode(&geometry, &groups).is_err());
        let cut = cut.min(honest.encoded.len());
        let short = ChunkResponse { encoded: honest.encoded.slice(..honest.encoded.len() - cut), ..honest.clone() };
        prop_assert!(short.decode(&geometry, &groups).is_err());
    }

    /// Responses that tile a file, cut anywhere and taken from any point on,
    /// bring every pair of its outboard: landed, they are the outboard a
    /// pass over the data builds, and its top pair hashes to the root.
    #[test]
    fn the_pairs_of_responses_that_tile_a_file_are_its_outboard(
        size in prop_oneof![Just(2 * G), Just(2 * G + 1), Just(17 * G), 1..200 * G],
        cuts in prop::collection::vec(1u64..=crate::limits::GROUPS_PER_REQUEST_MAX, 1..64),
        order: prop::sample::Index,
    ) {
        let data = content(size, 4);
        let (geometry, outboard) = stored(&data);
        let n = geometry.groups();
        let mut ranges = Vec::new();
        let mut start = 0;
        for len in cuts.iter().cycle() {
            if start == n {
                break;
            }
            let end = (start + len).min(n);
            ranges.push(start..end);
            start = end;
        }
        let first = order.index(ranges.len());
        ranges.rotate_left(first);
        let mut assembled = vec![0; outboard.len()];
        for groups in ranges {
            let response = ChunkResponse::encode(&geometry, groups.clone(), &data[..], &outboard[..])
                .expect("a sound copy serves");
            let verified = response.decode(&geometry, &groups).expect("an honest response decodes");
            verified.hash_pairs.land(&mut assembled);
        }
        prop_assert!(assembled == outboard, "the assembled outboard differs");
        if let Some(at) = assembled.len().checked_sub(HASH_PAIR_BYTES) {
            let top: &[u8; HASH_PAIR_BYTES] = assembled[at..].try_into().expect("64 bytes");
            prop_assert!(top_pair_matches(&geometry, top));
            let mut wrong = *top;
            wrong[0] ^= 1;
            prop_assert!(!top_pair_matches(&geometry, &wrong));
        }
    }
}
