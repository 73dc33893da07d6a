//! Snapshots travel as a series of bounded chunk frames, never as one huge
//! message, and are reassembled by the receiver with bounded memory.

use super::{FrameError, PeerBody, PeerFrame, WireMessage, WireMessageKind};
use crate::ids::NodeId;
use crate::limits;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One piece of a snapshot message. Every chunk repeats the (small) message
/// header so chunks can arrive in any order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// The snapshot message without its data.
    pub message: WireMessage,
    /// Length of the whole snapshot data.
    pub total_bytes: u64,
    /// This chunk's position, from 0.
    pub chunk_index: u32,
    /// The chunk's bytes (at most [`limits::SNAPSHOT_CHUNK_BYTES`]).
    pub data: Bytes,
}

impl SnapshotChunk {
    /// Splits snapshot data into chunks that each fit a frame.
    pub fn split(message: WireMessage, data: &Bytes) -> Vec<SnapshotChunk> {
        let total = data.len();
        (0..chunks_for(total))
            .map(|i| {
                let start = i * limits::SNAPSHOT_CHUNK_BYTES;
                let end = (start + limits::SNAPSHOT_CHUNK_BYTES).min(total);
                SnapshotChunk::piece(&message, total, i, data.slice(start..end))
            })
            .collect()
    }

    /// Encodes the frames of a snapshot message from `from` to `to`, last
    /// chunk first, cutting each chunk off the end of `data` and shrinking
    /// it as it goes: the data and its frames are never both whole in
    /// memory (a snapshot can hold a room's entire history). Chunks may
    /// arrive in any order, so the reverse order costs nothing.
    pub fn into_frames(from: NodeId, to: NodeId, message: WireMessage, data: Bytes) -> Vec<Bytes> {
        let total = data.len();
        // Zero-copy when this is the only reference, as it is when sending.
        let mut data = Vec::<u8>::from(data);
        let count = chunks_for(total);
        let mut frames = Vec::with_capacity(count);
        for i in (0..count).rev() {
            let start = i * limits::SNAPSHOT_CHUNK_BYTES;
            let piece = Bytes::copy_from_slice(&data[start..]);
            let chunk = SnapshotChunk::piece(&message, total, i, piece);
            frames.push(PeerFrame { from, to, body: PeerBody::SnapshotChunk(chunk) }.encode());
            data.truncate(start);
            data.shrink_to_fit();
        }
        frames
    }

    /// Chunk `i` of a `total`-byte snapshot message.
    fn piece(message: &WireMessage, total: usize, i: usize, data: Bytes) -> SnapshotChunk {
        SnapshotChunk {
            message: message.clone(),
            total_bytes: total as u64,
            chunk_index: u32::try_from(i).expect("chunk count bounded by snapshot limit"),
            data,
        }
    }

    fn chunk_count(&self) -> usize {
        chunks_for(usize::try_from(self.total_bytes).unwrap_or(usize::MAX))
    }
}

/// Chunks a snapshot of `total` bytes travels in (one, even when empty).
fn chunks_for(total: usize) -> usize {
    total.div_ceil(limits::SNAPSHOT_CHUNK_BYTES).max(1)
}

/// Reassembles snapshot chunks, keeping at most one snapshot per sender.
#[derive(Debug, Default)]
pub struct SnapshotAssembler {
    partial: BTreeMap<NodeId, Partial>,
}

#[derive(Debug)]
struct Partial {
    key: (u64, u64, u64),
    message: WireMessage,
    buffer: BytesMut,
    received: Vec<bool>,
    missing: usize,
}

impl SnapshotAssembler {
    /// Takes one chunk; returns the whole message and data once complete.
    /// A chunk of a newer snapshot from the same sender replaces the older
    /// partial one, so memory stays at one snapshot per peer.
    pub fn accept(
        &mut self,
        from: NodeId,
        chunk: SnapshotChunk,
    ) -> Result<Option<(WireMessage, Bytes)>, FrameError> {
        let meta = chunk
            .message
            .snapshot
            .as_ref()
            .filter(|_| chunk.message.kind == WireMessageKind::Snapshot)
            .ok_or(FrameError::Invalid("snapshot chunk without snapshot metadata"))?;
        if chunk.total_bytes > limits::SNAPSHOT_BYTES_MAX as u64 {
            return Err(FrameError::Invalid("snapshot larger than the limit"));
        }
        let count = chunk.chunk_count();
        let index = chunk.chunk_index as usize;
        if index >= count {
            return Err(FrameError::Invalid("snapshot chunk index out of range"));
        }
        let start = index * limits::SNAPSHOT_CHUNK_BYTES;
        let expected_len = (chunk.total_bytes as usize - start).min(limits::SNAPSHOT_CHUNK_BYTES);
        if chunk.data.len() != expected_len {
            return Err(FrameError::Invalid("snapshot chunk has the wrong length"));
        }
        let key = (chunk.message.term, meta.index, chunk.total_bytes);
        let partial = match self.partial.get_mut(&from) {
            Some(p) if p.key == key => p,
            _ => {
                let total = chunk.total_bytes as usize;
                let mut buffer = BytesMut::with_capacity(total);
                buffer.resize(total, 0);
                self.partial.insert(
                    from,
                    Partial {
                        key,
                        message: chunk.message.clone(),
                        buffer,
                        received: vec![false; count],
                        missing: count,
                    },
                );
                self.partial.get_mut(&from).expect("just inserted")
            }
        };
        if !partial.received[index] {
            partial.received[index] = true;
            partial.missing -= 1;
            partial.buffer[start..start + expected_len].copy_from_slice(&chunk.data);
        }
        if partial.missing > 0 {
            return Ok(None);
        }
        let done = self.partial.remove(&from).expect("present");
        Ok(Some((done.message, done.buffer.freeze())))
    }

    /// Forgets partial snapshots (e.g. on crash-restart or role change).
    pub fn clear(&mut self) {
        self.partial.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::WireSnapshotMeta;

    fn snapshot_message() -> WireMessage {
        WireMessage {
            snapshot: Some(WireSnapshotMeta { index: 10, term: 2, ..Default::default() }),
            ..WireMessage::new(WireMessageKind::Snapshot, 2)
        }
    }

    #[test]
    fn frames_cut_from_the_end_reassemble() {
        let data: Bytes = (0..(limits::SNAPSHOT_CHUNK_BYTES * 2 + 5))
            .map(|i| (i % 253) as u8)
            .collect::<Vec<_>>()
            .into();
        let frames =
            SnapshotChunk::into_frames(NodeId(1), NodeId(2), snapshot_message(), data.clone());
        assert_eq!(frames.len(), 3);
        let mut asm = SnapshotAssembler::default();
        let mut done = None;
        for f in &frames {
            let PeerBody::SnapshotChunk(c) = PeerFrame::decode(f).unwrap().body else { panic!() };
            done = asm.accept(NodeId(1), c).unwrap();
        }
        assert_eq!(done, Some((snapshot_message(), data)));
        let empty =
            SnapshotChunk::into_frames(NodeId(1), NodeId(2), snapshot_message(), Bytes::new());
        assert_eq!(empty.len(), 1, "an empty snapshot is one empty chunk");
    }

    #[test]
    fn chunk_frames_are_told_apart_by_their_head() {
        let data = Bytes::from(vec![7u8; 1000]);
        let chunk = SnapshotChunk::split(snapshot_message(), &data).remove(0);
        let frame = |body| crate::wire::PeerFrame { from: NodeId(u64::MAX), to: NodeId(300), body };
        let chunk_frame = frame(crate::wire::PeerBody::SnapshotChunk(chunk)).encode();
        let raft_frame = frame(crate::wire::PeerBody::Raft(snapshot_message())).encode();
        assert!(crate::wire::PeerFrame::is_snapshot_chunk(&chunk_frame));
        assert!(!crate::wire::PeerFrame::is_snapshot_chunk(&raft_frame));
        for cut in 0..8 {
            assert!(!crate::wire::PeerFrame::is_snapshot_chunk(&chunk_frame[..cut]));
        }
    }

    #[test]
    fn reassembles_out_of_order_with_duplicates() {
        let data: Bytes = (0..(limits::SNAPSHOT_CHUNK_BYTES * 2 + 17))
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let mut chunks = SnapshotChunk::split(snapshot_message(), &data);
        assert_eq!(chunks.len(), 3);
        chunks.reverse();
        let mut asm = SnapshotAssembler::default();
        assert_eq!(asm.accept(NodeId(1), chunks[0].clone()), Ok(None));
        assert_eq!(asm.accept(NodeId(1), chunks[0].clone()), Ok(None));
        assert_eq!(asm.accept(NodeId(1), chunks[1].clone()), Ok(None));
        let (msg, got) = asm.accept(NodeId(1), chunks[2].clone()).unwrap().unwrap();
        assert_eq!(got, data);
        assert_eq!(msg, snapshot_message());
    }

    #[test]
    fn empty_snapshot_is_one_chunk() {
        let chunks = SnapshotChunk::split(snapshot_message(), &Bytes::new());
        assert_eq!(chunks.len(), 1);
        let mut asm = SnapshotAssembler::default();
        let (_, got) = asm.accept(NodeId(1), chunks[0].clone()).unwrap().unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn refuses_bad_chunks() {
        let mut asm = SnapshotAssembler::default();
        let data = Bytes::from_static(b"abc");
        let mut c = SnapshotChunk::split(snapshot_message(), &data).remove(0);
        c.chunk_index = 5;
        assert!(asm.accept(NodeId(1), c.clone()).is_err());
        c.chunk_index = 0;
        c.data = Bytes::from_static(b"ab");
        assert!(asm.accept(NodeId(1), c.clone()).is_err());
        c.total_bytes = u64::MAX;
        assert!(asm.accept(NodeId(1), c.clone()).is_err());
        let mut no_meta = SnapshotChunk::split(snapshot_message(), &data).remove(0);
        no_meta.message.snapshot = None;
        assert!(asm.accept(NodeId(1), no_meta).is_err());
    }
}
