//! kith's own serde mirror of raft-rs's protobuf `Message`.
//!
//! raft-rs's protobuf 2.x parser has RUSTSEC-2024-0437 (stack overflow on
//! untrusted input), so protobuf bytes never cross the wire: outgoing messages
//! are mapped field by field into these types and encoded with postcard, and
//! incoming ones are validated and mapped back. Conf-change entries, whose
//! payload raft-rs encodes as protobuf, travel as [`WireConfChange`] and are
//! re-encoded locally on arrival (protobuf encoding of the same message is
//! byte-for-byte deterministic, so logs still match).

use super::FrameError;
use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, Entry,
    EntryType, Message, MessageType, Snapshot, SnapshotMetadata,
};
use serde::{Deserialize, Serialize};

/// The Raft message kinds that may cross the wire. Local-only kinds (hup,
/// beat, unreachable, snapshot status, check-quorum, propose) are absent on
/// purpose: a peer cannot inject them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum WireMessageKind {
    Append,
    AppendResponse,
    RequestVote,
    RequestVoteResponse,
    RequestPreVote,
    RequestPreVoteResponse,
    Snapshot,
    Heartbeat,
    HeartbeatResponse,
    TransferLeader,
    TimeoutNow,
    ReadIndex,
    ReadIndexResponse,
}

/// One log entry on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    /// Entry term.
    pub term: u64,
    /// Entry index.
    pub index: u64,
    /// The entry's payload.
    pub payload: WireEntryPayload,
    /// raft-rs entry context (opaque; empty in kith).
    pub context: Bytes,
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireEntryPayload {
    /// A normal entry: kith's own encoded batch (or empty for a leader's no-op).
    Normal(Bytes),
    /// A membership change.
    ConfChange(WireConfChange),
}

/// Mirror of `ConfChangeV2`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireConfChange {
    /// 0 auto, 1 implicit, 2 explicit.
    pub transition: u8,
    /// (kind, node): kind 0 add voter, 1 remove, 2 add learner.
    pub changes: Vec<(u8, u64)>,
    /// Opaque context.
    pub context: Bytes,
}

/// Mirror of `ConfState`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct WireConfState {
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub voters_outgoing: Vec<u64>,
    pub learners_next: Vec<u64>,
    pub auto_leave: bool,
}

/// Mirror of `SnapshotMetadata`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct WireSnapshotMeta {
    pub index: u64,
    pub term: u64,
    pub conf_state: WireConfState,
}

/// Mirror of raft-rs `Message`. A snapshot's data never rides in it: it is
/// carried separately in chunk frames and re-attached on arrival.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct WireMessage {
    pub kind: WireMessageKind,
    pub term: u64,
    pub log_term: u64,
    pub index: u64,
    pub entries: Vec<WireEntry>,
    pub commit: u64,
    pub commit_term: u64,
    pub snapshot: Option<WireSnapshotMeta>,
    pub request_snapshot: u64,
    pub reject: bool,
    pub reject_hint: u64,
    pub context: Bytes,
    pub priority: i64,
}

impl WireMessageKind {
    fn from_raft(t: MessageType) -> Option<WireMessageKind> {
        use MessageType as M;
        use WireMessageKind as W;
        Some(match t {
            M::MsgAppend => W::Append,
            M::MsgAppendResponse => W::AppendResponse,
            M::MsgRequestVote => W::RequestVote,
            M::MsgRequestVoteResponse => W::RequestVoteResponse,
            M::MsgRequestPreVote => W::RequestPreVote,
            M::MsgRequestPreVoteResponse => W::RequestPreVoteResponse,
            M::MsgSnapshot => W::Snapshot,
            M::MsgHeartbeat => W::Heartbeat,
            M::MsgHeartbeatResponse => W::HeartbeatResponse,
            M::MsgTransferLeader => W::TransferLeader,
            M::MsgTimeoutNow => W::TimeoutNow,
            M::MsgReadIndex => W::ReadIndex,
            M::MsgReadIndexResp => W::ReadIndexResponse,
            M::MsgHup
            | M::MsgBeat
            | M::MsgPropose
            | M::MsgUnreachable
            | M::MsgSnapStatus
            | M::MsgCheckQuorum => return None,
        })
    }

    fn to_raft(self) -> MessageType {
        use MessageType as M;
        use WireMessageKind as W;
        match self {
            W::Append => M::MsgAppend,
            W::AppendResponse => M::MsgAppendResponse,
            W::RequestVote => M::MsgRequestVote,
            W::RequestVoteResponse => M::MsgRequestVoteResponse,
            W::RequestPreVote => M::MsgRequestPreVote,
            W::RequestPreVoteResponse => M::MsgRequestPreVoteResponse,
            W::Snapshot => M::MsgSnapshot,
            W::Heartbeat => M::MsgHeartbeat,
            W::HeartbeatResponse => M::MsgHeartbeatResponse,
            W::TransferLeader => M::MsgTransferLeader,
            W::TimeoutNow => M::MsgTimeoutNow,
            W::ReadIndex => M::MsgReadIndex,
            W::ReadIndexResponse => M::MsgReadIndexResp,
        }
    }
}

impl WireConfState {
    /// Mirror a raft-rs conf state.
    pub fn from_raft(cs: &ConfState) -> WireConfState {
        WireConfState {
            voters: cs.voters.clone(),
            learners: cs.learners.clone(),
            voters_outgoing: cs.voters_outgoing.clone(),
            learners_next: cs.learners_next.clone(),
            auto_leave: cs.auto_leave,
        }
    }

    /// Back to raft-rs's type.
    pub fn to_raft(&self) -> ConfState {
        ConfState {
            voters: self.voters.clone(),
            learners: self.learners.clone(),
            voters_outgoing: self.voters_outgoing.clone(),
            learners_next: self.learners_next.clone(),
            auto_leave: self.auto_leave,
            ..Default::default()
        }
    }
}

impl WireSnapshotMeta {
    /// Mirror raft-rs snapshot metadata.
    pub fn from_raft(m: &SnapshotMetadata) -> WireSnapshotMeta {
        WireSnapshotMeta {
            index: m.index,
            term: m.term,
            conf_state: WireConfState::from_raft(m.get_conf_state()),
        }
    }

    /// Build a raft-rs snapshot from this metadata and its data.
    pub fn to_raft(&self, data: Bytes) -> Snapshot {
        let mut s = Snapshot::default();
        s.set_data(data);
        let meta = s.mut_metadata();
        meta.index = self.index;
        meta.term = self.term;
        meta.set_conf_state(self.conf_state.to_raft());
        s
    }
}

impl WireConfChange {
    /// Mirror a conf change.
    pub fn from_raft(cc: &ConfChangeV2) -> WireConfChange {
        WireConfChange {
            transition: cc.get_transition() as u8,
            changes: cc
                .get_changes()
                .iter()
                .map(|c| (c.get_change_type() as u8, c.node_id))
                .collect(),
            context: cc.context.clone(),
        }
    }

    /// Back to raft-rs's type; `None` for an unknown transition or change kind.
    pub fn to_raft(&self) -> Option<ConfChangeV2> {
        let mut cc = ConfChangeV2::default();
        cc.set_transition(match self.transition {
            0 => ConfChangeTransition::Auto,
            1 => ConfChangeTransition::Implicit,
            2 => ConfChangeTransition::Explicit,
            _ => return None,
        });
        let mut changes = Vec::with_capacity(self.changes.len());
        for &(kind, node) in &self.changes {
            let mut single = ConfChangeSingle::default();
            single.set_change_type(match kind {
                0 => ConfChangeType::AddNode,
                1 => ConfChangeType::RemoveNode,
                2 => ConfChangeType::AddLearnerNode,
                _ => return None,
            });
            single.node_id = node;
            changes.push(single);
        }
        cc.set_changes(changes.into());
        cc.context = self.context.clone();
        Some(cc)
    }
}

impl WireEntry {
    /// Mirror a log entry. Entries in our own log were encoded by us, so a
    /// conf change that fails to parse is a local bug.
    pub fn from_raft(e: &Entry) -> WireEntry {
        let payload = match e.get_entry_type() {
            EntryType::EntryNormal => WireEntryPayload::Normal(e.data.clone()),
            EntryType::EntryConfChangeV2 | EntryType::EntryConfChange => {
                let cc = decode_local_conf_change(&e.data);
                WireEntryPayload::ConfChange(WireConfChange::from_raft(&cc))
            }
        };
        WireEntry { term: e.term, index: e.index, payload, context: e.context.clone() }
    }

    /// Back to raft-rs's type, re-encoding conf changes with the local encoder.
    pub fn to_raft(&self) -> Result<Entry, FrameError> {
        let mut e = Entry {
            term: self.term,
            index: self.index,
            context: self.context.clone(),
            ..Default::default()
        };
        match &self.payload {
            WireEntryPayload::Normal(data) => {
                e.set_entry_type(EntryType::EntryNormal);
                e.data = data.clone();
            }
            WireEntryPayload::ConfChange(cc) => {
                let cc = cc.to_raft().ok_or(FrameError::Invalid("unknown conf change kind"))?;
                e.set_entry_type(EntryType::EntryConfChangeV2);
                let bytes =
                    cc.write_to_bytes().map_err(|_| FrameError::Invalid("conf change encode"))?;
                e.data = Bytes::from(bytes);
            }
        }
        Ok(e)
    }
}

/// Parses a conf change that this process's own encoder wrote (from our own
/// log or disk, behind a checksum). Never called on bytes from the network.
pub(crate) fn decode_local_conf_change(data: &[u8]) -> ConfChangeV2 {
    ConfChangeV2::parse_from_bytes(data).expect("conf change in the local log was encoded locally")
}

impl WireMessage {
    /// A message of `kind` at `term` with every other field empty (zero,
    /// none, false), to fill in with struct update syntax.
    pub fn new(kind: WireMessageKind, term: u64) -> WireMessage {
        WireMessage {
            kind,
            term,
            log_term: 0,
            index: 0,
            entries: Vec::new(),
            commit: 0,
            commit_term: 0,
            snapshot: None,
            request_snapshot: 0,
            reject: false,
            reject_hint: 0,
            context: Bytes::new(),
            priority: 0,
        }
    }

    /// Mirror an outgoing raft-rs message. Returns `None` for local-only kinds.
    /// The snapshot's data is left out; see the module docs.
    pub fn from_raft(m: &Message) -> Option<WireMessage> {
        let kind = WireMessageKind::from_raft(m.get_msg_type())?;
        let snapshot = m.snapshot.as_ref().map(|s| WireSnapshotMeta::from_raft(s.get_metadata()));
        Some(WireMessage {
            kind,
            term: m.term,
            log_term: m.log_term,
            index: m.index,
            entries: m.entries.iter().map(WireEntry::from_raft).collect(),
            commit: m.commit,
            commit_term: m.commit_term,
            snapshot,
            request_snapshot: m.request_snapshot,
            reject: m.reject,
            reject_hint: m.reject_hint,
            context: m.context.clone(),
            priority: m.priority,
        })
    }

    /// Back to raft-rs's type, addressed `from` -> `to`.
    pub fn to_raft(&self, from: u64, to: u64, snapshot_data: Bytes) -> Result<Message, FrameError> {
        let mut m = Message::default();
        m.set_msg_type(self.kind.to_raft());
        m.from = from;
        m.to = to;
        m.term = self.term;
        m.log_term = self.log_term;
        m.index = self.index;
        let entries: Result<Vec<Entry>, FrameError> =
            self.entries.iter().map(WireEntry::to_raft).collect();
        m.set_entries(entries?.into());
        m.commit = self.commit;
        m.commit_term = self.commit_term;
        if let Some(meta) = &self.snapshot {
            m.set_snapshot(meta.to_raft(snapshot_data));
        }
        m.request_snapshot = self.request_snapshot;
        m.reject = self.reject;
        m.reject_hint = self.reject_hint;
        m.context = self.context.clone();
        m.priority = self.priority;
        Ok(m)
    }
}
