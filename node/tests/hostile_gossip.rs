//! A stranger (no key registered, not a replica) joins the presence topic
//! and publishes junk into it. Before, it was grafted into the replicas'
//! mesh and nothing happened to it. Now the replica service checks every
//! message before gossipsub forwards it, and a stranger that sends one it
//! refuses is disconnected (and scored down, so it is never grafted).

mod support;

use kith_io_tokio::net::behaviour::PRESENCE_TOPIC;
use std::time::Duration;
use support::hostile::{stranger, until_seen, Seen};
use support::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_publishing_invalid_gossip_is_disconnected() {
    let cluster = Cluster::start("hostile-gossip", 1, &[]).await;
    let replica = cluster.replicas[0].peer;
    let mut s = stranger(cluster.replicas[0].dial_addr(), Some(PRESENCE_TOPIC)).await;
    assert!(
        until_seen(
            &mut s,
            Duration::from_secs(10),
            |e| matches!(e, Seen::Connected(p) if *p == replica)
        )
        .await,
        "the stranger connects"
    );
    // Give gossipsub a moment to exchange subscriptions, then publish junk
    // until the replica hangs up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut cut_off = false;
    for i in 0..20u8 {
        let _ = s.gossip.send((PRESENCE_TOPIC.to_string(), vec![0xde, 0xad, i])).await;
        if until_seen(
            &mut s,
            Duration::from_millis(500),
            |e| matches!(e, Seen::Disconnected(p) if *p == replica),
        )
        .await
        {
            cut_off = true;
            break;
        }
    }
    assert!(cut_off, "the replica disconnects a stranger that publishes invalid gossip");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !cluster.log_of(0).contains("invalid gossip messages from") {
        assert!(std::time::Instant::now() < deadline, "no summary:\n{}", cluster.log_of(0));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
