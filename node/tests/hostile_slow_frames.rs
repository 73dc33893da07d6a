//! A stranger opens many streams, declares on each a frame just under the
//! frame limit and sends most of it slowly. Each frame is bounded, but
//! before the read budget the total was not: 64 such streams raised a
//! replica's resident memory from 23 MiB to 88 MiB for the request timeout.
//! Now frames are read against one budget for the whole process (32 MiB),
//! so the replica's memory stays under a ceiling however many such streams
//! a stranger opens (here 128, which held 138 MiB before), the connection
//! holding the most is cut off, and the replica still serves its users.
//! Half the streams are client session streams (`/kith/session/1`), read
//! against the same budget.

mod support;

use futures::AsyncWriteExt;
use kith_core::limits;
use kith_io_tokio::net::behaviour::{CLIENT_PROTOCOL, SESSION_PROTOCOL};
use std::time::Duration;
use support::hostile::{resident_bytes, stranger, Seen};
use support::{pid_of, Cluster};

/// Streams the stranger fills, over this many connections (fresh keys).
const STREAMS: usize = 128;
const CONNECTIONS: usize = 4;
/// What the replica may hold, all told, during the attack: its own memory
/// (about 25 MiB) plus the 32 MiB read budget plus slack.
const RESIDENT_CEILING_BYTES: u64 = 80 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_large_frames_do_not_make_a_replica_hold_unbounded_memory() {
    let cluster = Cluster::start("hostile-slow", 1, &[]).await;
    let pid = pid_of(&cluster.replicas[0].dir).expect("the replica runs");
    let before = resident_bytes(pid);
    let mut tasks = Vec::new();
    let mut strangers = Vec::new();
    for _ in 0..CONNECTIONS {
        let s = stranger(cluster.replicas[0].dial_addr(), None).await;
        let peer = cluster.replicas[0].peer;
        for i in 0..STREAMS / CONNECTIONS {
            let mut control = s.control.clone();
            // Half on request streams, half on session streams: both read
            // against the one budget.
            let protocol = if i % 2 == 0 { CLIENT_PROTOCOL } else { SESSION_PROTOCOL };
            tasks.push(tokio::spawn(async move {
                let Ok(mut stream) = control.open_stream(peer, protocol).await else {
                    return;
                };
                let declared = (limits::FRAME_BYTES_MAX as u32 + 4096 - 1).to_be_bytes();
                if stream.write_all(&declared).await.is_err() {
                    return;
                }
                // Most of the frame, slowly; then hold the stream open.
                let piece = vec![0x55u8; 64 * 1024];
                for _ in 0..14 {
                    if stream.write_all(&piece).await.is_err() {
                        return;
                    }
                    let _ = stream.flush().await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_secs(8)).await;
            }));
        }
        strangers.push(s);
    }
    let mut peak = 0;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak = peak.max(resident_bytes(pid));
    }
    println!("replica resident memory: {} MiB before, peak {} MiB", before >> 20, peak >> 20);
    assert!(
        peak < RESIDENT_CEILING_BYTES,
        "the replica held {} MiB during the attack (ceiling {} MiB)",
        peak >> 20,
        RESIDENT_CEILING_BYTES >> 20
    );
    // The connections holding the most were cut off.
    let replica = cluster.replicas[0].peer;
    let mut cut_off = 0;
    for s in &mut strangers {
        let seen: Vec<Seen> = std::iter::from_fn(|| s.seen.try_recv().ok()).collect();
        cut_off +=
            usize::from(seen.iter().any(|e| matches!(e, Seen::Disconnected(p) if *p == replica)));
    }
    assert!(cut_off > 0, "no stranger was disconnected");
    // The refused frames are counted, and summarized once per 10 s window.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !cluster.log_of(0).contains("failed inbound requests from") {
        assert!(std::time::Instant::now() < deadline, "no summary:\n{}", cluster.log_of(0));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // And it still serves a user.
    let mut alice = tokio::time::timeout(Duration::from_secs(15), async {
        support::user(&cluster.keys_dir(), "alice", cluster.addrs()).await
    })
    .await
    .expect("a user registers during the attack");
    let status = alice.admin(kith_core::wire::replica_protocol::AdminRequest::Status).await;
    assert!(status.is_ok());
    for task in tasks {
        task.abort();
    }
}
