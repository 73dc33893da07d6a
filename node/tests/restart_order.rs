//! A replica that comes back before its peers must keep dialing them.
//!
//! Found as a flake in `leader_crash.rs`: after a whole-cluster restart the
//! first replica up dialed the others before they listened; libp2p's
//! request-response forgot each address after that one failed dial, and the
//! cluster stayed without a leader for good once every replica had
//! forgotten the others. Here the two later replicas cannot dial anyone
//! (their saved peer lists are gone), so only the first replica's redials
//! can bring the cluster back.

mod support;

use std::time::Duration;
use support::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_replica_up_keeps_dialing_peers_that_were_down() {
    let mut cluster = Cluster::start("restart-order", 3, &[]).await;
    // Every replica has applied the configuration of three.
    for i in 0..3 {
        let mut tries = 0;
        while cluster.wait_for_leader(i).await.members.len() < 3 {
            tries += 1;
            assert!(tries < 100, "replica {i} never learned the configuration");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for i in 0..3 {
        cluster.stop(i).await;
    }
    for i in 1..3 {
        std::fs::remove_file(cluster.replicas[i].dir.join("peers")).unwrap();
    }

    // Alone, replica 0 campaigns and fails to reach anyone for a while.
    cluster.restart(0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.restart(1);
    cluster.restart(2);

    for i in 0..3 {
        let status = cluster.wait_for_leader(i).await;
        assert!(status.leader.is_some(), "replica {i} sees a leader");
    }
}
