//! Focused, fault-free behaviours of the node, driven through the harness.

use bytes::Bytes;
use kith_core::config::Config;
use kith_core::ids::NodeId;
use kith_core::limits;
use kith_core::raft::{Input, MembershipChange, Node, Output, Role, SubmitError};
use kith_core::testing::cluster::{Cluster, ClusterConfig};
use kith_core::testing::list_machine::{Append, ListMachine};
use kith_core::time::Instant;
use kith_core::wire::{PeerBody, PeerFrame, WireMessage, WireMessageKind};
use kith_sim_tests::invariants::all;
use std::time::Duration;

fn cluster(voters: u64, spares: u64) -> Cluster<ListMachine> {
    let mut config = ClusterConfig::new(7, voters, all);
    config.spares = spares;
    let mut c = Cluster::new(config).expect("boots");
    c.run_for(Duration::from_secs(2)).expect("no violation");
    c
}

fn append(c: &mut Cluster<ListMachine>, value: u64) {
    let leader = c.leader().expect("a leader");
    c.submit(leader, &Append { list: 0, value }).expect("accepted");
}

/// Appends each value 2 ms apart, then lets the cluster settle (long
/// enough runs compact every log).
fn append_paced(c: &mut Cluster<ListMachine>, values: std::ops::Range<u64>) {
    for v in values {
        append(c, v);
        c.run_for(Duration::from_millis(2)).unwrap();
    }
    c.run_for(Duration::from_millis(500)).unwrap();
}

fn applied_everywhere(c: &Cluster<ListMachine>, ids: &[u64], expected: usize) -> bool {
    ids.iter()
        .all(|&id| c.node(NodeId(id)).is_some_and(|n| n.state_machine().list(0).len() == expected))
}

#[test]
fn elects_one_leader_and_replicates() {
    let mut c = cluster(3, 0);
    let leader = c.leader().expect("a leader after 2 s");
    let leaders =
        c.ids().iter().filter(|id| c.node(**id).unwrap().status().role == Role::Leader).count();
    assert_eq!(leaders, 1);
    for v in 0..10 {
        append(&mut c, v);
    }
    c.run_for(Duration::from_millis(500)).unwrap();
    assert!(applied_everywhere(&c, &[1, 2, 3], 10));
    let events = c.take_events();
    let acks = events
        .iter()
        .filter(|e| {
            e.node == leader && matches!(e.output, Output::Applied { proposal: Some(_), .. })
        })
        .count();
    assert_eq!(acks, 10, "exactly one reply per submission, from the accepting node");
}

#[test]
fn followers_refuse_with_a_leader_hint_and_limits_hold() {
    let mut c = cluster(3, 0);
    let leader = c.leader().unwrap();
    let follower = c.ids().into_iter().find(|id| *id != leader).unwrap();
    assert_eq!(
        c.submit(follower, &Append { list: 0, value: 1 }),
        Err(SubmitError::NotLeader { leader_hint: Some(leader) })
    );
}

#[test]
fn far_behind_replica_catches_up_from_a_snapshot() {
    let mut c = cluster(3, 0);
    let leader = c.leader().unwrap();
    let lagging = c.ids().into_iter().find(|id| *id != leader).unwrap();
    c.crash(lagging);
    append_paced(&mut c, 0..300);
    assert!(c.node(leader).unwrap().status().snapshot_index.get() > 64, "leader compacted");
    c.restart(lagging).unwrap();
    c.run_for(Duration::from_secs(2)).unwrap();
    let node = c.node(lagging).unwrap();
    assert!(node.metrics().snapshots_installed >= 1, "caught up by snapshot");
    assert_eq!(node.state_machine().list(0).len(), 300);
    assert_eq!(node.digest(), c.node(leader).unwrap().digest());
}

#[test]
fn membership_changes_add_promote_remove_and_leave_joint() {
    let mut c = cluster(3, 2);
    let change = |c: &mut Cluster<ListMachine>, m: MembershipChange| {
        let leader = c.leader().expect("leader");
        c.change_membership(leader, &m).expect("accepted");
        c.run_for(Duration::from_secs(1)).expect("no violation");
        c.node(c.leader().expect("leader")).unwrap().status().membership
    };
    let m = change(&mut c, MembershipChange::AddLearner(NodeId(4)));
    assert_eq!(m.learners, vec![NodeId(4)]);
    let m = change(&mut c, MembershipChange::Promote(NodeId(4)));
    assert_eq!(m.voters, vec![NodeId(1), NodeId(2), NodeId(3), NodeId(4)]);
    let m = change(
        &mut c,
        MembershipChange::Joint { add_voters: vec![NodeId(5)], remove: vec![NodeId(1)] },
    );
    assert!(!m.is_joint(), "the leader left the joint configuration by itself");
    assert_eq!(m.voters, vec![NodeId(2), NodeId(3), NodeId(4), NodeId(5)]);
    let leader = c.leader().unwrap();
    assert_ne!(leader, NodeId(1));
    let m = change(&mut c, MembershipChange::Remove(leader));
    assert!(!m.voters.contains(&leader));
    c.run_for(Duration::from_secs(2)).unwrap();
    let new_leader = c.leader().expect("a remaining voter took over");
    assert_ne!(new_leader, leader);
    append(&mut c, 99);
    c.run_for(Duration::from_millis(500)).unwrap();
    let voters: Vec<u64> =
        c.node(new_leader).unwrap().status().membership.voters.iter().map(|v| v.get()).collect();
    assert!(applied_everywhere(&c, &voters, 1));
}

/// A replica restarted after its snapshot absorbed a removal still sends
/// the removed replica nothing: not even the reply raft-rs gives a stale
/// leader's heartbeat (which would tell a removed replica it is alive).
#[test]
fn a_restarted_replica_still_refuses_a_member_removed_before_its_snapshot() {
    let mut c = cluster(4, 0);
    let leader = c.leader().unwrap();
    let others: Vec<NodeId> = c.ids().into_iter().filter(|id| *id != leader).collect();
    let (gone, restarted) = (others[0], others[1]);
    c.crash(gone);
    c.change_membership(leader, &MembershipChange::Remove(gone)).expect("accepted");
    c.run_for(Duration::from_secs(1)).unwrap();
    let removal_index = c.node(restarted).unwrap().status().applied;
    append_paced(&mut c, 0..300);
    let compacted = c.node(restarted).unwrap().status().snapshot_index;
    assert!(compacted > removal_index, "the removal is inside the snapshot");
    c.crash(restarted);
    c.restart(restarted).unwrap();
    c.run_for(Duration::from_millis(500)).unwrap();
    c.take_events();
    let stale_heartbeat = PeerFrame {
        from: gone,
        to: restarted,
        body: PeerBody::Raft(WireMessage::new(WireMessageKind::Heartbeat, 1)),
    };
    c.inject_frame(gone, restarted, stale_heartbeat.encode());
    c.run_for(Duration::from_millis(100)).unwrap();
    let answers = c
        .take_events()
        .into_iter()
        .filter(|e| {
            e.node == restarted && matches!(e.output, Output::Send { to, .. } if to == gone)
        })
        .count();
    assert_eq!(answers, 0, "the restarted replica answered the removed one");
    assert!(c.node(restarted).unwrap().metrics().frames_to_removed > 0, "its answer was dropped");
}

/// Found by the madsim swarm (seed 9228, 5 voters): a replica that had
/// applied X's removal refused to answer X even once X was added back and
/// led, so it never caught up to learn of the return.
#[test]
fn a_replica_that_removed_a_member_follows_it_once_it_is_back_and_leads() {
    let mut c = cluster(4, 0);
    let leader = c.leader().unwrap();
    let others: Vec<NodeId> = c.ids().into_iter().filter(|id| *id != leader).collect();
    let (back, lagging) = (others[0], others[1]);
    c.change_membership(leader, &MembershipChange::Remove(back)).expect("accepted");
    append_paced(&mut c, 0..100);
    assert!(!c.node(lagging).unwrap().status().membership.contains(back));
    c.crash(lagging);
    for change in [MembershipChange::AddLearner(back), MembershipChange::Promote(back)] {
        let leader = c.leader().expect("a leader");
        c.change_membership(leader, &change).expect("accepted");
        c.run_for(Duration::from_secs(1)).unwrap();
    }
    let leader = c.leader().expect("a leader");
    c.transfer_leadership(leader, back);
    c.run_for(Duration::from_secs(1)).unwrap();
    assert_eq!(c.leader(), Some(back), "the returned member leads");
    c.restart(lagging).unwrap();
    append(&mut c, 100);
    c.run_for(Duration::from_secs(3)).unwrap();
    let node = c.node(lagging).unwrap();
    assert!(node.status().membership.contains(back), "it learned of the return");
    assert_eq!(node.state_machine().list(0).len(), 101);
}

/// Three replicas wired by hand: which links carry frames and which
/// replicas' disks finish their writes is up to the test.
struct Wired {
    nodes: Vec<Node<ListMachine>>,
    now: Instant,
}

impl Wired {
    /// Hands every output on, `link(from, to)` deciding delivery and
    /// `durable(node, new_segment)` whether a write completes.
    fn pump(&mut self, link: impl Fn(u64, u64) -> bool, durable: impl Fn(u64, bool) -> bool) {
        let mut moved = true;
        while moved {
            moved = false;
            for i in 0..self.nodes.len() {
                let from = i as u64 + 1;
                while let Some(output) = self.nodes[i].poll_output() {
                    moved = true;
                    match output {
                        Output::Send { to, frame } if link(from, to.get()) => {
                            let input = Input::Received { from: NodeId(from), bytes: frame };
                            self.nodes[to.get() as usize - 1].handle_input(self.now, input);
                        }
                        Output::Persist { id, new_segment, .. } if durable(from, new_segment) => {
                            self.nodes[i].handle_input(self.now, Input::Persisted { up_to: id });
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    fn advance(&mut self, by: Duration, only: Option<usize>) {
        self.now = self.now + by;
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if only.is_none_or(|o| o == i) {
                node.handle_timeout(self.now);
            }
        }
    }
}

/// Found by the madsim swarm (seed 1302, which no longer replays it): a
/// far-behind replica installed a snapshot from the leader and, cut off
/// before its disk finished the write, campaigned; raft-rs looked for
/// pending membership changes in the log the snapshot had replaced and
/// panicked. The node now counts an installed snapshot as persisted at once.
#[test]
fn campaigning_while_an_installed_snapshot_is_still_being_written_is_safe() {
    let voters = [NodeId(1), NodeId(2), NodeId(3)];
    let nodes = voters
        .iter()
        .map(|id| {
            let mut config = Config::new(*id, 1302);
            config.snapshot_threshold_entries = 32;
            Node::bootstrap(config, &voters, ListMachine::default(), Instant::ZERO).unwrap()
        })
        .collect();
    let mut w = Wired { nodes, now: Instant::ZERO };
    let not_3 = |from: u64, to: u64| from != 3 && to != 3;
    w.nodes[0].campaign(w.now);
    w.pump(not_3, |_, _| true);
    assert_eq!(w.nodes[0].status().role, Role::Leader);
    for value in 0..100 {
        w.nodes[0].submit(w.now, &Append { list: 0, value }).expect("leader accepts");
        w.pump(not_3, |_, _| true);
        w.advance(Duration::from_millis(10), Some(0));
        w.pump(not_3, |_, _| true);
    }
    assert!(w.nodes[0].status().snapshot_index.get() > 32, "the leader compacted");
    // Node 3 hears from the leader at last; its disk stops finishing
    // writes from the installed snapshot on.
    let stuck = std::cell::Cell::new(false);
    let durable = |node: u64, new_segment: bool| {
        stuck.set(stuck.get() || (node == 3 && new_segment));
        node != 3 || !stuck.get()
    };
    for _ in 0..50 {
        w.advance(Duration::from_millis(50), Some(0));
        w.pump(|from, to| from != 2 && to != 2, durable);
        if w.nodes[2].metrics().snapshots_installed > 0 {
            break;
        }
    }
    assert!(stuck.get(), "node 3 installed the leader's snapshot");
    // Then it is cut off from everyone and campaigns.
    let mut campaigned = false;
    for _ in 0..100 {
        w.advance(Duration::from_millis(50), Some(2));
        w.pump(|_, _| false, durable);
        campaigned |= w.nodes[2].status().role != Role::Follower;
    }
    assert!(campaigned, "node 3 campaigned");
    assert_eq!(w.nodes[2].halted(), None);
    assert!(w.nodes[2].state_machine().list(0).len() > 64, "it holds the snapshot's contents");
}

/// A busy leader packs many commands into each entry, so a count of
/// entries alone let the log (held in memory, replayed after a restart)
/// grow to hundreds of MiB between snapshots: bytes trigger one too.
#[test]
fn a_snapshot_is_due_by_bytes_as_well_as_by_entries() {
    let voters = [NodeId(1), NodeId(2), NodeId(3)];
    for (threshold_bytes, expected) in [(u64::MAX, false), (256, true)] {
        let nodes = voters
            .iter()
            .map(|id| {
                let mut config = Config::new(*id, 7);
                config.snapshot_threshold_entries = 1_000_000;
                config.snapshot_threshold_bytes = threshold_bytes;
                Node::bootstrap(config, &voters, ListMachine::default(), Instant::ZERO).unwrap()
            })
            .collect();
        let mut w = Wired { nodes, now: Instant::ZERO };
        w.nodes[0].campaign(w.now);
        w.pump(|_, _| true, |_, _| true);
        assert_eq!(w.nodes[0].status().role, Role::Leader);
        for value in 0..200 {
            w.nodes[0].submit(w.now, &Append { list: 0, value }).expect("leader accepts");
            w.pump(|_, _| true, |_, _| true);
        }
        for node in &w.nodes {
            let taken = node.metrics().snapshots_taken;
            assert_eq!(taken > 0, expected, "{threshold_bytes} bytes: {taken} snapshots");
            assert_eq!(node.state_machine().list(0).len(), 200, "nothing lost to compaction");
        }
    }
}

#[test]
fn linearizable_read_sees_an_acknowledged_write() {
    let mut c = cluster(3, 0);
    append(&mut c, 5);
    c.run_for(Duration::from_millis(300)).unwrap();
    let follower = c.ids().into_iter().find(|id| Some(*id) != c.leader()).unwrap();
    let read = c.read(follower, 0).expect("read accepted on a follower");
    c.run_for(Duration::from_millis(300)).unwrap();
    let result = c.take_events().into_iter().find_map(|e| match e.output {
        Output::ReadReady { read: r, result, .. } if r == read => Some(result),
        _ => None,
    });
    assert_eq!(result, Some(vec![5]));
}

#[test]
fn bad_frames_are_counted_and_dropped_never_a_panic() {
    let config = Config::new(NodeId(1), 1);
    let mut node =
        Node::bootstrap(config, &[NodeId(1), NodeId(2)], ListMachine::default(), Instant::ZERO)
            .unwrap();
    let now = Instant::ZERO;
    let inputs: Vec<Bytes> = vec![
        Bytes::new(),
        Bytes::from_static(&[0xff; 40]),
        Bytes::from_static(&[1, 1, 2, 0, 0, 0]),
        Bytes::from(vec![0u8; limits::FRAME_BYTES_MAX + 1]),
        Bytes::from_static(&[9, 0]),
    ];
    for bytes in inputs {
        node.handle_input(now, Input::Received { from: NodeId(2), bytes });
    }
    let m = node.metrics();
    assert_eq!(m.frames_received, 5);
    assert_eq!(m.frames_malformed + m.frames_wrong_version + m.frames_invalid, 5);
    assert!(node.halted().is_none());
}

#[test]
fn oversized_commands_are_refused() {
    let big = vec![0u8; limits::COMMAND_BYTES_MAX + 1];
    let mut solo: Node<BytesMachine> =
        Node::bootstrap(Config::new(NodeId(1), 3), &[NodeId(1)], BytesMachine, Instant::ZERO)
            .unwrap();
    solo.campaign(Instant::ZERO);
    while solo.poll_output().is_some() {}
    assert_eq!(solo.status().role, Role::Leader);
    assert!(matches!(solo.submit(Instant::ZERO, &big), Err(SubmitError::TooLarge { .. })));
    assert!(solo.submit(Instant::ZERO, &vec![1, 2, 3]).is_ok());
}

/// A state machine that ignores its (byte-vector) commands.
#[derive(Default)]
struct BytesMachine;

impl kith_core::state_machine::StateMachine for BytesMachine {
    type Command = Vec<u8>;
    type Response = ();
    type Query = ();
    type QueryResult = ();
    fn apply(&mut self, _: kith_core::state_machine::ApplyContext, _: Vec<u8>) {}
    fn query(&self, _: &()) {}
    fn snapshot(&mut self, _: kith_core::ids::LogIndex, _: &[u8]) -> Bytes {
        Bytes::new()
    }
    fn restore(
        &mut self,
        _: &[u8],
    ) -> Result<kith_core::state_machine::Restored, kith_core::state_machine::RestoreError> {
        Ok(Default::default())
    }
    fn digest(&self) -> kith_core::state_machine::Digest {
        kith_core::state_machine::Digest::default()
    }
}
