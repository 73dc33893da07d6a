//! Live subscriptions: the core's subscription hub (room entries, gap-free
//! from each subscriber's cursor) plus best-effort typing notices, behind
//! one pull interface so a driver only moves frames into queues that have
//! room.

use super::asker::AskerId;
use super::output::ServiceOutput;
use super::ReplicaService;
use crate::im::identity::UserId;
use crate::im::protocol::RoomId;
use crate::im::ImMachine;
use crate::limits;
use crate::replica::subscriptions::{SubscriptionHub, SubscriptionId};
use crate::wire::client_protocol::{LiveFrame, SubscribeFrame};
use std::collections::{BTreeMap, VecDeque};

/// Why a removed replica ends its subscriptions: it applies nothing more,
/// so its subscribers must follow another replica.
const REMOVED: &str = "this replica was removed from the cluster: follow another replica";
/// Why a replica that has long heard from no leader ends its subscriptions.
const LEADERLESS: &str =
    "this replica has heard from no leader for too long: follow another replica";

/// One open subscription, as far as typing notices go.
#[derive(Debug)]
struct Follower {
    user: UserId,
    rooms: Vec<RoomId>,
    typing: VecDeque<LiveFrame>,
    /// It was told to follow another replica and gets nothing more.
    ended: bool,
}

/// The open subscriptions.
#[derive(Debug, Default)]
pub(super) struct Live {
    pub hub: SubscriptionHub,
    followers: BTreeMap<SubscriptionId, Follower>,
    /// The node's snapshots installed, as of the last poll.
    snapshots_seen: u64,
}

impl Live {
    /// Queues a typing notice for the subscribers following `room` who may
    /// still read it (not its typist, nor users the typist blocks). A full
    /// queue drops its oldest notice.
    pub fn offer_typing(
        &mut self,
        machine: &ImMachine,
        room: &RoomId,
        typist: UserId,
        frame: &LiveFrame,
    ) {
        for f in self.followers.values_mut() {
            let shown = f.user != typist && !machine.blocks(typist, f.user);
            if shown && f.rooms.contains(room) && machine.can_follow(room, f.user) {
                if f.typing.len() == limits::SUBSCRIBER_TYPING_QUEUE_MAX {
                    f.typing.pop_front();
                }
                f.typing.push_back(frame.clone());
            }
        }
    }

    /// Open subscriptions.
    pub fn count(&self) -> usize {
        self.followers.len()
    }
}

impl ReplicaService {
    pub(super) fn subscribe(&mut self, asker: AskerId, user: Option<UserId>, frame: &[u8]) {
        let opened = match (self.out_of_touch(), user, SubscribeFrame::decode(frame)) {
            (Some(why), _, _) => Err(why.to_string()),
            (None, None, _) => Err("clients must connect with an ed25519 key".to_string()),
            (None, Some(_), Err(e)) => Err(e.to_string()),
            (None, Some(user), Ok(frame)) => self
                .live
                .hub
                .subscribe(self.node.state_machine(), user, &frame.rooms)
                .map(|id| (id, user, frame))
                .map_err(|e| e.to_string()),
        };
        match opened {
            Ok((subscription, user, frame)) => {
                let rooms = frame.rooms.into_iter().map(|r| r.room).collect();
                let follower = Follower { user, rooms, typing: VecDeque::new(), ended: false };
                self.live.followers.insert(subscription, follower);
                self.outputs.push_back(ServiceOutput::Subscribed { asker, subscription });
            }
            Err(why) => {
                let frame = LiveFrame::Refused(why).encode();
                self.outputs.push_back(ServiceOutput::LiveRefused { asker, frame });
            }
        }
    }

    pub(super) fn unsubscribe(&mut self, subscription: SubscriptionId) {
        self.live.hub.unsubscribe(subscription);
        self.live.followers.remove(&subscription);
    }

    /// The next frame for a subscription: typing notices first (they are
    /// only worth anything now), then room entries and updates from the
    /// hub. Call while the subscriber's queue has room; None means nothing
    /// is waiting (or the subscription is unknown).
    pub fn poll_live(&mut self, subscription: SubscriptionId) -> Option<LiveFrame> {
        // A snapshot changes the log without events: every subscription
        // may be behind it.
        let installed = self.node.metrics().snapshots_installed;
        if installed != self.live.snapshots_seen {
            self.live.snapshots_seen = installed;
            self.live.hub.touch_all();
        }
        let out_of_touch = self.out_of_touch();
        let follower = self.live.followers.get_mut(&subscription)?;
        if follower.ended {
            return None;
        }
        if let Some(why) = out_of_touch {
            follower.ended = true;
            return Some(LiveFrame::Refused(why.to_string()));
        }
        if let Some(frame) = follower.typing.pop_front() {
            return Some(frame);
        }
        self.live.hub.poll(self.node.state_machine(), subscription).map(LiveFrame::from)
    }

    /// Why this replica should not serve live subscribers, if it should
    /// not: it applied its own removal, or it has long heard from no
    /// leader (a leader that lost its quorum steps down, so a leader is in
    /// touch).
    fn out_of_touch(&self) -> Option<&'static str> {
        let membership = self.node.membership();
        if !membership.is_empty() && !membership.contains(self.node.id()) {
            return Some(REMOVED);
        }
        let named_bug = crate::config::bug_on!(self, serve_while_naming_a_leader)
            && self.node.leader().is_some();
        (!self.leader_heard_lately() && !named_bug).then_some(LEADERLESS)
    }

    /// Open live subscriptions.
    pub fn live_count(&self) -> usize {
        self.live.count()
    }
}
