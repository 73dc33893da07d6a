//! A hostile stranger for the process tests: a libp2p peer with a fresh
//! key and no account, running kith's own behaviour (so it can open raw
//! streams on any protocol and publish gossip), driven in a task of its own.

use futures::StreamExt;
use kith_io_tokio::net::behaviour::{build_swarm, Behaviour, SwarmOptions};
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, Multiaddr, PeerId, Swarm};
use std::time::Duration;
use tokio::sync::mpsc;

/// What the stranger saw.
#[derive(Debug)]
pub enum Seen {
    Connected(PeerId),
    Disconnected(PeerId),
}

/// A stranger's swarm, run by a background task.
pub struct Stranger {
    /// Opens raw streams on any protocol.
    pub control: libp2p_stream::Control,
    /// Publishes (topic, message) on gossip.
    pub gossip: mpsc::Sender<(String, Vec<u8>)>,
    /// Connections made and lost.
    pub seen: mpsc::Receiver<Seen>,
}

/// Starts a stranger connected to `addr` (subscribed to `topic`, if any).
pub async fn stranger(addr: Multiaddr, topic: Option<&str>) -> Stranger {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let mut swarm: Swarm<Behaviour> = build_swarm(key, &SwarmOptions::default()).unwrap();
    if let Some(topic) = topic {
        swarm.behaviour_mut().gossipsub.subscribe(&gossipsub::IdentTopic::new(topic)).unwrap();
    }
    swarm.dial(addr).unwrap();
    let control = swarm.behaviour().stream.new_control();
    let (gossip, mut to_publish) = mpsc::channel::<(String, Vec<u8>)>(64);
    let (tell, seen) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = swarm.select_next_some() => {
                    let seen = match event {
                        SwarmEvent::ConnectionEstablished { peer_id, .. } => Seen::Connected(peer_id),
                        SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                            Seen::Disconnected(peer_id)
                        }
                        _ => continue,
                    };
                    let _ = tell.try_send(seen);
                }
                Some((topic, data)) = to_publish.recv() => {
                    let topic = gossipsub::IdentTopic::new(topic);
                    let _ = swarm.behaviour_mut().gossipsub.publish(topic, data);
                }
            }
        }
    });
    Stranger { control, gossip, seen }
}

/// Waits up to `within` for what the stranger sees to match `wanted`.
pub async fn until_seen(
    s: &mut Stranger,
    within: Duration,
    wanted: impl Fn(&Seen) -> bool,
) -> bool {
    tokio::time::timeout(within, async {
        while let Some(seen) = s.seen.recv().await {
            if wanted(&seen) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false)
}

/// A process's resident memory, in bytes.
pub fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    kib * 1024
}
