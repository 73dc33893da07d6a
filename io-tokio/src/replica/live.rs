//! Live subscriptions over `/kith/live/1` streams.
//!
//! Each stream gets a task that reads the client's subscribe frame and
//! then writes [`LiveFrame`]s from a small bounded queue. The service owns
//! the subscriptions; the run loop only moves a frame from `poll_live` into
//! a queue that has room, so a slow subscriber stalls its own cursor (the
//! hub refills from the log later) instead of growing memory.

use super::askers::{Channel, PendingStream};
use super::Replica;
use crate::net::behaviour::LIVE_PROTOCOL;
use crate::net::codec::{
    append_frame, gather, read_frame_within, write_frame, write_frames, GATHERED_BYTES_MAX,
};
use crate::net::read_budget::{HeldFrame, READ_BUDGET};
use crate::peer_ids::user_of;
use futures::StreamExt;
use kith_core::limits;
use kith_core::replica::subscriptions::SubscriptionId;
use kith_core::replica::ServiceInput;
use kith_core::wire::client_protocol::LiveFrame;
use libp2p::PeerId;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Frames queued per live stream.
const LIVE_QUEUE_FRAMES: usize = 64;
/// Subscriptions being set up at once.
const PENDING_SUBSCRIPTIONS_MAX: usize = 64;
/// How long a client has to send its subscribe frame.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A new stream asking to subscribe: its subscribe frame, as bytes.
pub struct LiveRequest {
    peer: PeerId,
    frame: HeldFrame,
    stream: PendingStream,
}

/// The open subscriptions' queues.
#[derive(Default)]
pub struct LiveSubscribers {
    queues: BTreeMap<SubscriptionId, mpsc::Sender<LiveFrame>>,
}

impl LiveSubscribers {
    /// Pairs an opened subscription with its stream's queue.
    pub fn open(&mut self, id: SubscriptionId, stream: PendingStream) {
        self.queues.insert(id, stream.queue);
    }
}

/// Accepts live streams; each that sends a valid subscribe frame becomes a
/// [`LiveRequest`] for the run loop.
pub fn accept(mut control: libp2p_stream::Control) -> mpsc::Receiver<LiveRequest> {
    let (tx, rx) = mpsc::channel(PENDING_SUBSCRIPTIONS_MAX);
    let Some(mut incoming) = crate::net::incoming::incoming(&mut control, LIVE_PROTOCOL) else {
        return rx;
    };
    tokio::spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            tokio::spawn(serve_stream(peer, stream, tx.clone()));
        }
    });
    rx
}

async fn serve_stream(
    peer: PeerId,
    mut stream: libp2p::Stream,
    requests: mpsc::Sender<LiveRequest>,
) {
    // Held against the read budget until the service took it.
    let max = limits::SUBSCRIBE_FRAME_BYTES_MAX;
    let read = read_frame_within(&mut stream, max, &READ_BUDGET, None);
    let first = tokio::time::timeout(SUBSCRIBE_TIMEOUT, read).await;
    let frame = first.map_err(|_| "timed out".to_string()).and_then(|r| {
        r.map(|(bytes, hold)| HeldFrame::held(bytes, hold)).map_err(|e| e.to_string())
    });
    let frame = match frame {
        Ok(f) => f,
        Err(why) => {
            let _ = write_frame(&mut stream, &LiveFrame::Refused(why).encode()).await;
            return;
        }
    };
    let (queue, mut frames) = mpsc::channel(LIVE_QUEUE_FRAMES);
    let (refused, refusal) = oneshot::channel();
    let stream_parts = PendingStream { queue, refused };
    if requests.try_send(LiveRequest { peer, frame, stream: stream_parts }).is_err() {
        let busy = LiveFrame::Refused("replica busy; try again".into());
        let _ = write_frame(&mut stream, &busy.encode()).await;
        return;
    }
    // A client sends nothing after its subscribe frame: the read side ends
    // when it goes away, which ends the subscription at once (else a quiet
    // room's subscription would outlive its client until a frame failed).
    let (mut reader, mut stream) = futures::AsyncReadExt::split(stream);
    let gone = async move {
        let mut byte = [0u8; 1];
        while let Ok(n) = futures::AsyncReadExt::read(&mut reader, &mut byte).await {
            if n == 0 {
                return;
            }
        }
    };
    tokio::pin!(gone);
    let mut refusal = Some(refusal);
    loop {
        let next = match refusal.as_mut() {
            Some(r) => tokio::select! {
                refused = r => {
                    refusal = None;
                    match refused {
                        // The service's refusal, encoded: write it and close.
                        Ok(bytes) => {
                            let _ = write_frame(&mut stream, &bytes).await;
                            return;
                        }
                        Err(_) => continue,
                    }
                }
                frame = frames.recv() => frame,
                () = &mut gone => return,
            },
            None => tokio::select! {
                frame = frames.recv() => frame,
                () = &mut gone => return,
            },
        };
        let Some(frame) = next else { return };
        // The frames queued behind it go in the same write: one flush, one
        // encrypted frame, for a burst of deliveries.
        let mut wire = Vec::new();
        let framed = gather(&mut wire, frame, &mut frames, GATHERED_BYTES_MAX, |wire, frame| {
            append_frame(wire, &frame.encode()).is_ok()
        });
        if !framed || write_frames(&mut stream, &wire).await.is_err() {
            return;
        }
    }
}

impl Replica {
    pub(super) fn on_live_request(&mut self, request: LiveRequest) {
        let user = user_of(&request.peer);
        let asker = self.askers.name(Channel::Live(request.stream));
        let (frame, _held) = request.frame.into_parts();
        self.input(ServiceInput::SubscribeRequested { asker, user, frame: frame.into() });
    }

    /// Moves frames into subscribers' queues while they have room.
    /// Returns whether some subscriber's queue is full.
    pub(super) fn pump_live(&mut self) -> bool {
        let mut backlog = false;
        let mut closed = Vec::new();
        for (id, queue) in &self.live.queues {
            if queue.is_closed() {
                closed.push(*id);
                continue;
            }
            while queue.capacity() > 0 {
                match self.service.poll_live(*id) {
                    Some(frame) => {
                        let _ = queue.try_send(frame);
                    }
                    None => break,
                }
            }
            backlog |= queue.capacity() == 0;
        }
        for subscription in closed {
            self.live.queues.remove(&subscription);
            self.input(ServiceInput::SubscriberLeft { subscription });
        }
        backlog
    }
}
