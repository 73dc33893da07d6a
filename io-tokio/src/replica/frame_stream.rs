//! Snapshot chunks travel on `/kith/snapshot/1` streams, not as
//! request-response exchanges: one stream per peer, length-prefixed frames
//! in order, flow-controlled by yamux/QUIC, so a large snapshot neither
//! occupies hundreds of request slots nor crowds out Raft's heartbeats on
//! `/kith/peer/1`.
//!
//! Sending: a task per peer owns the stream and a bounded queue; a chunk
//! that finds the queue full is dropped (counted). Losing chunks is safe:
//! the follower keeps rejecting appends and the leader sends the snapshot
//! again. Receiving: each incoming stream gets a reader task that hands
//! frames to the run loop through one bounded channel, which is what slows
//! a sender down when the run loop is busy. Frames are read against the
//! read budget, charged to the sender (anyone may open a stream) and held
//! until the run loop took them, so chunks waiting for the channel count
//! too; a sender holding the most is cut off like any other.

use crate::net::behaviour::SNAPSHOT_PROTOCOL;
use crate::net::codec::{read_frame_within, write_frame};
use crate::net::read_budget::{HeldFrame, EVICTED, READ_BUDGET};
use bytes::Bytes;
use futures::StreamExt;
use kith_core::limits;
use libp2p::PeerId;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// Chunks queued per peer (256 KiB each).
const CHUNKS_QUEUED_PER_PEER: usize = 64;
/// Frames received and not yet taken by the run loop.
const CHUNKS_RECEIVED_QUEUED: usize = 16;
/// An idle outgoing stream is closed after this long.
const IDLE_STREAM: Duration = Duration::from_secs(30);

/// Outgoing snapshot streams, one per peer.
pub struct SnapshotSenders {
    control: libp2p_stream::Control,
    queues: BTreeMap<PeerId, mpsc::Sender<Bytes>>,
}

impl SnapshotSenders {
    pub fn new(control: libp2p_stream::Control) -> SnapshotSenders {
        SnapshotSenders { control, queues: BTreeMap::new() }
    }

    /// Queues one chunk frame for `peer`; false if it was dropped.
    pub fn send(&mut self, peer: PeerId, frame: Bytes) -> bool {
        let queue = self.queues.entry(peer).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(CHUNKS_QUEUED_PER_PEER);
            tokio::spawn(pump(self.control.clone(), peer, rx));
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
    peer: PeerId,
    mut frames: mpsc::Receiver<Bytes>,
) {
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
            match control.open_stream(peer, SNAPSHOT_PROTOCOL).await {
                Ok(s) => stream = Some(s),
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "cannot open a snapshot stream; chunk dropped");
                    continue;
                }
            }
        }
        if let Some(s) = stream.as_mut() {
            if let Err(e) = write_frame(s, &frame).await {
                tracing::debug!(%peer, error = %e, "snapshot stream broke; chunk dropped");
                stream = None;
            }
        }
    }
}

/// Accepts snapshot streams; frames come out of the returned channel with
/// the sender's PeerId (the run loop decides whether to take them).
pub fn accept(mut control: libp2p_stream::Control) -> mpsc::Receiver<(PeerId, HeldFrame)> {
    let (tx, rx) = mpsc::channel(CHUNKS_RECEIVED_QUEUED);
    let mut incoming = match control.accept(SNAPSHOT_PROTOCOL) {
        Ok(incoming) => incoming,
        Err(e) => {
            tracing::error!(error = %e, "snapshot protocol registered twice");
            return rx;
        }
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
                            tracing::debug!(%peer, error = %e, "snapshot stream ended");
                            return;
                        }
                    }
                }
            });
        }
    });
    rx
}
