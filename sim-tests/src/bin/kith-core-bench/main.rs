//! `kith-core-bench`: the core's commit path in one process, beside the raw
//! raft-rs loop it is built on, measured in the same run (issue 15,
//! benchmark 2; docs/PERFORMANCE.md).
//!
//! - **kith**: three `Node<ImMachine>` wired by function calls, no faults,
//!   every persist batch reported durable at once (no disk: the disk is the
//!   real cluster benchmark's business), the history on the durable-store
//!   model the real node's store follows (`SimHistory`: snapshots commit
//!   the store instead of copying the history), batching as in production
//!   (the leader packs what was submitted since its last poll into one
//!   entry). Commands are signed `Send`s of 64-byte texts, signed before
//!   the clock starts (signatures have their own row).
//! - **raw raft-rs**: three `RawNode<MemStorage>` with the same Raft
//!   configuration, the same payload sizes and the same batching (one entry
//!   per batch), no state machine: the floor under kith's Raft driver.
//!
//! Rows: batched throughput (messages per second), and one client's
//! commit latency (submit on the leader to applied on the leader, p50 and
//! p99). `kith-core-bench --smoke` runs tiny sizes (the test command runs
//! it so the benchmark never rots). The last line is machine-readable.

use bytes::Bytes;
use kith_core::config::Config;
use kith_core::ids::{NodeId, ProposalId};
use kith_core::im::identity::Identity;
use kith_core::im::protocol::{
    CommandBody, Operation, RoomId, SignedCommand, Target, Visibility, IM_PROTOCOL_VERSION,
};
use kith_core::im::ImMachine;
use kith_core::raft::{Input, Node, OnEmptyDisk, Output};
use kith_core::testing::sim_history::SimHistory;
use kith_core::time::Instant as CoreInstant;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

mod raw_loop;

/// Sizes for one run.
struct Sizes {
    /// Messages in the throughput rows.
    messages: usize,
    /// Messages submitted at once (one entry's worth, as a busy leader).
    batch: usize,
    /// Sequential commits in the latency rows.
    latency_samples: usize,
    /// Users the messages come from (each stays within its replay window).
    users: usize,
}

const FULL: Sizes = Sizes { messages: 200_000, batch: 512, latency_samples: 5_000, users: 64 };
const SMOKE: Sizes = Sizes { messages: 2_000, batch: 128, latency_samples: 100, users: 8 };

/// The bench's clock starts here (ms), so commands' issue times are fresh.
const START_MS: u64 = 1_700_000_000_000;
const VOTERS: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];

/// Three kith nodes wired by function calls.
struct KithCluster {
    nodes: BTreeMap<NodeId, Node<ImMachine>>,
    now: CoreInstant,
    wire: VecDeque<(NodeId, NodeId, Bytes)>,
    applied: BTreeSet<ProposalId>,
    /// When the leader last applied a proposal: a client has its answer
    /// then, while the followers apply it afterwards.
    answered_at: Option<Instant>,
}

impl KithCluster {
    fn new() -> KithCluster {
        let now = CoreInstant::from_millis(START_MS);
        let nodes = VOTERS
            .iter()
            .map(|&id| {
                let machine = ImMachine::with_history(Box::new(SimHistory::default()));
                let node = Node::resume(
                    Config::new(id, id.get()),
                    &Default::default(),
                    machine,
                    now,
                    OnEmptyDisk::Bootstrap(&VOTERS),
                )
                .expect("a fresh node starts");
                (id, node)
            })
            .collect();
        let mut cluster = KithCluster {
            nodes,
            now,
            wire: VecDeque::new(),
            applied: BTreeSet::new(),
            answered_at: None,
        };
        cluster.nodes.get_mut(&VOTERS[0]).expect("node 1").campaign(now);
        cluster.settle();
        assert_eq!(cluster.nodes[&VOTERS[0]].leader(), Some(VOTERS[0]), "node 1 leads");
        cluster
    }

    /// Carries out outputs and delivers frames until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for id in VOTERS {
                let node = self.nodes.get_mut(&id).expect("voter");
                while let Some(out) = node.poll_output() {
                    moved = true;
                    match out {
                        Output::Send { to, frame } => self.wire.push_back((id, to, frame)),
                        Output::Persist { id: batch, .. } => {
                            node.handle_input(self.now, Input::Persisted { up_to: batch })
                        }
                        Output::Applied { proposal: Some(p), response, .. } => {
                            assert!(response.result.is_ok(), "{:?}", response.result);
                            self.applied.insert(p);
                            self.answered_at = Some(Instant::now());
                        }
                        Output::Dropped { proposal, outcome } => {
                            panic!("proposal {proposal:?} dropped: {outcome:?}")
                        }
                        _ => {}
                    }
                }
            }
            while let Some((from, to, bytes)) = self.wire.pop_front() {
                moved = true;
                let node = self.nodes.get_mut(&to).expect("voter");
                node.handle_input(self.now, Input::Received { from, bytes });
            }
            if !moved {
                return;
            }
        }
    }

    /// Submits `commands` on the leader and runs until all are applied
    /// everywhere; returns when the leader applied the last of them.
    fn commit(&mut self, commands: &[SignedCommand]) -> Instant {
        self.now = self.now + Duration::from_micros(1);
        let leader = self.nodes.get_mut(&VOTERS[0]).expect("leader");
        let ids: Vec<ProposalId> = commands
            .iter()
            .map(|c| leader.submit(self.now, c).expect("the leader takes it"))
            .collect();
        self.settle();
        for id in ids {
            assert!(self.applied.remove(&id), "proposal {id:?} applied");
        }
        self.answered_at.take().expect("the leader applied them")
    }
}

/// Signed commands: users register, one creates a public room the others
/// join, then `messages` sends of 64-byte texts spread over the users.
fn commands(sizes: &Sizes, messages: usize) -> (Vec<SignedCommand>, Vec<SignedCommand>) {
    let users: Vec<Identity> =
        (0..sizes.users).map(|i| Identity::from_secret([i as u8 + 1; 32])).collect();
    let room = RoomId::Group("bench".into());
    let mut n = 0u128;
    let mut sign = |who: &Identity, op: Operation| {
        n += 1;
        let body = CommandBody {
            version: IM_PROTOCOL_VERSION,
            command_id: uuid::Uuid::from_u128(n),
            issued_at_ms: START_MS,
            op,
        };
        SignedCommand::sign(who, &body)
    };
    let mut setup = Vec::new();
    for (i, u) in users.iter().enumerate() {
        setup.push(sign(u, Operation::Register { name: format!("u{i}") }));
    }
    let create = Operation::CreateRoom { name: "bench".into(), visibility: Visibility::Public };
    setup.push(sign(&users[0], create));
    for u in &users[1..] {
        setup.push(sign(u, Operation::Join { room: room.clone() }));
    }
    let text = "x".repeat(64);
    let sends = (0..messages)
        .map(|i| {
            let to = Target::Room(room.clone());
            sign(&users[i % users.len()], Operation::Send { to, text: text.clone() })
        })
        .collect();
    (setup, sends)
}

/// p50 and p99 of `samples`, in microseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

struct Figures {
    throughput: f64,
    p50_us: f64,
    p99_us: f64,
}

fn kith_figures(sizes: &Sizes) -> Figures {
    let (setup, sends) = commands(sizes, sizes.messages + sizes.latency_samples);
    let (batched, single) = sends.split_at(sizes.messages);
    let mut cluster = KithCluster::new();
    cluster.commit(&setup);
    let started = Instant::now();
    for batch in batched.chunks(sizes.batch) {
        cluster.commit(batch);
    }
    let throughput = batched.len() as f64 / started.elapsed().as_secs_f64();
    let samples = single
        .iter()
        .map(|c| {
            let t = Instant::now();
            cluster.commit(std::slice::from_ref(c)) - t
        })
        .collect();
    let (p50_us, p99_us) = percentiles(samples);
    Figures { throughput, p50_us, p99_us }
}

fn raw_figures(sizes: &Sizes, payload_bytes: usize) -> Figures {
    let mut raw = raw_loop::RawCluster::new();
    let started = Instant::now();
    let mut left = sizes.messages;
    while left > 0 {
        let n = left.min(sizes.batch);
        raw.commit(n, payload_bytes);
        left -= n;
    }
    let throughput = sizes.messages as f64 / started.elapsed().as_secs_f64();
    let samples = (0..sizes.latency_samples)
        .map(|_| {
            let t = Instant::now();
            raw.commit(1, payload_bytes) - t
        })
        .collect();
    let (p50_us, p99_us) = percentiles(samples);
    Figures { throughput, p50_us, p99_us }
}

/// Signing and verifying one command like the benchmark's, in µs.
fn signature_costs() -> (f64, f64) {
    let (_, sends) = commands(&SMOKE, 1);
    let who = Identity::from_secret([1; 32]);
    let body = sends[0].decode_body().expect("decodes");
    let rounds = 2_000;
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(SignedCommand::sign(&who, std::hint::black_box(&body)));
    }
    let sign_us = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    let t = Instant::now();
    for _ in 0..rounds {
        assert!(std::hint::black_box(&sends[0]).verify(None).is_ok());
    }
    let verify_us = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    (sign_us, verify_us)
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let sizes = if smoke { &SMOKE } else { &FULL };
    let (_, one) = commands(&SMOKE, 1);
    // The raw loop proposes what kith's log entries carry per command: the
    // encoded signed command.
    let payload_bytes = postcard::to_allocvec(&one[0]).expect("encodes").len();
    println!(
        "core commit path, 3 replicas in one process: {} messages in batches of {}, \
         {} sequential commits, {payload_bytes}-byte commands{}",
        sizes.messages,
        sizes.batch,
        sizes.latency_samples,
        if smoke { " (smoke sizes: figures mean nothing)" } else { "" }
    );
    let raw = raw_figures(sizes, payload_bytes);
    let kith = kith_figures(sizes);
    let (sign_us, verify_us) = signature_costs();
    println!("{:<34} {:>14} {:>10} {:>10}", "", "messages/s", "p50 µs", "p99 µs");
    for (label, f) in
        [("kith (Node<ImMachine>)", &kith), ("raw raft-rs (RawNode, MemStorage)", &raw)]
    {
        println!("{label:<34} {:>14.0} {:>10.1} {:>10.1}", f.throughput, f.p50_us, f.p99_us);
    }
    let ratio = kith.throughput / raw.throughput;
    println!(
        "kith / raw throughput: {ratio:.2} (target at least 0.50); kith p50 target: at most 10 µs"
    );
    println!("ed25519 per command: sign {sign_us:.1} µs, verify {verify_us:.1} µs (not in the rows above)");
    println!(
        "BENCH core kith_msgs_per_s={:.0} raw_msgs_per_s={:.0} ratio={ratio:.3} kith_p50_us={:.1} \
         kith_p99_us={:.1} raw_p50_us={:.1} raw_p99_us={:.1} sign_us={sign_us:.1} verify_us={verify_us:.1}",
        kith.throughput, raw.throughput, kith.p50_us, kith.p99_us, raw.p50_us, raw.p99_us
    );
}
