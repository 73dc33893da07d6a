//! Bad input on every listening port: garbage bytes, truncated, oversized
//! and wrong-version frames, Raft traffic from a stranger, and a flood.
//! The replica stays up, refuses or limits the offender, and loses nothing.

mod support;

use futures::StreamExt;
use kith_core::im::protocol::{Operation, QueryKind, Target};
use kith_core::wire::client_protocol::{ClientRequest, ResponseFrame};
use kith_core::wire::replica_protocol::{self, PeerRequest, PeerResponse};
use kith_io_tokio::key_file::KeyFile;
use kith_io_tokio::net::behaviour::{
    build_swarm, BehaviourEvent, SwarmOptions, CLIENT_PROTOCOL, SNAPSHOT_PROTOCOL,
};
use kith_io_tokio::net::read_budget::HeldFrame;
use libp2p::request_response::{Event, Message};
use libp2p::swarm::SwarmEvent;
use std::time::Duration;
use support::{history, ok, Cluster};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_floods_and_strangers_do_not_hurt_a_replica() {
    let metrics_port = support::free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut cluster = Cluster::start("bad-input", 1, &["--metrics", &metrics_addr]).await;
    let keys = cluster.keys_dir();
    let (mut ann, room) = cluster.room_with_owner("ann", "safe").await;
    ok(ann
        .submit(Operation::Send { to: Target::Room(room.clone()), text: "before".into() })
        .await
        .unwrap());

    // Raw garbage on the TCP port, from several connections at once.
    let port = cluster.replicas[0].addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
        _ => None,
    });
    let mut junk = Vec::new();
    for i in 0..8u8 {
        junk.push(tokio::spawn(async move {
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port.unwrap())).await {
                let bytes: Vec<u8> =
                    (0..256 * 1024).map(|k| (k as u8).wrapping_mul(31) ^ i).collect();
                let _ = s.write_all(&bytes).await;
            }
        }));
    }
    for j in junk {
        j.await.unwrap();
    }

    // A stranger with a valid libp2p identity speaking our protocols badly.
    let stranger = KeyFile::create(&keys.join("stranger.key")).unwrap();
    let mut swarm = build_swarm(stranger.keypair(), &SwarmOptions::default()).unwrap();
    let target = cluster.replicas[0].peer;
    swarm.dial(cluster.replicas[0].dial_addr()).unwrap();
    let frames: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 64],
        vec![7, 0, 1, 2, 3], // unknown version
        replica_protocol::encode(&PeerRequest::Raft(bytes::Bytes::from_static(b"not raft"))),
        replica_protocol::encode(&PeerRequest::Hello(Vec::new()))[..2].to_vec(), // truncated
    ];
    // Paced: every bad frame gets an answer (refused or BadRequest).
    let mut refused_raft = 0;
    for _ in 0..20 {
        let mut expected = 0;
        for f in &frames {
            swarm.behaviour_mut().peer.send_request(&target, HeldFrame::new(f.clone()));
            swarm.behaviour_mut().client.send_request(&target, HeldFrame::new(f.clone()));
            expected += 2;
        }
        let req = kith_core::wire::client_protocol::RequestFrame {
            request_id: 1,
            request: ClientRequest::Query(QueryKind::Rooms),
        };
        let mut wrong = req.encode();
        wrong[0] = 99;
        swarm.behaviour_mut().client.send_request(&target, HeldFrame::new(wrong));
        expected += 1;
        let mut answered = 0;
        while answered < expected {
            let event = tokio::time::timeout(Duration::from_secs(10), swarm.select_next_some())
                .await
                .expect("the replica answers bad frames");
            match event {
                SwarmEvent::Behaviour(BehaviourEvent::Peer(Event::Message {
                    message: Message::Response { response, .. },
                    ..
                })) => {
                    answered += 1;
                    let r = replica_protocol::decode::<PeerResponse>(&response);
                    assert!(matches!(r, Ok(PeerResponse::Refused(_))), "refused, got {r:?}");
                    refused_raft += 1;
                }
                SwarmEvent::Behaviour(BehaviourEvent::Client(Event::Message {
                    message: Message::Response { response, .. },
                    ..
                })) => {
                    answered += 1;
                    let frame = ResponseFrame::decode(&response).expect("answers are valid frames");
                    assert!(
                        matches!(
                            frame.response,
                            kith_core::wire::client_protocol::ClientResponse::BadRequest(_)
                        ),
                        "garbage gets BadRequest, got {:?}",
                        frame.response
                    );
                }
                SwarmEvent::Behaviour(BehaviourEvent::Peer(Event::OutboundFailure { .. }))
                | SwarmEvent::Behaviour(BehaviourEvent::Client(Event::OutboundFailure {
                    ..
                })) => {
                    // The empty frame cannot even be read as a frame: the
                    // replica drops the stream.
                    answered += 1
                }
                _ => {}
            }
        }
    }
    assert!(
        refused_raft >= 20 * 4,
        "a stranger's frames on the peer protocol are refused ({refused_raft})"
    );

    // A flood: thousands of requests at once. The replica sheds streams
    // beyond its limits (and may drop the connection); it must stay up.
    for _ in 0..2000 {
        swarm.behaviour_mut().peer.send_request(&target, HeldFrame::new(frames[3].clone()));
    }
    let flood_end = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < flood_end {
        let _ = tokio::time::timeout(Duration::from_millis(200), swarm.select_next_some()).await;
    }

    // An oversized length prefix on a raw stream: refused before allocation.
    let mut control = swarm.behaviour().stream.new_control();
    tokio::spawn(async move { while swarm.next().await.is_some() {} });

    // A stranger's snapshot stream: every chunk it writes is refused and
    // counted, then an oversized length prefix ends the stream.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = support::metric(&metrics_addr, "kith_raft_frames_refused_total").await;
    if let Ok(mut stream) = control.open_stream(target, SNAPSHOT_PROTOCOL).await {
        use futures::AsyncWriteExt as _;
        for i in 0..10u8 {
            let _ = stream.write_all(&3u32.to_be_bytes()).await;
            let _ = stream.write_all(&[1, 0, i]).await;
        }
        let _ = stream.flush().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = stream.write_all(&u32::MAX.to_be_bytes()).await;
        let _ = stream.close().await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let after = support::metric(&metrics_addr, "kith_raft_frames_refused_total").await;
    assert!(after >= before + 10, "snapshot frames from a stranger refused ({before} -> {after})");

    if let Ok(mut stream) = control.open_stream(target, CLIENT_PROTOCOL).await {
        use futures::AsyncWriteExt as _;
        let _ = stream.write_all(&u32::MAX.to_be_bytes()).await;
        let _ = stream.write_all(&[0u8; 1024]).await;
        let _ = stream.close().await;
    }

    // The replica is still up, and nothing was lost or added.
    ok(ann
        .submit(Operation::Send { to: Target::Room(room.clone()), text: "after".into() })
        .await
        .unwrap());
    let entries = history(&mut ann, &room).await;
    let texts: Vec<String> = entries
        .iter()
        .filter_map(|e| match &e.kind {
            kith_core::im::protocol::EntryKind::Message(m) => Some(m.text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["before", "after"]);
    assert!(
        cluster.replicas[0].child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "still running"
    );

    // The metrics endpoint reports what happened.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut conn = tokio::net::TcpStream::connect(&metrics_addr).await.unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut conn, &mut text).await.unwrap();
    for name in [
        "kith_applied_index",
        "kith_commit_latency_seconds_count",
        "kith_leader_changes_total",
        "kith_peers_connected",
        "kith_proposals_pending",
        "kith_service_call_longest_microseconds",
        "kith_service_calls_slow_total",
    ] {
        assert!(text.contains(name), "metrics lack {name}:\n{text}");
    }
    let refused = text
        .lines()
        .find_map(|l| l.strip_prefix("kith_raft_frames_refused_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("the refused-frames counter is reported");
    assert!(refused >= 20, "refused Raft frames are counted ({refused})");
    cluster.stop(0).await;
}
