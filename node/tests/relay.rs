//! A replica reachable only through a relay: it listens on a circuit
//! address of a `kith node --relay-server`, and a client that knows nothing
//! but that circuit address reaches it. Over the relayed connection the
//! client learns the replica's own addresses (identify, DCUtR), so once the
//! relay is gone the chat goes on over a direct connection: on one host
//! nothing stands in the way, behind a NAT DCUtR's hole punch would.

mod support;

use kith_core::im::protocol::{EntryKind, Operation, RoomId, Target, Visibility};
use libp2p::multiaddr::Protocol;
use std::time::Duration;
use support::{connect, history, ok, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_behind_a_relay_is_reached_and_the_connection_goes_direct() {
    let mut cluster = Cluster::start("relay", 1, &[]).await;
    // The relay: another kith node (its own one-replica cluster).
    let relay = cluster.init_replica(&[]);
    cluster.spawn(relay, &["--bootstrap", "--relay-server"]);
    cluster.wait_for_leader(relay).await;

    // The replica also listens on a circuit through the relay.
    let circuit = cluster.replicas[relay].dial_addr().with(Protocol::P2pCircuit);
    cluster.stop(0).await;
    cluster.spawn(0, &["--listen", &circuit.to_string()]);
    cluster.wait_for_leader(0).await;

    let via_relay = circuit.with(Protocol::P2p(cluster.replicas[0].peer));
    let mut client = None;
    for _ in 0..25 {
        // The replica's reservation with the relay takes a moment.
        let attempt = tokio::time::timeout(Duration::from_secs(3), async {
            let mut c = connect(&cluster.operator, via_relay.clone()).await;
            c.submit(Operation::Register { name: "op".into() }).await.map(|o| (c, o))
        })
        .await;
        if let Ok(Ok((c, outcome))) = attempt {
            ok(outcome);
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut client = client.expect("the replica is reachable through the relay");
    let name = "relayed".to_string();
    ok(client
        .submit(Operation::CreateRoom { name: name.clone(), visibility: Visibility::Public })
        .await
        .unwrap());
    let room = RoomId::Group(name);

    // Give the upgrade a moment, then take the relay away: the client was
    // given no address for the replica but the circuit.
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.kill(relay).await;
    let text = "r".repeat(8 * 1024);
    for i in 0..24 {
        let op = Operation::Send { to: Target::Room(room.clone()), text: format!("{i} {text}") };
        let sent = tokio::time::timeout(Duration::from_secs(20), client.submit(op)).await;
        ok(sent.expect("the upgraded connection outlives the relay").unwrap());
    }
    let messages = history(&mut client, &room)
        .await
        .into_iter()
        .filter(|e| matches!(e.kind, EntryKind::Message(_)))
        .count();
    assert_eq!(messages, 24);
}
