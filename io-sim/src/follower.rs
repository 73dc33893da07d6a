//! A client's live subscription under madsim: it follows every lobby room
//! from its cursors through one replica (another than the one it sends to,
//! so deliveries cross replicas), reassembles the stream's numbered frames,
//! and opens a new stream from its cursors whenever the old one breaks (a
//! gap not filled in time, a replica that forgot it or went silent), moving
//! to the next replica when one stays silent or refuses. It resumes changes
//! from the last change number it heard in each room (a version 2
//! subscription). Every delivery and every resumption goes to the checkers
//! (`live delivery`, `changes reach subscribers`), and where it is in each
//! room to the world, so the liveness phase can wait for it to catch up.

use crate::live_stream::{self, datagram, split};
use crate::lobby::lobby;
use crate::world::{replica_addr, TAG_LIVE};
use bytes::Bytes;
use kith_core::im::protocol::RoomId;
use kith_core::wire::client_protocol::{LiveFrame, RoomFrom, SubscribeFrame};
use madsim::net::Endpoint;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the follower acknowledges (and so keeps the stream alive).
const TICK: Duration = Duration::from_millis(500);
/// Frames acknowledged at once.
const ACK_EVERY_FRAMES: u64 = 8;

/// What a follower runs with: the client it follows for.
#[derive(Clone, Debug)]
pub struct FollowerCtx {
    /// The world (checkers, lobby, replicas).
    pub world: crate::world::World,
    /// The client's index.
    pub index: usize,
    /// The client's identity.
    pub identity: kith_core::im::identity::Identity,
}

/// Whether the test-only switch that keeps the greatest change number
/// heard (instead of the last) is on.
fn keeps_greatest_change(w: &crate::world::SimWorld) -> bool {
    #[cfg(feature = "bug-switches")]
    let on = w.bugs.keep_greatest_change_cursor;
    #[cfg(not(feature = "bug-switches"))]
    let on = {
        let _ = w;
        false
    };
    on
}

/// The follower's rooms and where it is in each.
#[derive(Debug, Default)]
struct Cursors {
    rooms: BTreeMap<RoomId, u64>,
    /// The last change number heard in each room.
    changes: BTreeMap<RoomId, u64>,
    ended: BTreeSet<RoomId>,
}

impl Cursors {
    /// Sets the change cursor of `room` to the number the subscription
    /// named last: a replica behind the one heard from sets it back, and
    /// the entries it sends then show only the changes it has applied
    /// (docs/PROTOCOL.md, "Live subscriptions").
    fn heard(&mut self, room: &RoomId, change: u64, keep_greatest: bool) {
        let at = self.changes.entry(room.clone()).or_default();
        *at = if keep_greatest { (*at).max(change) } else { change };
    }

    /// Tells the world where client `index` is in `room`.
    fn publish(&self, w: &mut crate::world::SimWorld, index: usize, room: &RoomId) {
        let key = (index, room.clone());
        if self.ended.contains(room) {
            w.follows.remove(&key);
        } else {
            let at = |m: &BTreeMap<RoomId, u64>| m.get(room).copied().unwrap_or(0);
            w.follows.insert(key, (at(&self.rooms), at(&self.changes)));
        }
    }
}

/// Follows the lobby until the simulation ends.
pub async fn follow_live(ctx: FollowerCtx, endpoint: Arc<Endpoint>) {
    let mut frames = crate::world::receive(endpoint.clone(), TAG_LIVE);
    let mut cursors = Cursors::default();
    let mut replica = ctx.index + 1;
    let mut key = (ctx.index as u64) << 32;
    loop {
        let generations = ctx.world.lock().lobby.current();
        for g in 0..=generations {
            cursors.rooms.entry(lobby(g)).or_insert(0);
        }
        let replicas = ctx.world.lock().serving();
        let to = replicas[replica % replicas.len()];
        key += 1;
        if !subscribe(&ctx, &endpoint, to, key, &cursors).await {
            return;
        }
        match run_stream(&ctx, &endpoint, to, key, &mut frames, &mut cursors, generations).await {
            Broke::Resubscribe => {}
            Broke::MoveOn => {
                replica += 1;
                madsim::time::sleep(Duration::from_millis(200)).await;
            }
            Broke::Stop => return,
        }
    }
}

/// Opens stream `key` at replica `to`; false if a checker objected.
async fn subscribe(
    ctx: &FollowerCtx,
    endpoint: &Endpoint,
    to: kith_core::ids::NodeId,
    key: u64,
    cursors: &Cursors,
) -> bool {
    let rooms: Vec<RoomFrom> = cursors
        .rooms
        .iter()
        .filter(|(r, _)| !cursors.ended.contains(*r))
        .map(|(r, c)| RoomFrom::new(r.clone(), *c, cursors.changes.get(r).copied().unwrap_or(0)))
        .take(kith_core::limits::SUBSCRIPTION_ROOMS_MAX)
        .collect();
    {
        let mut w = ctx.world.lock();
        for from in &rooms {
            cursors.publish(&mut w, ctx.index, &from.room);
            if let Err(v) = w.checker.on_followed(ctx.index, &from.room, from.after_seq) {
                w.fail(v);
                return false;
            }
        }
    }
    let frame = SubscribeFrame { rooms }.encode();
    let user = ctx.identity.user().0;
    let bytes = datagram(live_stream::SUBSCRIBE, key, &[&user, &frame]);
    let _ = endpoint.send_to(replica_addr(to), TAG_LIVE, &bytes).await;
    true
}

/// Why a stream ended.
enum Broke {
    /// Open a new stream at the same replica.
    Resubscribe,
    /// Try the next replica.
    MoveOn,
    /// A checker objected.
    Stop,
}

/// Reads stream `key` until it breaks.
async fn run_stream(
    ctx: &FollowerCtx,
    endpoint: &Endpoint,
    to: kith_core::ids::NodeId,
    key: u64,
    frames: &mut mpsc::Receiver<Bytes>,
    cursors: &mut Cursors,
    generations: u64,
) -> Broke {
    let mut expected = 1u64;
    let mut early: BTreeMap<u64, Bytes> = BTreeMap::new();
    let mut lost_tail: Option<u64> = None;
    let mut heard = madsim::time::Instant::now();
    let mut acked = 0u64;
    loop {
        let got = madsim::time::timeout(TICK, frames.recv()).await;
        let ticked = got.is_err();
        let now = madsim::time::Instant::now();
        match got {
            Ok(Some(bytes)) => {
                let Some((kind, k, payload)) = split(&bytes) else { continue };
                if k != key {
                    continue;
                }
                heard = now;
                match kind {
                    live_stream::UNKNOWN => return Broke::Resubscribe,
                    live_stream::FRAME => {
                        let Some((n, frame)) = live_stream::number(&payload) else { continue };
                        if n >= expected {
                            early.insert(n, frame);
                        }
                    }
                    // The replica numbers its next frame: anything before
                    // it not received by the next tick was lost (the last
                    // frames of a burst leave no gap behind them).
                    live_stream::HEARTBEAT => {
                        let Some((next, _)) = live_stream::number(&payload) else { continue };
                        if next > expected && lost_tail.is_none() {
                            lost_tail = Some(next);
                        }
                    }
                    _ => {}
                }
            }
            Ok(None) => return Broke::Stop,
            Err(_) => {
                // A gap one tick old is a lost frame: the stream is broken.
                if !early.is_empty() || lost_tail.is_some_and(|next| next > expected) {
                    return Broke::Resubscribe;
                }
                lost_tail = None;
                if now.duration_since(heard) > live_stream::SILENCE_MAX {
                    return Broke::MoveOn;
                }
            }
        }
        while let Some(frame) = early.remove(&expected) {
            match take_frame(ctx, &frame, cursors) {
                Taken::Go => expected += 1,
                Taken::Refused => return Broke::MoveOn,
                Taken::Violation => return Broke::Stop,
            }
        }
        // New lobby rooms are followed on a new stream.
        if ctx.world.lock().lobby.current() > generations {
            return Broke::Resubscribe;
        }
        if expected > acked + ACK_EVERY_FRAMES || ticked {
            acked = expected - 1;
            let bytes = datagram(live_stream::ACK, key, &[&acked.to_le_bytes()]);
            let _ = endpoint.send_to(replica_addr(to), TAG_LIVE, &bytes).await;
        }
    }
}

/// What one frame meant.
enum Taken {
    Go,
    Refused,
    Violation,
}

fn take_frame(ctx: &FollowerCtx, bytes: &[u8], cursors: &mut Cursors) -> Taken {
    let Ok(frame) = LiveFrame::decode(bytes) else { return Taken::Refused };
    let mut w = ctx.world.lock();
    match frame {
        LiveFrame::Entry { room, entry } => {
            if let Err(v) = w.checker.on_delivered(ctx.index, &room, &entry) {
                w.fail(v);
                return Taken::Violation;
            }
            w.delivered += 1;
            cursors.rooms.insert(room.clone(), entry.seq);
            cursors.publish(&mut w, ctx.index, &room);
            Taken::Go
        }
        LiveFrame::Changed { room, change, entry } => {
            if let Err(v) = w.checker.on_updated(ctx.index, &room, &entry) {
                w.fail(v);
                return Taken::Violation;
            }
            w.updates_delivered += 1;
            cursors.heard(&room, change, keeps_greatest_change(&w));
            cursors.publish(&mut w, ctx.index, &room);
            Taken::Go
        }
        LiveFrame::ChangesSeen { room, change } => {
            cursors.heard(&room, change, keeps_greatest_change(&w));
            cursors.publish(&mut w, ctx.index, &room);
            Taken::Go
        }
        LiveFrame::Ended { room, .. } => {
            cursors.ended.insert(room.clone());
            cursors.publish(&mut w, ctx.index, &room);
            Taken::Go
        }
        // A room not created yet, or a replica that cannot serve: try again elsewhere.
        LiveFrame::Refused(_) => Taken::Refused,
        _ => Taken::Go,
    }
}
