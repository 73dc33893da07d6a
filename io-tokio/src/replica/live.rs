//! Live subscriptions over `/kith/live/1` streams.
//!
//! Each stream gets a task that reads the client's [`SubscribeFrame`] and
//! then writes [`LiveFrame`]s from a small bounded queue. The run loop owns
//! the core's subscription hub and only moves a delivery into a queue that
//! has room, so a slow subscriber stalls its own cursor (the hub refills
//! from the log later) instead of growing memory.

use super::Replica;
use crate::net::behaviour::LIVE_PROTOCOL;
use crate::net::codec::{read_frame, write_frame};
use crate::peer_ids::user_of;
use futures::StreamExt;
use kith_core::im::client_protocol::{LiveFrame, SubscribeFrame};
use kith_core::im::identity::UserId;
use kith_core::im::protocol::RoomId;
use kith_core::im::subscriptions::SubscriptionId;
use kith_core::limits;
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

/// A new stream asking to subscribe.
pub struct LiveRequest {
    peer: PeerId,
    frame: SubscribeFrame,
    queue: mpsc::Sender<LiveFrame>,
    refused: oneshot::Sender<String>,
}

/// One open subscription: who, which rooms, and its queue.
struct Subscriber {
    user: UserId,
    rooms: Vec<RoomId>,
    queue: mpsc::Sender<LiveFrame>,
}

/// The open subscriptions.
#[derive(Default)]
pub struct LiveSubscribers {
    subscribers: BTreeMap<SubscriptionId, Subscriber>,
}

/// Accepts live streams; each that sends a valid subscribe frame becomes a
/// [`LiveRequest`] for the run loop.
pub fn accept(mut control: libp2p_stream::Control) -> mpsc::Receiver<LiveRequest> {
    let (tx, rx) = mpsc::channel(PENDING_SUBSCRIPTIONS_MAX);
    let mut incoming = match control.accept(LIVE_PROTOCOL) {
        Ok(incoming) => incoming,
        Err(e) => {
            tracing::error!(error = %e, "live protocol registered twice");
            return rx;
        }
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
    let first =
        tokio::time::timeout(SUBSCRIBE_TIMEOUT, read_frame(&mut stream, limits::FRAME_BYTES_MAX))
            .await;
    let frame =
        match first.map_err(|_| "timed out".to_string()).and_then(|r| r.map_err(|e| e.to_string()))
        {
            Ok(bytes) => SubscribeFrame::decode(&bytes).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
    let frame = match frame {
        Ok(f) => f,
        Err(why) => {
            let _ = write_frame(&mut stream, &LiveFrame::Refused(why).encode()).await;
            return;
        }
    };
    let (queue, mut frames) = mpsc::channel(LIVE_QUEUE_FRAMES);
    let (refused, refusal) = oneshot::channel();
    if requests.try_send(LiveRequest { peer, frame, queue, refused }).is_err() {
        let busy = LiveFrame::Refused("replica busy; try again".into());
        let _ = write_frame(&mut stream, &busy.encode()).await;
        return;
    }
    let mut refusal = Some(refusal);
    loop {
        let next = match refusal.as_mut() {
            Some(r) => tokio::select! {
                why = r => {
                    refusal = None;
                    match why {
                        Ok(why) => Some(LiveFrame::Refused(why)),
                        Err(_) => continue,
                    }
                }
                frame = frames.recv() => frame,
            },
            None => frames.recv().await,
        };
        let Some(frame) = next else { return };
        let end = matches!(frame, LiveFrame::Refused(_));
        if write_frame(&mut stream, &frame.encode()).await.is_err() || end {
            return;
        }
    }
}

impl Replica {
    pub(super) fn on_live_request(&mut self, request: LiveRequest) {
        let Some(user) = user_of(&request.peer) else {
            let _ = request.refused.send("clients must connect with an ed25519 key".into());
            return;
        };
        match self.hub.subscribe(self.node.state_machine(), user, &request.frame.rooms) {
            Ok(id) => {
                let rooms = request.frame.rooms.iter().map(|(r, _)| r.clone()).collect();
                let subscriber = Subscriber { user, rooms, queue: request.queue };
                self.live.subscribers.insert(id, subscriber);
            }
            Err(e) => {
                let _ = request.refused.send(e.to_string());
            }
        }
    }

    /// Moves deliveries into subscribers' queues while they have room.
    /// Returns whether some subscriber still has deliveries waiting.
    pub(super) fn pump_live(&mut self) -> bool {
        let mut backlog = false;
        let mut closed = Vec::new();
        for (id, Subscriber { queue, .. }) in &self.live.subscribers {
            if queue.is_closed() {
                closed.push(*id);
                continue;
            }
            while queue.capacity() > 0 {
                match self.hub.poll(self.node.state_machine(), *id) {
                    Some(delivery) => {
                        let _ = queue.try_send(delivery.into());
                    }
                    None => break,
                }
            }
            backlog |= queue.capacity() == 0;
        }
        for id in closed {
            self.hub.unsubscribe(id);
            self.live.subscribers.remove(&id);
        }
        backlog
    }

    /// Passes a typing notice to the subscribers following `room` who may
    /// still read it. Best effort: a full queue skips the notice.
    pub(super) fn deliver_typing(&mut self, room: &RoomId, user: UserId, active: bool) {
        let machine = self.node.state_machine();
        for s in self.live.subscribers.values() {
            if s.user != user && s.rooms.contains(room) && machine.can_follow(room, s.user) {
                let frame = LiveFrame::Typing { room: room.clone(), user, active };
                let _ = s.queue.try_send(frame);
            }
        }
    }

    /// Open live subscriptions.
    pub(super) fn live_count(&self) -> usize {
        self.live.subscribers.len()
    }
}
