//! A live subscription ends when its client goes away, even in a room
//! where nothing more happens. Before, the replica noticed only when a
//! frame to the client failed, so subscriptions to quiet rooms outlived
//! their clients, and every one was polled (two history reads) on every
//! turn of the replica's loop: 100 of them cost the cluster benchmark a
//! third of its throughput (docs/PERFORMANCE.md).

mod support;

use kith_core::wire::client_protocol::{LiveFrame, RoomFrom};
use std::time::Duration;
use support::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_ends_when_its_client_goes_away() {
    let metrics = format!("127.0.0.1:{}", support::free_port());
    let cluster = Cluster::start("live-client-gone", 1, &["--metrics", &metrics]).await;
    let (mut owner, room) = cluster.room_with_owner("alice", "quiet").await;
    let subscriptions = || support::metric(&metrics, "kith_live_subscriptions");
    let mut frames = owner.subscribe(vec![RoomFrom::new(room, 0, 0)]).await.unwrap();
    // The room's first entry arrives: the subscription is open.
    let first = tokio::time::timeout(Duration::from_secs(10), frames.recv()).await.unwrap();
    assert!(matches!(first, Some(LiveFrame::Entry { .. })), "{first:?}");
    // Metrics are refreshed every second.
    let until = |want: u64, why: &'static str| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while subscriptions().await != want {
            assert!(tokio::time::Instant::now() < deadline, "{why}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    until(1, "the subscription is counted").await;
    // The client goes away; nothing more happens in the room.
    drop(frames);
    drop(owner);
    until(0, "the subscription outlived its client").await;
}
