//! The baseline: three raft-rs `RawNode`s over `MemStorage`, wired by
//! function calls, with kith's Raft configuration and no state machine.
//! Each `Ready` is handled as raft-rs documents: persist entries and hard
//! state, send messages, count committed entries, advance.

use kith_sim_tests::raw_raft::handle_ready;
use raft::prelude::{ConfState, Message};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole};
use std::collections::VecDeque;
use std::time::Instant;

/// Three raw nodes; node 1 leads.
pub struct RawCluster {
    nodes: Vec<RawNode<MemStorage>>,
    wire: VecDeque<Message>,
    committed: usize,
    /// When the leader last saw an entry committed.
    committed_at: Option<Instant>,
}

fn config(id: u64) -> Config {
    Config {
        id,
        election_tick: 10,
        heartbeat_tick: 1,
        max_size_per_msg: kith_core::limits::APPEND_MESSAGE_BYTES_MAX,
        max_inflight_msgs: kith_core::limits::APPENDS_IN_FLIGHT_MAX,
        check_quorum: true,
        pre_vote: true,
        max_uncommitted_size: kith_core::limits::UNCOMMITTED_BYTES_MAX,
        max_committed_size_per_ready: kith_core::limits::APPLY_BATCH_BYTES_MAX,
        batch_append: true,
        ..Config::default()
    }
}

impl RawCluster {
    /// Starts the three nodes and elects node 1.
    pub fn new() -> RawCluster {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let nodes = (1..=3)
            .map(|id| {
                let storage =
                    MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
                RawNode::new(&config(id), storage, &logger).expect("a raw node starts")
            })
            .collect();
        let mut cluster =
            RawCluster { nodes, wire: VecDeque::new(), committed: 0, committed_at: None };
        cluster.nodes[0].campaign().expect("node 1 campaigns");
        cluster.settle();
        assert_eq!(cluster.nodes[0].raft.state, StateRole::Leader, "node 1 leads");
        cluster
    }

    /// Handles every node's `Ready` and delivers messages until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                if self.ready(i) {
                    moved = true;
                }
            }
            while let Some(m) = self.wire.pop_front() {
                moved = true;
                let to = m.to as usize - 1;
                self.nodes[to].step(m).expect("a message steps");
            }
            if !moved {
                return;
            }
        }
    }

    /// One `Ready` of node `i`, if it has one.
    fn ready(&mut self, i: usize) -> bool {
        let Some(handled) = handle_ready(&mut self.nodes[i]) else { return false };
        self.wire.extend(handled.messages);
        if handled.committed_as_leader > 0 {
            self.committed += handled.committed_as_leader;
            self.committed_at = Some(Instant::now());
        }
        true
    }

    /// Proposes `commands` payloads of `bytes` each, packed into one entry
    /// as kith batches them, and runs until nothing moves; returns when
    /// the leader saw the entry committed (what a client waits for).
    pub fn commit(&mut self, commands: usize, bytes: usize) -> Instant {
        let before = self.committed;
        // One entry per batch, as kith packs a batch: its payload is the
        // commands side by side (kith adds a length per command).
        let data = vec![7u8; commands * (bytes + 2)];
        self.nodes[0].propose(vec![], data).expect("the leader takes it");
        self.settle();
        assert_eq!(self.committed, before + 1, "the entry committed");
        self.committed_at.take().expect("the leader saw it committed")
    }
}
