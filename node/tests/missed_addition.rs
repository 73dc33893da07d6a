//! A replica that was down while another was added, and comes back when
//! only the added one can lead, follows it. Replicas take Raft traffic
//! from the replicas their members told them about, not only from the
//! members they have applied; before, the returning replica refused the
//! new leader, which could then never be elected, and nothing moved.

mod support;

use kith_core::wire::replica_protocol::{AdminRequest, AdminResponse};
use kith_io_tokio::peer_ids::node_id_of;
use std::time::Duration;
use support::{connect, history, send_all, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_missed_an_addition_follows_the_added_leader() {
    let mut cluster = Cluster::start("missed-addition", 3, &[]).await;
    let (mut ann, room) = cluster.room_with_owner("ann", "r").await;
    send_all(&mut ann, &room, (0..5).map(|i| format!("before {i}"))).await;
    cluster.stop(2).await;

    // Replica 3 is added while replica 2 is down, and writes go on.
    let added = cluster.init_replica(&[]);
    cluster.join_and_add(added).await;
    send_all(&mut ann, &room, (0..5).map(|i| format!("while 2 was down {i}"))).await;

    // Then replicas 0 and 1 are removed: the voters are 2 and 3, so
    // nothing can be elected until 2 returns, and only 3 can then lead.
    for gone in [0, 1] {
        let peer = cluster.replicas[gone].peer.to_bytes();
        let mut op = cluster.operator_client(added).await;
        match op.admin(AdminRequest::Remove { peer }).await.unwrap() {
            AdminResponse::Changed(_) => {}
            other => panic!("removing replica {gone}: {other:?}"),
        }
    }
    cluster.restart(2);

    let want = node_id_of(&cluster.replicas[added].peer);
    let mut led = false;
    for _ in 0..300 {
        let status = tokio::time::timeout(Duration::from_secs(2), cluster.status(2)).await;
        if status.is_ok_and(|s| s.leader == Some(want) && s.members.len() == 2) {
            led = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(led, "replica 2 never followed the added replica:\n{}", cluster.log_of(2));
    let mut reader = connect(&cluster.operator, cluster.replicas[2].dial_addr()).await;
    let texts: Vec<String> = history(&mut reader, &room)
        .await
        .into_iter()
        .filter_map(|e| match e.kind {
            kith_core::im::protocol::EntryKind::Message(m) => Some(m.text),
            _ => None,
        })
        .collect();
    assert_eq!(texts.len(), 10, "replica 2 serves every message: {texts:?}");
    assert!(texts[5..].iter().all(|t| t.starts_with("while 2 was down")));

    // Ann's client started on replica 0, now removed (and still running):
    // it finds the replicas that serve.
    send_all(&mut ann, &room, ["after the removals".to_string()]).await;
    assert_eq!(history(&mut reader, &room).await.len(), 12, "created + 11 messages");
}
