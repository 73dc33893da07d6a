//! Property tests of the durable format: whatever batches are written, and
//! wherever the last write is torn, recovery returns exactly the replay of
//! the batches that fully landed.

use bytes::Bytes;
use kith_core::durable::{encode_batch, recover, DurableHardState, Record};
use kith_core::wire::{WireEntry, WireEntryPayload, WireSnapshotMeta};
use proptest::prelude::*;

/// A reference replay: what the log should hold after `records`.
fn model(batches: &[Vec<Record>]) -> (Option<u64>, Vec<(u64, u64)>, DurableHardState) {
    let (mut snap, mut entries, mut hs) =
        (None, Vec::<(u64, u64)>::new(), DurableHardState::default());
    for r in batches.iter().flatten() {
        match r {
            Record::HardState(h) => hs = *h,
            Record::Snapshot { meta, .. } => {
                snap = Some(meta.index);
                entries.clear();
            }
            Record::Removed(_) => {}
            Record::Entries(es) => {
                let first = es[0].index;
                entries.retain(|(i, _)| *i < first);
                entries.extend(es.iter().map(|e| (e.index, e.term)));
            }
        }
    }
    (snap, entries, hs)
}

#[derive(Debug, Clone)]
enum Op {
    Append { count: u8, term: u64 },
    Overwrite { back: u8, term: u64 },
    Snapshot,
    Hard(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u8..5, 1u64..4).prop_map(|(count, term)| Op::Append { count, term }),
        (0u8..4, 1u64..4).prop_map(|(back, term)| Op::Overwrite { back, term }),
        Just(Op::Snapshot),
        (0u64..100).prop_map(Op::Hard),
    ]
}

fn entry(index: u64, term: u64) -> WireEntry {
    WireEntry {
        index,
        term,
        payload: WireEntryPayload::Normal(Bytes::from(vec![index as u8; 9])),
        context: Bytes::new(),
    }
}

/// Turns ops into valid batches (contiguous entries, never below a snapshot).
fn batches(ops: &[Op]) -> Vec<Vec<Record>> {
    let (mut snap, mut last) = (0u64, 0u64);
    ops.iter()
        .map(|op| match *op {
            Op::Append { count, term } => {
                let es: Vec<_> = (1..=count as u64).map(|k| entry(last + k, term)).collect();
                last += count as u64;
                vec![Record::Entries(es)]
            }
            Op::Overwrite { back, term } => {
                let first = last.saturating_sub(back as u64).max(snap + 1);
                last = first;
                vec![Record::Entries(vec![entry(first, term)])]
            }
            Op::Snapshot => {
                snap = last;
                let meta = WireSnapshotMeta { index: snap, term: 1, ..Default::default() };
                vec![Record::Snapshot { meta, data: Bytes::from_static(b"state") }]
            }
            Op::Hard(t) => {
                vec![Record::HardState(DurableHardState { term: t, vote: 1, commit: 0 })]
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn recovery_equals_replay_of_landed_batches(ops in prop::collection::vec(op(), 1..30), tear in any::<prop::sample::Index>()) {
        let batches = batches(&ops);
        let mut disk = Vec::new();
        let mut ends = vec![0];
        for b in &batches {
            disk.extend(encode_batch(b));
            ends.push(disk.len());
        }
        // Tear somewhere inside the last batch.
        let last_start = ends[ends.len() - 2];
        let cut = last_start + tear.index(disk.len() - last_start);
        let log = recover(&[&disk[..cut]]).expect("a torn tail always recovers");
        let (snap, entries, hs) = model(&batches[..batches.len() - 1]);
        prop_assert_eq!(log.snapshot.map(|(m, _)| m.index), snap);
        prop_assert_eq!(log.entries.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(), entries);
        prop_assert_eq!(log.hard_state, hs);
        prop_assert_eq!(log.last_segment_valid_bytes, last_start);
        let whole = recover(&[&disk]).expect("clean");
        let (snap, entries, _) = model(&batches);
        prop_assert_eq!(whole.snapshot.map(|(m, _)| m.index), snap);
        prop_assert_eq!(whole.entries.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(), entries);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    /// The `log_recovery` fuzz target's damaged-log mode, on random inputs.
    #[test]
    fn damaged_logs_are_truncated_or_reported(data in prop::collection::vec(any::<u8>(), 0..48)) {
        let mut input = vec![1u8];
        input.extend(data);
        kith_core::testing::fuzz::log_recovery(&input);
    }
}
