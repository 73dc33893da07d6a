//! The baseline of the simulator's cost: three raft-rs `RawNode`s over
//! `MemStorage` on madsim's network, at the offered load of the simulated
//! clients, with no IM state machine, no signatures, no faults and no
//! checkers. What is left is madsim (its scheduler, timers and network)
//! and raft-rs: the floor under any simulation of a Raft cluster here.
//!
//! Each node ticks every 100 ms (kith's tick), handles every `Ready` as
//! raft-rs documents, and sends raft-rs's messages in its own encoding as
//! datagrams (default madsim latency). One client task proposes an entry of
//! 200 bytes (a signed chat command's size) to the current leader every
//! `1 / ops_per_s` seconds and counts what the leader commits.

use kith_sim_tests::raw_raft::handle_ready;
use madsim::net::Endpoint;
use madsim::runtime::{Handle, Runtime};
use protobuf::Message as _;
use raft::prelude::{ConfState, Message};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

const TAG: u64 = 1;
const TICK: Duration = Duration::from_millis(100);
/// Bytes of one proposal: about a signed 64-byte chat command.
const PROPOSAL_BYTES: usize = 200;

fn addr(id: u64) -> SocketAddr {
    SocketAddr::from(([10, 9, 0, id as u8], 7000))
}

/// What the nodes share with the client (one process: this is a bench).
#[derive(Default)]
struct Shared {
    /// The node that last became leader, 0 before any.
    leader: AtomicU64,
    committed: AtomicU64,
    /// Each node's proposal queue.
    proposals: Mutex<Vec<mpsc::UnboundedSender<Vec<u8>>>>,
}

/// Runs the three nodes and the client for `seconds` simulated seconds;
/// the entries committed.
pub fn run(seed: u64, seconds: u64, ops_per_s: u64) -> u64 {
    let runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.block_on(async move {
        let shared = Arc::new(Shared::default());
        let handle = Handle::current();
        let mut receivers = Vec::new();
        for _ in 1..=3 {
            let (tx, rx) = mpsc::unbounded_channel();
            shared.proposals.lock().expect("not poisoned").push(tx);
            receivers.push(Arc::new(tokio::sync::Mutex::new(rx)));
        }
        let mut nodes = Vec::new();
        for id in 1..=3u64 {
            let (shared, proposals) = (shared.clone(), receivers[id as usize - 1].clone());
            // The election timeout comes from madsim's seeded generator, as
            // raft-rs's own draw is not deterministic (crates.md).
            let election = 10 + madsim::rand::random::<usize>() % 10;
            nodes.push(
                handle
                    .create_node()
                    .name(format!("raw-{id}"))
                    .ip(addr(id).ip())
                    .init(move || node(id, election, shared.clone(), proposals.clone()))
                    .build(),
            );
        }
        let pause = Duration::from_nanos(1_000_000_000 / ops_per_s.max(1));
        let end = madsim::time::Instant::now() + Duration::from_secs(seconds);
        while madsim::time::Instant::now() < end {
            madsim::time::sleep(pause).await;
            let leader = shared.leader.load(Ordering::Relaxed);
            if leader > 0 {
                let queue =
                    shared.proposals.lock().expect("not poisoned")[leader as usize - 1].clone();
                let _ = queue.send(vec![7u8; PROPOSAL_BYTES]);
            }
        }
        drop(nodes);
        shared.committed.load(Ordering::Relaxed)
    })
}

async fn node(
    id: u64,
    election: usize,
    shared: Arc<Shared>,
    proposals: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<u8>>>>,
) {
    let config = Config {
        id,
        election_tick: election,
        min_election_tick: election,
        max_election_tick: election + 1,
        heartbeat_tick: 1,
        check_quorum: true,
        pre_vote: true,
        ..Config::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let storage = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
    let mut raft = RawNode::new(&config, storage, &logger).expect("a raw node starts");
    let endpoint = Arc::new(Endpoint::bind(addr(id)).await.expect("binds"));
    // madsim's recv is not cancellation safe: receive in a task of its own.
    let (tx, mut inbox) = mpsc::unbounded_channel::<Message>();
    let ep = endpoint.clone();
    madsim::task::spawn(async move {
        let mut buf = vec![0u8; 1 << 20];
        while let Ok((len, _)) = ep.recv_from(TAG, &mut buf).await {
            if let Ok(m) = Message::parse_from_bytes(&buf[..len]) {
                let _ = tx.send(m);
            }
        }
    });
    let mut proposals = proposals.lock().await;
    let mut tick = madsim::time::interval(TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => { raft.tick(); }
            Some(m) = inbox.recv() => { let _ = raft.step(m); }
            Some(data) = proposals.recv() => { let _ = raft.propose(vec![], data); }
        }
        if raft.raft.state == StateRole::Leader {
            shared.leader.store(id, Ordering::Relaxed);
        }
        if let Some(handled) = handle_ready(&mut raft) {
            shared.committed.fetch_add(handled.committed_as_leader as u64, Ordering::Relaxed);
            send(&endpoint, handled.messages).await;
        }
    }
}

async fn send(endpoint: &Endpoint, messages: Vec<Message>) {
    for m in messages {
        if let Ok(bytes) = m.write_to_bytes() {
            let _ = endpoint.send_to(addr(m.to), TAG, &bytes).await;
        }
    }
}
