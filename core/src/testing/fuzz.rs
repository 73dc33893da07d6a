//! The checks behind the fuzz targets, shared with `cargo test`, which
//! replays every committed corpus input (fuzz/corpus/<target>/) through them.
//! Each function panics when its property is broken, as a fuzz target must.

use super::invariant::Invariants;
use crate::durable::recover;
use crate::wire::client_protocol::{RequestFrame, ResponseFrame};
use crate::wire::PeerFrame;

/// Decodes `data` with a versioned replica-protocol decoder; what decodes
/// must survive a round trip unchanged.
fn replica_round_trip<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    use crate::wire::replica_protocol::{decode, encode};
    if let Ok(value) = decode::<T>(data) {
        let again: T = decode(&encode(&value)).expect("a re-encoded frame decodes");
        assert_eq!(again, value);
    }
}

/// `wire_decode`: every decoder that sees network bytes (Raft frames, the
/// client protocol, the live-subscription stream, the replica and admin
/// protocols, the chunk protocol, gossiped presence) never panics, and what decodes survives an
/// encode/decode round trip unchanged. Sizes are bounded by the decoders'
/// frame limit, checked before decoding.
pub fn wire_decode(data: &[u8]) {
    use crate::im::presence::SignedPresence;
    use crate::wire::client_protocol::{LiveFrame, SubscribeFrame};
    use crate::wire::replica_protocol::{
        AdminRequest, AdminResponse, PeerRequest, PeerResponse, ReplicaRecord,
    };
    if let Ok(frame) = SubscribeFrame::decode(data) {
        assert_eq!(SubscribeFrame::decode(&frame.encode()).as_ref(), Ok(&frame));
    }
    if let Ok(frame) = LiveFrame::decode(data) {
        assert_eq!(LiveFrame::decode(&frame.encode()).as_ref(), Ok(&frame));
    }
    replica_round_trip::<PeerRequest>(data);
    replica_round_trip::<PeerResponse>(data);
    replica_round_trip::<AdminRequest>(data);
    replica_round_trip::<AdminResponse>(data);
    replica_round_trip::<SignedPresence>(data);
    replica_round_trip::<crate::im::typing::SignedTyping>(data);
    replica_round_trip::<Vec<ReplicaRecord>>(data);
    {
        use crate::wire::chunk_protocol::{ChunkAnswer, ChunkRequest};
        if let Ok(request) = ChunkRequest::decode(data) {
            assert_eq!(ChunkRequest::decode(&request.encode()).as_ref(), Ok(&request));
        }
        if let Ok(answer) = ChunkAnswer::decode(data) {
            assert_eq!(ChunkAnswer::decode(&answer.encode()).as_ref(), Ok(&answer));
        }
    }
    if let Ok(frame) = PeerFrame::decode(data) {
        let again = PeerFrame::decode(&frame.encode()).expect("a re-encoded peer frame decodes");
        assert_eq!(again, frame);
    }
    if let Ok(frame) = RequestFrame::decode(data) {
        let again = RequestFrame::decode(&frame.encode()).expect("a re-encoded request decodes");
        assert_eq!(again, frame);
    }
    if let Ok(frame) = ResponseFrame::decode(data) {
        let again = ResponseFrame::decode(&frame.encode()).expect("a re-encoded response decodes");
        assert_eq!(again, frame);
    }
}

/// `log_recovery`: two modes, chosen by the first byte.
///
/// - Garbage: arbitrary bytes, split into two segments, never make recovery
///   panic, and what it returns is a contiguous log within the bytes given.
/// - Damaged valid log: a valid log of batches built from the input is torn
///   at one byte and has one byte flipped. Recovery never panics, never
///   returns anything from a damaged batch, never drops an intact batch
///   silently: damage in the last batch is a torn tail (truncated), damage
///   before it is reported as corruption.
pub fn log_recovery(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        log_recovery_garbage(rest);
    } else {
        log_recovery_damaged(rest);
    }
}

fn log_recovery_damaged(data: &[u8]) {
    use crate::durable::{encode_batch, DurableHardState, Record, RecoveryError};
    use crate::wire::{WireEntry, WireEntryPayload};
    let mut input = Bytes(data);
    let (Some(batches), Some(tear), Some(flip)) = (input.byte(), input.u64(), input.u64()) else {
        return;
    };
    let mut disk = Vec::new();
    let mut ends = Vec::new();
    let mut next_index = 1;
    for b in 0..(batches % 8 + 1) {
        let n = input.byte().unwrap_or(1) % 4 + 1;
        let entries: Vec<WireEntry> = (0..u64::from(n))
            .map(|i| WireEntry {
                term: 1,
                index: next_index + i,
                payload: WireEntryPayload::Normal(bytes::Bytes::from(vec![b; usize::from(n) * 7])),
                context: bytes::Bytes::new(),
            })
            .collect();
        next_index += u64::from(n);
        let hs = DurableHardState { term: 1, vote: 1, commit: next_index - 1 };
        disk.extend(encode_batch(&[Record::Entries(entries), Record::HardState(hs)]));
        ends.push(disk.len());
    }
    // Tear: keep a prefix. Flip: damage one byte of what is kept (or none).
    let kept = (tear as usize) % (disk.len() + 1);
    disk.truncate(kept);
    let flipped = (flip as usize).checked_rem(disk.len()).filter(|_| flip % 3 != 0);
    if let Some(at) = flipped {
        disk[at] ^= 0x5a;
    }
    let intact_before = |limit: usize| ends.iter().take_while(|e| **e <= limit).count();
    let whole = intact_before(kept);
    let damaged = flipped.map(|at| ends.iter().position(|e| at < *e).expect("inside the log"));
    match (recover(&[&disk]), damaged) {
        (Ok(log), None) => {
            // Only a tear: every whole batch, nothing of the torn one.
            let expected = ends[..whole].len();
            let got_batches =
                ends.iter().take_while(|e| **e <= log.last_segment_valid_bytes).count();
            assert_eq!(got_batches, expected, "a torn log lost or invented batches");
            assert_eq!(log.last_segment_valid_bytes, if whole == 0 { 0 } else { ends[whole - 1] });
        }
        (Ok(log), Some(bad)) => {
            // Damage is only acceptable as a torn tail: nothing from the
            // damaged batch or after it may come back.
            assert!(bad + 1 >= whole, "damage before the last batch went unreported");
            let start = if bad == 0 { 0 } else { ends[bad - 1] };
            assert_eq!(log.last_segment_valid_bytes, start, "a damaged batch was returned");
        }
        (Err(RecoveryError::Corrupt { offset, .. }), Some(bad)) => {
            let start = if bad == 0 { 0 } else { ends[bad - 1] };
            assert_eq!(offset, start, "corruption reported at the wrong batch");
        }
        (Err(e), damaged) => panic!("unexpected recovery error {e} (damage in batch {damaged:?})"),
    }
}

fn log_recovery_garbage(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else { return };
    let at = (split as usize * rest.len()) / 256;
    let (a, b) = rest.split_at(at);
    for segments in [vec![rest], vec![a, b]] {
        if let Ok(log) = recover(&segments) {
            assert!(log.entries.windows(2).all(|w| w[1].index == w[0].index + 1));
            let last = segments.last().map_or(0, |s| s.len());
            assert!(log.last_segment_valid_bytes + log.torn_tail_bytes <= last);
        }
    }
}

/// Reads fuzz input as a stream of small numbers.
pub(crate) struct Bytes<'a>(pub(crate) &'a [u8]);

impl Bytes<'_> {
    pub(crate) fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u64(&mut self) -> Option<u64> {
        // Small values are the interesting ones near real indexes and terms.
        let b = self.byte()?;
        Some(match b >> 6 {
            0 => u64::from(b & 0x3f),
            1 => u64::from(b & 0x3f) + 64 * u64::from(self.byte()?),
            2 => u64::from(self.byte()?) << 32,
            _ => u64::MAX - u64::from(b & 0x3f),
        })
    }
}

/// `raft_inbound`: forged (well-typed but arbitrary) and malformed peer
/// frames, interleaved with time passing and client writes, fed to a
/// 3-replica harness cluster: no panic and no replica halts. It runs with
/// no invariant checkers: a forged vote is indistinguishable from a real
/// one, so forged frames may rightly make replicas disagree about who
/// leads. The first byte picks
/// the decoding: even, the dense form the committed crash inputs use; odd,
/// `arbitrary` (`Vec<InboundStep>`).
pub fn raft_inbound(data: &[u8]) {
    use super::inbound_schedule::{run_inbound, InboundStep};
    use arbitrary::{Arbitrary, Unstructured};
    let Some((&mode, rest)) = data.split_first() else { return };
    let steps = if mode % 2 == 0 {
        InboundStep::decode_dense(rest)
    } else {
        let Ok(steps) = Vec::<InboundStep>::arbitrary_take_rest(Unstructured::new(rest)) else {
            return;
        };
        steps
    };
    if let Err(v) = run_inbound(&steps) {
        panic!("{v}");
    }
}

/// `im_apply`: a command sequence against the IM state machine and its
/// reference model: results and visible histories agree, and snapshots
/// taken at the points the input chooses (`Op::Checkpoint`) restore to an
/// equal digest and carry on. The first byte picks the decoding: even, the
/// dense 3-bytes-per-command form the model test shares; odd, `arbitrary`
/// (`Vec<Op>`, fields brought into range).
pub fn im_apply(data: &[u8]) {
    use super::im_model::{check, Op};
    use arbitrary::{Arbitrary, Unstructured};
    let Some((&mode, rest)) = data.split_first() else { return };
    let ops = if mode % 2 == 0 {
        Op::decode_all(rest)
    } else {
        let Ok(ops) = Vec::<Op>::arbitrary_take_rest(Unstructured::new(rest)) else { return };
        ops.iter().map(Op::normalized).collect()
    };
    check(&ops);
}

/// `cluster_ops`: a fuzzer-chosen schedule (decoded with `arbitrary`) of
/// crashes, restarts, partitions, leadership transfers, membership changes
/// and time, while list-append clients write and read, on the in-memory
/// harness: every invariant `invariants` builds holds after every step, and
/// after healing the cluster converges with a linearizable history.
pub fn cluster_ops(data: &[u8], invariants: fn() -> Invariants) {
    use super::fault_schedule::{run_fault_schedule, FaultSchedule};
    use arbitrary::{Arbitrary, Unstructured};
    let Ok(schedule) = FaultSchedule::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    if let Err(violation) = run_fault_schedule(&schedule, invariants) {
        panic!("{schedule:?} broke {violation:?}");
    }
}

/// `file_download`: a download under an input-chosen schedule of honest,
/// damaged and input-written answers, late and made-up ones, write
/// failures, saves, time and crashes
/// ([`super::download_schedule::run_download`]): no panic, every byte
/// written is the file's, every saved record claims only synced groups.
pub fn file_download(data: &[u8]) {
    let _completed = super::download_schedule::run_download(data);
}
