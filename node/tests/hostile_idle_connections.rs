//! A stranger floods a replica with TCP connections that open and then
//! send nothing, from one source address, reopening each one the replica
//! closes. Before per-source budgets about 128 of them filled the
//! replica's pending-connection slots and its users got "connection reset"
//! until the handshake deadline; reopening them kept it unreachable. Now
//! that source holds a few slots, and a user who knows only this replica
//! (from another address) registers, sends and reads back within a bound.

mod support;

use kith_core::im::protocol::{EntryKind, Operation, Target};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{history, ok, Cluster};
use tokio::net::TcpSocket;

/// Idle connections the stranger keeps open (or keeps trying to).
const IDLE_CONNECTIONS: usize = 300;

async fn flood(target: SocketAddr, stop: tokio::sync::watch::Receiver<bool>) {
    let mut held = Vec::new();
    while !*stop.borrow() {
        held.retain(|s: &tokio::net::TcpStream| s.peer_addr().is_ok());
        while held.len() < IDLE_CONNECTIONS {
            let socket = TcpSocket::new_v4().expect("a socket");
            // The stranger's own source address (all of 127/8 is loopback).
            if socket.bind("127.0.0.2:0".parse().expect("an address")).is_err() {
                return;
            }
            match tokio::time::timeout(Duration::from_millis(200), socket.connect(target)).await {
                Ok(Ok(stream)) => held.push(stream),
                _ => break,
            }
        }
        // Notice closed connections: a read returns 0 bytes on each.
        let mut open = Vec::new();
        for stream in held.drain(..) {
            let mut byte = [0u8; 1];
            match stream.try_read(&mut byte) {
                Ok(0) => {}
                _ => open.push(stream),
            }
        }
        held = open;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_from_one_source_does_not_lock_users_out() {
    let cluster = Cluster::start("hostile-idle", 1, &[]).await;
    let addr = &cluster.replicas[0].addr;
    let port = addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
        _ => None,
    });
    let target = SocketAddr::from(([127, 0, 0, 1], port.expect("a TCP port")));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let attacker = tokio::spawn(flood(target, stopped));
    // Let the flood fill whatever it can.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let started = Instant::now();
    let talk = async {
        let keys = cluster.keys_dir();
        let mut alice = support::user(&keys, "alice", vec![cluster.replicas[0].dial_addr()]).await;
        let op = Operation::CreateRoom {
            name: "hall".into(),
            visibility: kith_core::im::protocol::Visibility::Public,
        };
        ok(alice.submit(op).await.unwrap());
        let room = kith_core::im::protocol::RoomId::Group("hall".into());
        let op = Operation::Send { to: Target::Room(room.clone()), text: "still here".into() };
        ok(alice.submit(op).await.unwrap());
        history(&mut alice, &room).await
    };
    let entries = tokio::time::timeout(Duration::from_secs(15), talk)
        .await
        .expect("the user registers, sends and reads within 15 s during the flood");
    let _ = stop.send(true);
    let _ = attacker.await;
    assert!(entries
        .iter()
        .any(|e| matches!(&e.kind, EntryKind::Message(m) if m.text == "still here")));
    println!("served during the flood in {:?}", started.elapsed());
    // The refusals are counted, and summarized once per 10 s window.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cluster.log_of(0).contains("refused connections from /ip4/127.0.0.2") {
        assert!(Instant::now() < deadline, "no summary of the refusals:\n{}", cluster.log_of(0));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
