//! One connection opens thousands of streams. libp2p refuses those beyond
//! its per-connection limits and, before the log budget, wrote a warning
//! for each (1,744 lines, about 200 KB, per 2,000 streams). Now each call
//! site writes a bounded number of lines per window and a summary of the
//! rest, so the log grows by a bounded amount whatever a peer does; and
//! yamux now refuses streams beyond `YAMUX_STREAMS_MAX` per connection
//! before libp2p sees them, which writes nothing at all.

mod support;

use kith_io_tokio::net::behaviour::CLIENT_PROTOCOL;
use std::time::Duration;
use support::hostile::stranger;
use support::Cluster;

const STREAMS: usize = 2_000;
/// Log bytes the whole flood may add (before: about 200 KB).
const LOG_GROWTH_MAX_BYTES: usize = 16 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_flood_adds_a_bounded_amount_of_log() {
    let cluster = Cluster::start("hostile-streams", 1, &[]).await;
    let before = cluster.log_of(0).len();
    let s = stranger(cluster.replicas[0].dial_addr(), None).await;
    let peer = cluster.replicas[0].peer;
    let mut held = Vec::new();
    let mut control = s.control.clone();
    for _ in 0..STREAMS {
        let opened = tokio::time::timeout(
            Duration::from_secs(2),
            control.open_stream(peer, CLIENT_PROTOCOL),
        )
        .await;
        // One the replica refuses (or resets) is simply not held.
        if let Ok(Ok(stream)) = opened {
            held.push(stream);
        }
    }
    // Let the replica notice and log what it will: the first lines, then
    // a summary of the rest once the 10 s window ends (if it logged any).
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    while !cluster.log_of(0)[before..].contains("suppressed")
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = cluster.log_of(0);
    let grown = log.len() - before;
    println!("{} streams held open; the log grew by {grown} bytes", held.len());
    assert!(
        grown < LOG_GROWTH_MAX_BYTES,
        "the log grew by {grown} bytes for {STREAMS} streams:\n{}",
        &log[before..]
    );
    // The replica still serves a user on another connection.
    let mut alice = tokio::time::timeout(Duration::from_secs(15), async {
        support::user(&cluster.keys_dir(), "alice", cluster.addrs()).await
    })
    .await
    .expect("a user registers after the flood");
    assert!(alice.admin(kith_core::wire::replica_protocol::AdminRequest::Status).await.is_ok());
}
