//! A harness client's live subscription: it follows its rooms from its
//! cursors through the service of one "home" replica, opens a new stream
//! from its cursors whenever its rooms change or the home crashes, and
//! checks every delivery: in order, no gap, no duplicate, nothing after a
//! kick.

use crate::ids::NodeId;
use crate::im::identity::UserId;
use crate::im::protocol::RoomId;
use crate::im::ImMachine;
use crate::replica::subscriptions::SubscriptionId;
use crate::replica::AskerId;
use crate::testing::cluster::{Cluster, ServiceHost};
use crate::testing::violation::Violation;
use crate::time::Instant;
use crate::wire::client_protocol::{LiveFrame, RoomFrom, SubscribeFrame};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long a client waits after a refused subscription (a lagging
/// replica that does not know a room yet).
const REFUSED_PAUSE: Duration = Duration::from_millis(100);

/// A client's subscription and where it is in each room.
#[derive(Debug, Default)]
pub(super) struct Follow {
    stream: Option<Stream>,
    cursors: BTreeMap<RoomId, u64>,
    /// The last change number heard in each room.
    changes: BTreeMap<RoomId, u64>,
    retry_at: Instant,
}

#[derive(Debug)]
struct Stream {
    home: NodeId,
    /// The last change number this stream sent in each room.
    changes: BTreeMap<RoomId, u64>,
    incarnation: u64,
    rooms: BTreeSet<RoomId>,
    state: State,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Opening(AskerId),
    Open(SubscriptionId),
}

impl Follow {
    /// The last sequence number received in `room`.
    pub fn cursor(&self, room: &RoomId) -> u64 {
        self.cursors.get(room).copied().unwrap_or(0)
    }

    /// The service opened the stream `asker` asked for.
    pub fn subscribed(
        &mut self,
        node: NodeId,
        incarnation: u64,
        asker: AskerId,
        subscription: SubscriptionId,
    ) {
        if let Some(s) = self.stream.as_mut().filter(|s| s.is(node, incarnation, asker)) {
            s.state = State::Open(subscription);
        }
    }

    /// The service refused the stream `asker` asked for.
    pub fn refused(&mut self, node: NodeId, incarnation: u64, asker: AskerId, now: Instant) {
        if self.stream.as_ref().is_some_and(|s| s.is(node, incarnation, asker)) {
            self.stream = None;
            self.retry_at = now + REFUSED_PAUSE;
        }
    }

    /// Keeps client `i` (authenticated as `user`) subscribed to `rooms` and
    /// checks what it receives; returns how many entries it received.
    pub fn step(
        &mut self,
        i: usize,
        cluster: &mut Cluster<ImMachine>,
        user: UserId,
        rooms: &BTreeSet<RoomId>,
        kicked_at: &BTreeMap<RoomId, u64>,
    ) -> Result<u64, Violation> {
        let now = cluster.now();
        let stale = self.stream.as_ref().is_none_or(|s| {
            s.rooms != *rooms
                || !cluster.is_live(s.home)
                || cluster.incarnation(s.home) != s.incarnation
        });
        if stale {
            self.leave(cluster);
            if rooms.is_empty() || now < self.retry_at {
                return Ok(0);
            }
            self.open(i, cluster, user, rooms);
        }
        let Some(Stream { home, state: State::Open(subscription), .. }) = self.stream else {
            return Ok(0);
        };
        let frames = cluster
            .with_host(home, |h: &mut ServiceHost, _| {
                std::iter::from_fn(|| h.poll_live(subscription)).collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let mut delivered = 0;
        for frame in frames {
            match frame {
                LiveFrame::Entry { room, entry } => {
                    let cursor = self.cursors.entry(room.clone()).or_default();
                    if entry.seq != *cursor + 1 {
                        let detail =
                            format!("client {i} got {room} seq {} after {}", entry.seq, *cursor);
                        return Err(Violation { invariant: "gap-free delivery", detail, at: now });
                    }
                    *cursor = entry.seq;
                    if kicked_at.get(&room).is_some_and(|k| entry.seq > *k) {
                        let detail = format!(
                            "client {i} received {room} seq {} after being kicked",
                            entry.seq
                        );
                        let invariant = "removed members receive nothing";
                        return Err(Violation { invariant, detail, at: now });
                    }
                    delivered += 1;
                }
                // A change comes only for an entry already received, and
                // change numbers only increase.
                LiveFrame::Changed { room, change, entry } => {
                    self.heard(i, &room, change, now)?;
                    self.cursor_change(&room, change);
                    if entry.seq > self.cursor(&room) {
                        let detail = format!(
                            "client {i} got a change to {room} seq {} before the entry (cursor {})",
                            entry.seq,
                            self.cursor(&room)
                        );
                        let invariant = "live delivery gap-free and true";
                        return Err(Violation { invariant, detail, at: now });
                    }
                }
                LiveFrame::ChangesSeen { room, change } => self.cursor_change(&room, change),
                LiveFrame::Refused(_) => {
                    self.stream = None;
                    self.retry_at = now + REFUSED_PAUSE;
                    break;
                }
                _ => {}
            }
        }
        Ok(delivered)
    }

    /// Checks that one stream numbers its changes of `room` increasingly.
    fn heard(
        &mut self,
        i: usize,
        room: &RoomId,
        change: u64,
        now: Instant,
    ) -> Result<(), Violation> {
        let Some(stream) = self.stream.as_mut() else { return Ok(()) };
        let last = stream.changes.entry(room.clone()).or_default();
        if change <= *last {
            let detail = format!("client {i} got change {change} of {room} after change {last}");
            let invariant = "live delivery gap-free and true";
            return Err(Violation { invariant, detail, at: now });
        }
        *last = change;
        Ok(())
    }

    /// Sets the change cursor of `room` to the number the subscription named last, even if lower than one a
    /// replica ahead named before (docs/PROTOCOL.md, "Live subscriptions").
    fn cursor_change(&mut self, room: &RoomId, change: u64) {
        self.changes.insert(room.clone(), change);
    }

    /// Closes the stream, if its replica still runs it.
    fn leave(&mut self, cluster: &mut Cluster<ImMachine>) {
        let Some(s) = self.stream.take() else { return };
        if let State::Open(subscription) = s.state {
            if cluster.incarnation(s.home) == s.incarnation {
                cluster
                    .with_host(s.home, |h: &mut ServiceHost, now| h.unsubscribe(now, subscription));
            }
        }
    }

    /// Opens a stream from the cursors at the client's home replica.
    fn open(
        &mut self,
        i: usize,
        cluster: &mut Cluster<ImMachine>,
        user: UserId,
        rooms: &BTreeSet<RoomId>,
    ) {
        let live: Vec<NodeId> =
            cluster.ids().into_iter().filter(|id| cluster.is_live(*id)).collect();
        let Some(&home) = live.get(i % live.len().max(1)) else { return };
        let rooms_from: Vec<RoomFrom> = rooms
            .iter()
            .map(|r| {
                let change = self.changes.get(r).copied().unwrap_or(0);
                RoomFrom::new(r.clone(), self.cursor(r), change)
            })
            .collect();
        let frame = SubscribeFrame { rooms: rooms_from }.encode();
        let incarnation = cluster.incarnation(home);
        let asked = cluster
            .with_host(home, |h: &mut ServiceHost, now| h.subscribe(now, user, frame.into()));
        if let Some(asker) = asked {
            let rooms = rooms.clone();
            let state = State::Opening(asker);
            let changes = BTreeMap::new();
            self.stream = Some(Stream { home, changes, incarnation, rooms, state });
        }
    }
}

impl Stream {
    fn is(&self, node: NodeId, incarnation: u64, asker: AskerId) -> bool {
        matches!(self.state, State::Opening(a) if a == asker)
            && (self.home, self.incarnation) == (node, incarnation)
    }
}
