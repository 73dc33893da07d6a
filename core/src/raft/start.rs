//! Starting a node: a new cluster's first members, an empty joiner, and
//! a replica restarting from its disk (and its state machine's store).

use super::LogStore;
use super::{Membership, Node, NodeMetrics, PersistPipeline, Proposals, Reads, Role, StartError};
use crate::config::Config;
use crate::durable::{DurableHardState, Record, RecoveredLog};
use crate::ids::{LogIndex, NodeId};
use crate::limits;
use crate::rng::SeededRng;
use crate::state_machine::{RestoreError, StateMachine};
use crate::time::Instant;
use crate::wire::{SnapshotAssembler, WireSnapshotMeta};
use raft::eraftpb::ConfState;
use raft::RawNode;
use std::collections::{BTreeSet, VecDeque};

/// What a replica does when its disk holds nothing durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnEmptyDisk<'a> {
    /// Refuse to start: the operator must say whether to bootstrap or join.
    Refuse,
    /// Start (again) as an initial voter of a new cluster of these voters.
    Bootstrap(&'a [NodeId]),
    /// Wait to be added to an existing cluster.
    Join,
}

impl<S: StateMachine> Node<S> {
    /// Starts a member of a brand-new cluster whose initial voters are
    /// `voters`. Emits the initial durable batch.
    pub fn bootstrap(
        config: Config,
        voters: &[NodeId],
        mut machine: S,
        now: Instant,
    ) -> Result<Self, StartError> {
        if voters.is_empty() || voters.len() > limits::PEERS_MAX || !voters.contains(&config.id) {
            return Err(StartError::Membership { max: limits::PEERS_MAX });
        }
        // A durable store left over from an earlier life must not leak in.
        machine.restore(&[])?;
        let mut cs =
            ConfState { voters: voters.iter().map(|v| v.get()).collect(), ..Default::default() };
        cs.voters.sort_unstable();
        cs.voters.dedup();
        let mut node = Self::start(config, LogStore::bootstrap(cs), machine, now)?;
        let meta = node.raw.store().wire_snapshot_meta();
        let data = node.machine.snapshot(LogIndex(meta.index), &encode_meta(&meta));
        if let Some(fault) = node.machine.fault() {
            return Err(StartError::Snapshot(RestoreError::History(fault.to_string())));
        }
        let records = [
            Record::Snapshot { meta, data },
            Record::HardState(node.raw.store().durable_hard_state()),
        ];
        node.emit_persist(&records, true, None, Vec::new());
        Ok(node)
    }

    /// Starts an empty replica that waits to be added to an existing cluster
    /// (it learns everything from the leader, starting with a snapshot).
    pub fn join(config: Config, mut machine: S, now: Instant) -> Result<Self, StartError> {
        machine.restore(&[])?;
        Self::start(config, LogStore::empty(), machine, now)
    }

    /// Starts a replica from what [`crate::durable::recover`] read off its
    /// disk: resumes it when anything durable is there; otherwise does what
    /// `on_empty` says. Every driver starts replicas here, so the rule is
    /// written once.
    ///
    /// An empty disk promised nothing: votes and acknowledgements wait for
    /// the disk, and a bootstrap record is the first thing written. So an
    /// initial voter whose bootstrap record never landed may bootstrap
    /// again, and must (voters that all crashed before it landed would
    /// otherwise leave a cluster that can never elect: found by the
    /// `cluster_ops` fuzz target, and again by the simulator).
    pub fn resume(
        config: Config,
        log: &RecoveredLog,
        mut machine: S,
        now: Instant,
        on_empty: OnEmptyDisk<'_>,
    ) -> Result<Self, StartError> {
        if log.snapshot.is_some() || !log.entries.is_empty() {
            return Self::recover(config, log, machine, now);
        }
        // A joiner can vote, or learn a term, before its first snapshot
        // lands: its disk then holds only that hard state, a promise it
        // must keep. Starting it as a fresh joiner let it vote twice in one
        // term (madsim seed 85 at 30 s, a replacement replica).
        if log.hard_state != DurableHardState::default() {
            machine.restore(&[])?;
            return Self::recover(config, log, machine, now);
        }
        match on_empty {
            OnEmptyDisk::Refuse => Err(StartError::NothingOnDisk),
            OnEmptyDisk::Bootstrap(voters) => Self::bootstrap(config, voters, machine, now),
            OnEmptyDisk::Join => Self::join(config, machine, now),
        }
    }

    /// Restarts a replica from what [`crate::durable::recover`] read off its disk.
    pub fn recover(
        config: Config,
        log: &RecoveredLog,
        mut machine: S,
        now: Instant,
    ) -> Result<Self, StartError> {
        let mut store = LogStore::from_recovered(log)?;
        let mut skipped = false;
        if let Some((_, data)) = &log.snapshot {
            let restored = machine.restore(data)?;
            if let Some((index, encoded)) = restored.ahead {
                // The machine's store committed a later snapshot than the
                // log recorded before the replica stopped: resume from it.
                let meta: WireSnapshotMeta = postcard::from_bytes(&encoded)
                    .ok()
                    .filter(|m: &WireSnapshotMeta| m.index == index.get())
                    .ok_or_else(|| {
                        RestoreError::History("the store's snapshot record is damaged".into())
                    })?;
                let data = machine.snapshot(index, &encoded);
                store.skip_to(meta.to_raft(data));
                skipped = true;
            }
        }
        let mut node = Self::start(config, store, machine, now)?;
        let removed = log.removed.iter().map(|id| NodeId(*id));
        node.removed = removed.filter(|id| !node.membership.contains(*id)).collect();
        if skipped {
            // The log on disk must start again from the adopted snapshot.
            node.persist_new_segment();
        }
        Ok(node)
    }

    fn start(
        config: Config,
        mut store: LogStore,
        machine: S,
        now: Instant,
    ) -> Result<Self, StartError> {
        config.validate()?;
        if !machine.snapshot_is_self_contained() {
            store.set_local_not_sendable();
        }
        let mut rng = SeededRng::new(config.seed);
        // raft-rs draws each election timeout from its own thread-local
        // generator in [min, max); a range of one value pins it to our
        // seeded draw.
        let election = config.election_ticks as u64;
        let timeout = rng.range(election, 2 * election) as usize;
        // The state machine is rebuilt from the snapshot, so the snapshot
        // index is its durable applied index.
        let applied = store.snapshot_index();
        let raft_config = raft::Config {
            id: config.id.get(),
            election_tick: config.election_ticks,
            heartbeat_tick: config.heartbeat_ticks,
            min_election_tick: timeout,
            max_election_tick: timeout + 1,
            applied,
            max_size_per_msg: limits::APPEND_MESSAGE_BYTES_MAX,
            max_inflight_msgs: limits::APPENDS_IN_FLIGHT_MAX,
            check_quorum: true,
            pre_vote: true,
            max_uncommitted_size: limits::UNCOMMITTED_BYTES_MAX,
            max_committed_size_per_ready: limits::APPLY_BATCH_BYTES_MAX,
            batch_append: true,
            ..raft::Config::default()
        };
        let membership =
            Membership::from_conf_state(store.snapshot_ref().get_metadata().get_conf_state());
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&raft_config, store, &logger)
            .map_err(|e| StartError::Raft(e.to_string()))?;
        Ok(Node {
            next_tick_at: now + config.tick_interval,
            config,
            raw,
            machine,
            now,
            ticks: 0,
            applied: LogIndex(applied),
            applied_bytes_since_snapshot: 0,
            outputs: VecDeque::new(),
            proposals: Proposals::default(),
            reads: Reads::default(),
            persist: PersistPipeline::default(),
            assembler: SnapshotAssembler::default(),
            role: Role::Follower,
            leader: None,
            membership,
            removed: BTreeSet::new(),
            halted: None,
            pending_snapshot_reports: Vec::new(),
            metrics: NodeMetrics::default(),
            checkpoint: None,
        })
    }
}

/// Snapshot metadata as the state machine records it beside a durable
/// commit (opaque to the machine; decoded again at recovery).
pub(crate) fn encode_meta(meta: &WireSnapshotMeta) -> Vec<u8> {
    postcard::to_allocvec(meta).expect("metadata encodes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im::ImMachine;

    fn log(hard_state: DurableHardState) -> RecoveredLog {
        RecoveredLog {
            snapshot: None,
            hard_state,
            entries: Vec::new(),
            removed: Vec::new(),
            last_segment_valid_bytes: 0,
            torn_tail_bytes: 0,
        }
    }

    fn resume(log: &RecoveredLog, on_empty: OnEmptyDisk<'_>) -> Node<ImMachine> {
        let config = Config::new(NodeId(9), 1);
        Node::resume(config, log, ImMachine::default(), Instant::ZERO, on_empty).expect("starts")
    }

    #[test]
    fn a_joiner_that_voted_keeps_its_vote() {
        let voted = DurableHardState { term: 15, vote: 7, commit: 0 };
        for on_empty in [OnEmptyDisk::Join, OnEmptyDisk::Bootstrap(&[NodeId(9)])] {
            let node = resume(&log(voted), on_empty);
            assert_eq!(node.raw.store().durable_hard_state(), voted, "{on_empty:?}");
            assert!(node.membership().is_empty(), "it still waits to be added");
        }
    }

    #[test]
    fn an_empty_disk_does_what_the_operator_said() {
        let empty = log(DurableHardState::default());
        assert!(resume(&empty, OnEmptyDisk::Join).membership().is_empty());
        let voters = [NodeId(9)];
        assert!(resume(&empty, OnEmptyDisk::Bootstrap(&voters)).membership().contains(NodeId(9)));
        let refused = Node::resume(
            Config::new(NodeId(9), 1),
            &empty,
            ImMachine::default(),
            Instant::ZERO,
            OnEmptyDisk::Refuse,
        );
        assert!(matches!(refused, Err(StartError::NothingOnDisk)));
    }
}
