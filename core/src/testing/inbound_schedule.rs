//! What the `raft_inbound` fuzz target feeds a harness cluster: time,
//! client writes, raw bytes and forged (well-typed, arbitrary-field) Raft
//! messages, as a list of [`InboundStep`]s. The steps come either from
//! `arbitrary` or from the dense byte decoding the target started with
//! (kept so that its committed crash inputs replay the same scenarios).

use super::cluster::{Cluster, ClusterConfig};
use super::invariant::Invariants;
use super::list_machine::{Append, ListMachine};
use super::violation::Violation;
use crate::ids::NodeId;
use crate::wire::{PeerBody, PeerFrame, WireEntry, WireEntryPayload, WireMessage, WireMessageKind};
use arbitrary::{Arbitrary, Unstructured};
use std::time::Duration;

/// A number biased towards the values that break Raft code: small ones
/// (near real terms and indexes), a few thousand, 2^32 multiples, and the
/// top of the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edgy(pub u64);

impl Edgy {
    fn from_bytes(mut next: impl FnMut() -> Option<u8>) -> Option<Edgy> {
        let b = next()?;
        Some(Edgy(match b >> 6 {
            0 => u64::from(b & 0x3f),
            1 => u64::from(b & 0x3f) + 64 * u64::from(next()?),
            2 => u64::from(next()?) << 32,
            _ => u64::MAX - u64::from(b & 0x3f),
        }))
    }
}

impl<'a> Arbitrary<'a> for Edgy {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Edgy> {
        let mut next = || u8::arbitrary(u).ok();
        Ok(Edgy::from_bytes(&mut next).unwrap_or(Edgy(0)))
    }
}

/// One thing that happens to the cluster.
#[derive(Clone, Debug, Arbitrary)]
pub enum InboundStep {
    /// Time passes (milliseconds).
    Wait(u8),
    /// A client appends through the leader.
    Write,
    /// Raw bytes arrive as a frame from `from` to `to` (replica index mod 3).
    Raw {
        /// Claimed sender.
        from: u8,
        /// Receiver.
        to: u8,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A forged Raft message arrives.
    Forged {
        /// Claimed sender.
        from: u8,
        /// Receiver.
        to: u8,
        /// Message kind (index into the kinds, mod 13).
        kind: u8,
        /// Fields.
        term: Edgy,
        /// Term of the entry before `index`.
        log_term: Edgy,
        /// Index of the entry before the carried entries.
        index: Edgy,
        /// Leader's commit.
        commit: Edgy,
        /// Reject hint (odd: a rejection).
        reject_hint: Edgy,
        /// Number of entries (mod 4).
        entries: Edgy,
    },
}

const KINDS: [WireMessageKind; 13] = [
    WireMessageKind::Append,
    WireMessageKind::AppendResponse,
    WireMessageKind::RequestVote,
    WireMessageKind::RequestVoteResponse,
    WireMessageKind::RequestPreVote,
    WireMessageKind::RequestPreVoteResponse,
    WireMessageKind::Snapshot,
    WireMessageKind::Heartbeat,
    WireMessageKind::HeartbeatResponse,
    WireMessageKind::TransferLeader,
    WireMessageKind::TimeoutNow,
    WireMessageKind::ReadIndex,
    WireMessageKind::ReadIndexResponse,
];

impl InboundStep {
    /// The dense decoding: an op byte picks the step (`op % 4`) and the
    /// replicas (`op % 3`, `op / 3 % 3`); the step's fields follow.
    pub fn decode_dense(data: &[u8]) -> Vec<InboundStep> {
        let mut input = data.iter().copied();
        let mut steps = Vec::new();
        while let Some(op) = input.next() {
            let (from, to) = (op % 3, (op / 3) % 3);
            steps.push(match op % 4 {
                0 => InboundStep::Wait(input.next().unwrap_or(0)),
                1 => InboundStep::Write,
                2 => {
                    let Some(len) = input.next() else { break };
                    let bytes = (0..len).map_while(|_| input.next()).collect();
                    InboundStep::Raw { from, to, bytes }
                }
                _ => {
                    let kind = input.next().unwrap_or(0);
                    let mut field = || Edgy::from_bytes(|| input.next()).unwrap_or(Edgy(0));
                    let (term, log_term, index, commit) = (field(), field(), field(), field());
                    let (reject_hint, entries) = (field(), field());
                    InboundStep::Forged {
                        from,
                        to,
                        kind,
                        term,
                        log_term,
                        index,
                        commit,
                        reject_hint,
                        entries,
                    }
                }
            });
        }
        steps
    }
}

fn replica(n: u8) -> NodeId {
    NodeId(u64::from(n % 3) + 1)
}

/// Runs `steps` against a 3-replica harness cluster. Forged messages can
/// make honest replicas disagree about who leads (a forged vote is
/// indistinguishable from a real one), so only a halt or a panic is a
/// failure, and the cluster runs without invariant checkers.
pub fn run_inbound(steps: &[InboundStep]) -> Result<(), Violation> {
    let config = ClusterConfig::new(7, 3, Invariants::default);
    let Ok(mut cluster) = Cluster::<ListMachine>::new(config) else {
        return Ok(());
    };
    let mut value = 0;
    for step in steps {
        let result = match step {
            InboundStep::Wait(ms) => cluster.run_for(Duration::from_millis(u64::from(*ms))),
            InboundStep::Write => {
                value += 1;
                if let Some(leader) = cluster.leader() {
                    let _ = cluster.submit(leader, &Append { list: 0, value });
                }
                Ok(())
            }
            InboundStep::Raw { from, to, bytes } => {
                cluster.inject_frame(replica(*from), replica(*to), bytes.clone().into());
                Ok(())
            }
            InboundStep::Forged { from, to, .. } => {
                let frame = forge(step).expect("a forged step");
                cluster.inject_frame(replica(*from), replica(*to), frame.encode());
                Ok(())
            }
        };
        if let Err(v) = result {
            return if v.invariant == "no halt" { Err(v) } else { Ok(()) };
        }
    }
    Ok(())
}

fn forge(step: &InboundStep) -> Option<PeerFrame> {
    let InboundStep::Forged { from, to, kind, term, log_term, index, commit, reject_hint, entries } =
        *step
    else {
        return None;
    };
    let entries = (0..entries.0 % 4)
        .map(|i| WireEntry {
            term: log_term.0,
            index: index.0.saturating_add(1 + i),
            payload: WireEntryPayload::Normal(bytes::Bytes::new()),
            context: bytes::Bytes::new(),
        })
        .collect();
    let m = WireMessage {
        kind: KINDS[usize::from(kind) % KINDS.len()],
        term: term.0,
        log_term: log_term.0,
        index: index.0,
        entries,
        commit: commit.0,
        commit_term: 0,
        snapshot: None,
        request_snapshot: 0,
        reject: reject_hint.0 % 2 == 1,
        reject_hint: reject_hint.0,
        context: bytes::Bytes::new(),
        priority: 0,
    };
    Some(PeerFrame { from: replica(from), to: replica(to), body: PeerBody::Raft(m) })
}
