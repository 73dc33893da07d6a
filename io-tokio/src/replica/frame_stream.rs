//! Raft frames and snapshot chunks travel on streams, not as
//! request-response exchanges: per peer, one `/kith/raft/1` stream and one
//! `/kith/snapshot/1` stream, length-prefixed frames in order,
//! flow-controlled by yamux/QUIC. A frame then costs a write on an open
//! stream instead of a new stream (its negotiation, a request slot and an
//! answer), frames arrive in the order Raft sent them, and a large snapshot
//! neither occupies hundreds of request slots nor crowds out Raft's
//! heartbeats.
//!
//! Sending: a task per peer and protocol owns the stream and a bounded
//! queue, and writes what has queued up in one write; a frame that finds
//! the queue full is dropped (counted). Losing frames is safe: Raft
//! retransmits (and a follower that missed chunks keeps rejecting appends
//! until the leader sends the snapshot again). Receiving: each incoming
//! stream gets a reader task that hands frames to the run loop through one
//! bounded channel per protocol, which is what slows a sender down when the
//! run loop is busy. Frames are read against the read budget, charged to
//! the sender (anyone may open a stream) and held until the run loop took
//! them, so frames waiting for the channel count too; a sender holding the
//! most is cut off like any other. Whether a frame's sender is a member is
//! the service's decision.

use crate::net::codec::{append_frame, gather, read_frame_within, write_frames};
use crate::net::read_budget::{HeldFrame, EVICTED, READ_BUDGET};
use bytes::Bytes;
use futures::StreamExt;
use kith_core::limits;
use libp2p::{PeerId, StreamProtocol};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// An idle outgoing stream is closed after this long.
const IDLE_STREAM: Duration = Duration::from_secs(30);
/// Bytes gathered from the queue into one write: more than other streams
/// gather, as one Raft append may be 512 KiB
/// (`kith_core::limits::APPEND_MESSAGE_BYTES_MAX`).
const GATHERED_BYTES_MAX: usize = 1024 * 1024;

/// Outgoing streams of one protocol, one per peer.
pub struct FrameSenders {
    control: libp2p_stream::Control,
    protocol: StreamProtocol,
    /// Frames queued per peer.
    queued_max: usize,
    queues: BTreeMap<PeerId, mpsc::Sender<Bytes>>,
}

impl FrameSenders {
    pub fn new(
        control: libp2p_stream::Control,
        protocol: StreamProtocol,
        queued_max: usize,
    ) -> FrameSenders {
        FrameSenders { control, protocol, queued_max, queues: BTreeMap::new() }
    }

    /// Queues one frame for `peer`; false if it was dropped.
    pub fn send(&mut self, peer: PeerId, frame: Bytes) -> bool {
        let queue = self.queues.entry(peer).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(self.queued_max);
            tokio::spawn(pump(self.control.clone(), self.protocol.clone(), peer, rx));
            tx
        });
        queue.try_send(frame).is_ok()
    }

    /// Stops sending to peers that are no longer replicas.
    pub fn retain(&mut self, keep: impl Fn(&PeerId) -> bool) {
        self.queues.retain(|peer, _| keep(peer));
    }
}

async fn pump(
    mut control: libp2p_stream::Control,
    protocol: StreamProtocol,
    peer: PeerId,
    mut frames: mpsc::Receiver<Bytes>,
) {
    let mut batch = Vec::new();
    let mut stream: Option<libp2p::Stream> = None;
    loop {
        let frame = match tokio::time::timeout(IDLE_STREAM, frames.recv()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(_) => {
                stream = None;
                continue;
            }
        };
        if stream.is_none() {
            match control.open_stream(peer, protocol.clone()).await {
                Ok(s) => stream = Some(s),
                Err(e) => {
                    tracing::debug!(%peer, %protocol, error = %e, "cannot open a stream; frame dropped");
                    continue;
                }
            }
        }
        // What queued up while the last write was under way goes in one
        // write: one flush for a burst of frames.
        batch.clear();
        gather(&mut batch, frame, &mut frames, GATHERED_BYTES_MAX, |wire, frame| {
            if let Err(e) = append_frame(wire, &frame) {
                tracing::error!(%peer, %protocol, error = %e, "a frame that cannot be framed; dropped");
            }
            true
        });
        if let Some(s) = stream.as_mut() {
            if let Err(e) = write_frames(s, &batch).await {
                tracing::debug!(%peer, %protocol, error = %e, "stream broke; frames dropped");
                stream = None;
            }
        }
    }
}

/// Accepts streams of `protocol`; frames come out of the returned channel
/// (at most `queued_max` waiting) with the sender's PeerId (the run loop
/// decides whether to take them).
pub fn accept(
    mut control: libp2p_stream::Control,
    protocol: StreamProtocol,
    queued_max: usize,
) -> mpsc::Receiver<(PeerId, HeldFrame)> {
    let (tx, rx) = mpsc::channel(queued_max);
    let Some(mut incoming) = crate::net::incoming::incoming(&mut control, protocol) else {
        return rx;
    };
    tokio::spawn(async move {
        while let Some((peer, mut stream)) = incoming.next().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let account = READ_BUDGET.open_account_of(Some(peer));
                loop {
                    let max = limits::FRAME_BYTES_MAX;
                    let read =
                        read_frame_within(&mut stream, max, &READ_BUDGET, Some(account.clone()));
                    match read.await {
                        Ok((bytes, hold)) => {
                            if tx.send((peer, HeldFrame::held(bytes, hold))).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            if e.kind() != std::io::ErrorKind::UnexpectedEof {
                                READ_BUDGET.note_unreadable(Some(&account), e.kind() == EVICTED);
                            }
                            tracing::debug!(%peer, error = %e, "an incoming frame stream ended");
                            return;
                        }
                    }
                }
            });
        }
    });
    rx
}
