//! Three replica processes; clients send concurrently; the leader is killed
//! with SIGKILL mid-stream and restarted. Every acknowledged message must
//! then be present exactly once, in the same order, on every replica; and
//! after a whole-cluster stop and restart the history must be identical.

mod support;

use kith_core::im::protocol::{EntryKind, Operation, Receipt, RoomId, Target};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::{connect, history, ok, user, Cluster};

const WRITERS: usize = 3;
const MESSAGES_PER_WRITER: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_a_leader_crash_and_a_full_restart() {
    let mut cluster = Cluster::start("leader-crash", 3, &[]).await;
    let keys = cluster.keys_dir();
    let (_owner, room) = cluster.room_with_owner("owner", "general").await;

    // Writers, each starting on a different replica and failing over.
    let acked = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut addrs = cluster.addrs();
        addrs.rotate_left(w);
        let mut client = user(&keys, &format!("writer{w}"), addrs).await;
        ok(client.submit(Operation::Join { room: room.clone() }).await.unwrap());
        let (room, acked) = (room.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut receipts = Vec::new();
            for i in 0..MESSAGES_PER_WRITER {
                let text = format!("w{w}-{i}");
                let op = Operation::Send { to: Target::Room(room.clone()), text: text.clone() };
                let command = client.sign(op);
                // The same signed command is resent until acknowledged.
                let outcome = loop {
                    match client.submit_signed(&command).await {
                        Ok(outcome) => break outcome,
                        Err(e) => eprintln!("writer {w}: {e}; retrying"),
                    }
                };
                let Receipt::Appended { seq, .. } = ok(outcome) else { panic!("not appended") };
                receipts.push((text, seq));
                acked.fetch_add(1, Ordering::SeqCst);
            }
            receipts
        }));
    }

    // Mid-stream: kill the leader with SIGKILL, then restart it.
    while acked.load(Ordering::SeqCst) < WRITERS * MESSAGES_PER_WRITER / 4 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let leader = cluster.leader(0).await;
    cluster.kill(leader).await;
    let killed_at = acked.load(Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    cluster.restart(leader);

    let mut acknowledged = BTreeMap::new();
    for w in writers {
        for (text, seq) in w.await.unwrap() {
            assert!(acknowledged.insert(text, seq).is_none());
        }
    }
    assert_eq!(acknowledged.len(), WRITERS * MESSAGES_PER_WRITER);
    assert!(killed_at < acknowledged.len(), "the crash happened mid-stream");

    // Every replica (each queried on its own) holds the same history, with
    // every acknowledged message exactly once at its acknowledged seq.
    let reference = replica_histories(&cluster, &room).await;
    for (text, seq) in &acknowledged {
        let found: Vec<u64> =
            reference.iter().filter(|(_, t)| t == text).map(|(s, _)| *s).collect();
        assert_eq!(found, vec![*seq], "{text} must be present once, at seq {seq}");
    }

    // Whole-cluster stop and restart: history identical afterwards.
    for i in 0..3 {
        cluster.stop(i).await;
    }
    for i in 0..3 {
        cluster.restart(i);
    }
    cluster.wait_for_leader(0).await;
    let after = replica_histories(&cluster, &room).await;
    assert_eq!(after, reference, "history changed across a full restart");
}

/// The room's messages as (seq, text), asserting every replica agrees.
async fn replica_histories(cluster: &Cluster, room: &RoomId) -> Vec<(u64, String)> {
    let key = &cluster.operator;
    let mut reference: Option<Vec<(u64, String)>> = None;
    for i in 0..cluster.replicas.len() {
        let mut client = connect(key, cluster.replicas[i].dial_addr()).await;
        let entries = history(&mut client, room).await;
        for (k, e) in entries.iter().enumerate() {
            assert_eq!(e.seq, k as u64 + 1, "replica {i}: sequence numbers have no gaps");
        }
        let messages: Vec<(u64, String)> = entries
            .into_iter()
            .filter_map(|e| match e.kind {
                EntryKind::Message(m) => Some((e.seq, m.text)),
                _ => None,
            })
            .collect();
        match &reference {
            None => reference = Some(messages),
            Some(r) => assert_eq!(&messages, r, "replica {i} disagrees"),
        }
    }
    reference.unwrap()
}
