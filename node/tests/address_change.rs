//! A member that comes back at another address (a new port, as after a
//! host move) is found again: it still knows the others from its
//! directory, dials them, and they learn its new address from it (identify
//! and the directory's hellos), so Raft reaches it there and it catches up.

mod support;

use std::time::{Duration, Instant};
use support::{free_port, send_all, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_at_a_new_address_is_found_again_and_catches_up() {
    let mut cluster = Cluster::start("address-change", 3, &[]).await;
    let (mut owner, room) = cluster.room_with_owner("ann", "moves").await;
    send_all(&mut owner, &room, (0..5).map(|i| format!("before {i}"))).await;

    let moved = (cluster.leader(0).await + 1) % 3;
    cluster.stop(moved).await;
    let new_addr = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    cluster.replicas[moved].addr = new_addr.parse().unwrap();
    cluster.restart(moved);
    send_all(&mut owner, &room, (0..5).map(|i| format!("after {i}"))).await;

    let leader = cluster.leader(0).await;
    let commit = cluster.status(leader).await.commit;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reached = tokio::time::timeout(Duration::from_secs(5), cluster.status(moved)).await;
        if let Ok(status) = reached {
            if status.applied >= commit {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the moved replica never caught up to {commit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The others show it connected at its new home.
    let status = cluster.status(leader).await;
    let id = kith_io_tokio::peer_ids::node_id_of(&cluster.replicas[moved].peer);
    let member = status.members.iter().find(|m| m.id == id).expect("still a member");
    assert!(member.connected, "the leader is connected to the moved replica: {status:?}");
}
