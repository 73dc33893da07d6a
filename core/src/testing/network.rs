//! A seeded, sans-I/O network emulator: delay, jitter (hence reordering),
//! loss, duplication, and one-way or two-way partitions. Partitions are
//! checked at delivery time, so frames already in flight are cut too.

use crate::ids::NodeId;
use crate::replica::GossipTopic;
use crate::rng::SeededRng;
use crate::time::Instant;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Fault parameters of the emulated network.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// Probability a frame is lost.
    pub loss: f64,
    /// Probability a frame is delivered twice.
    pub duplicate: f64,
    /// Minimum one-way delay.
    pub delay_min: Duration,
    /// Maximum one-way delay (the spread reorders frames).
    pub delay_max: Duration,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            loss: 0.0,
            duplicate: 0.0,
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(5),
        }
    }
}

/// Which of a replica's protocols a frame travels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// A Raft frame.
    Raft,
    /// A replica-protocol request, with the sender's correlation id.
    Request(u64),
    /// The answer to the request with this correlation id.
    Answer(u64),
    /// A gossip message on a topic.
    Gossip(GossipTopic),
}

/// A frame in flight.
#[derive(Clone, Debug)]
pub struct Packet {
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// The protocol it travels on.
    pub channel: Channel,
    /// Frame bytes.
    pub bytes: Bytes,
}

/// The emulated network.
#[derive(Debug)]
pub struct Network {
    /// Current fault parameters.
    pub config: NetworkConfig,
    rng: SeededRng,
    in_flight: BTreeMap<(Instant, u64), Packet>,
    seq: u64,
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Frames delivered so far.
    pub delivered: u64,
    /// Frames dropped (loss or partition).
    pub dropped: u64,
}

impl Network {
    /// A network whose randomness is fixed by `seed`.
    pub fn new(seed: u64, config: NetworkConfig) -> Network {
        Network {
            config,
            rng: SeededRng::new(seed),
            in_flight: BTreeMap::new(),
            seq: 0,
            blocked: BTreeSet::new(),
            delivered: 0,
            dropped: 0,
        }
    }

    /// Hands a Raft frame to the network at `now`.
    pub fn send(&mut self, now: Instant, from: NodeId, to: NodeId, bytes: Bytes) {
        self.send_on(now, from, to, Channel::Raft, bytes);
    }

    /// Hands a frame on `channel` to the network at `now`.
    pub fn send_on(
        &mut self,
        now: Instant,
        from: NodeId,
        to: NodeId,
        channel: Channel,
        bytes: Bytes,
    ) {
        if self.rng.chance(self.config.loss) {
            self.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.config.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let min = self.config.delay_min.as_micros() as u64;
            let max = self.config.delay_max.as_micros() as u64;
            let at = Instant::from_micros(now.as_micros() + self.rng.range(min, max + 1));
            self.seq += 1;
            self.in_flight
                .insert((at, self.seq), Packet { from, to, channel, bytes: bytes.clone() });
        }
    }

    /// When the next frame is due.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.keys().next().map(|(at, _)| *at)
    }

    /// The next frame due at or before `now` that is not cut by a partition.
    pub fn pop_due(&mut self, now: Instant) -> Option<Packet> {
        loop {
            let key = *self.in_flight.keys().next()?;
            if key.0 > now {
                return None;
            }
            let packet = self.in_flight.remove(&key).expect("key exists");
            if self.blocked.contains(&(packet.from, packet.to)) {
                self.dropped += 1;
                continue;
            }
            self.delivered += 1;
            return Some(packet);
        }
    }

    /// Cuts frames from `from` to `to`.
    pub fn block(&mut self, from: NodeId, to: NodeId) {
        self.blocked.insert((from, to));
    }

    /// Cuts both directions between `a` and `b`.
    pub fn partition_pair(&mut self, a: NodeId, b: NodeId) {
        self.block(a, b);
        self.block(b, a);
    }

    /// Cuts `node` off from everyone in `others`, both ways.
    pub fn isolate(&mut self, node: NodeId, others: &[NodeId]) {
        for &o in others.iter().filter(|&&o| o != node) {
            self.partition_pair(node, o);
        }
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Drops every frame in flight to `node` (it crashed).
    pub fn drop_to(&mut self, node: NodeId) {
        let before = self.in_flight.len();
        self.in_flight.retain(|_, p| p.to != node);
        self.dropped += (before - self.in_flight.len()) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_in_time_order_and_respects_partitions() {
        let mut net = Network::new(1, NetworkConfig::default());
        let (a, b) = (NodeId(1), NodeId(2));
        net.send(Instant::ZERO, a, b, Bytes::from_static(b"x"));
        net.send(Instant::ZERO, b, a, Bytes::from_static(b"y"));
        net.block(a, b);
        let due = Instant::from_millis(10);
        let got: Vec<_> = std::iter::from_fn(|| net.pop_due(due)).collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].from, b);
        assert_eq!(net.dropped, 1);
    }
}
