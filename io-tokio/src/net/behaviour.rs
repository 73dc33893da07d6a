//! The libp2p behaviour every kith process runs, and the swarm around it.
//!
//! Replicas and clients use the same behaviour; a client simply never
//! serves the replica protocols. Everything is bounded: request sizes by
//! the codec, concurrent streams per connection by request-response,
//! gossip message size by gossipsub, relay circuits by the relay config.

use super::codec::FrameCodec;
use super::source_budget::SourceBudget;
use kith_core::limits;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    autonat, connection_limits, dcutr, gossipsub, identify, mdns, noise, ping, relay,
    request_response, tcp, yamux, StreamProtocol, Swarm, SwarmBuilder,
};
use std::time::Duration;

/// Replica to replica: Raft frames, forwarded commands, directory hellos.
pub const PEER_PROTOCOL: StreamProtocol = StreamProtocol::new("/kith/peer/1");
/// Client to replica: the client protocol (docs/PROTOCOL.md section 5).
pub const CLIENT_PROTOCOL: StreamProtocol = StreamProtocol::new("/kith/client/1");
/// Operator to replica: cluster status and membership.
pub const ADMIN_PROTOCOL: StreamProtocol = StreamProtocol::new("/kith/admin/1");
/// Live subscriptions: one stream per subscription.
pub const LIVE_PROTOCOL: StreamProtocol = StreamProtocol::new("/kith/live/1");
/// Replica to replica: snapshot chunks, one stream per peer.
pub const SNAPSHOT_PROTOCOL: StreamProtocol = StreamProtocol::new("/kith/snapshot/1");
/// Replica to replica: Raft frames, one stream per peer.
pub const RAFT_PROTOCOL: StreamProtocol = StreamProtocol::new("/kith/raft/1");
/// File content: one chunk request and its answer per stream
/// (docs/PROTOCOL.md, section 12.1).
pub const CHUNKS_PROTOCOL: StreamProtocol = StreamProtocol::new("/kith/chunks/1");
/// Client to replica: the client protocol's requests, many on one stream
/// per client session (docs/PROTOCOL.md section 5.2).
pub const SESSION_PROTOCOL: StreamProtocol = StreamProtocol::new("/kith/session/1");
/// Replica to replica: the peer protocol's requests (forwarded commands),
/// many on one stream per peer (docs/PROTOCOL.md section 5.2).
pub const PEER_SESSION_PROTOCOL: StreamProtocol = StreamProtocol::new("/kith/peer-session/1");
/// Gossipsub topic for signed presence announcements.
pub const PRESENCE_TOPIC: &str = "kith/presence/1";
/// Gossipsub topic for signed typing notices.
pub const TYPING_TOPIC: &str = "kith/typing/1";
/// Identify's protocol version string.
pub const IDENTIFY_VERSION: &str = "kith/1";

/// Largest request-response frame: a core frame plus its envelope.
pub(crate) const RR_FRAME_BYTES_MAX: usize = limits::FRAME_BYTES_MAX + 4096;
/// Concurrent inbound plus outbound request streams per connection, per
/// request-response protocol.
const RR_STREAMS_MAX: usize = 128;
/// Streams per connection, all protocols. yamux buffers what a stream's
/// sender was credited (256 KiB, the yamux default window, refilled only as
/// the reader consumes) before the codec reads it into the read budget, so
/// this bounds what one connection can park outside the budget (32 MiB,
/// and only while its frames are being read: a frame the budget refuses
/// resets its stream and frees its window). Raft and snapshots take one
/// stream each per peer; forwarded commands and hellos take a stream each
/// while they are answered.
const YAMUX_STREAMS_MAX: usize = 128;
const _: () = assert!(RR_STREAMS_MAX <= YAMUX_STREAMS_MAX);

/// Connections a process holds at once, and per peer: a flood of
/// connections is refused at the door rather than served.
const CONNECTIONS_MAX: u32 = 1024;
const CONNECTIONS_PER_PEER_MAX: u32 = 4;
const PENDING_INCOMING_MAX: u32 = 128;
/// How long a connection may take to dial and finish its handshakes
/// (libp2p's default is 10 s): a connection that sends nothing holds a
/// pending slot only this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(4);

/// The behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Caps on connections per source address (first, so it can deny
    /// before others allocate).
    pub sources: SourceBudget,
    /// Caps on connections in all and per peer; replicas of the cluster
    /// bypass them (the reserve).
    pub limits: connection_limits::Behaviour,
    /// Exchanges listen addresses and observed addresses.
    pub identify: identify::Behaviour,
    /// Liveness.
    pub ping: ping::Behaviour,
    /// `/kith/peer/1`.
    pub peer: request_response::Behaviour<FrameCodec>,
    /// `/kith/client/1`.
    pub client: request_response::Behaviour<FrameCodec>,
    /// `/kith/admin/1`.
    pub admin: request_response::Behaviour<FrameCodec>,
    /// Live subscription streams.
    pub stream: libp2p_stream::Behaviour,
    /// Presence (best effort; nothing that must not be lost uses it).
    pub gossipsub: gossipsub::Behaviour<gossipsub::IdentityTransform, KithTopics>,
    /// Reaching peers behind NAT through a relay.
    pub relay_client: relay::client::Behaviour,
    /// Hole punching after a relayed connection.
    pub dcutr: dcutr::Behaviour,
    /// Learning whether our addresses are publicly reachable.
    pub autonat: autonat::Behaviour,
    /// Relay server mode (off unless asked for).
    pub relay_server: Toggle<relay::Behaviour>,
    /// Local discovery (off unless asked for).
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Options that change the swarm.
#[derive(Clone, Debug, Default)]
pub struct SwarmOptions {
    /// Run a relay server, with limits raised for chat.
    pub relay_server: bool,
    /// Discover peers on the local network by multicast DNS.
    pub mdns: bool,
    /// Request timeout for the client protocol (replicas answer after commit).
    pub request_timeout: Option<Duration>,
}

fn rr(protocol: StreamProtocol, timeout: Duration) -> request_response::Behaviour<FrameCodec> {
    request_response::Behaviour::with_codec(
        FrameCodec::new(RR_FRAME_BYTES_MAX),
        [(protocol, request_response::ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(timeout)
            .with_max_concurrent_streams(RR_STREAMS_MAX),
    )
}

/// The application score of a peer that is not a replica of the cluster:
/// times the default weight of 10, -60 is below gossipsub's publish (-50)
/// and gossip (-10) thresholds, so nothing is published or gossiped to it
/// and it is never grafted into a mesh, yet above the graylist (-80), so
/// its subscriptions are still heard should it turn out to be a replica.
pub const STRANGER_GOSSIP_SCORE: f64 = -6.0;

/// The only topics a peer's subscriptions are heard on: a subscription to
/// any other (junk) topic is dropped, so it costs nothing to keep.
pub type KithTopics = gossipsub::WhitelistSubscriptionFilter;

fn kith_topics() -> KithTopics {
    let topics = [PRESENCE_TOPIC, TYPING_TOPIC];
    gossipsub::WhitelistSubscriptionFilter(
        topics.iter().map(|t| gossipsub::IdentTopic::new(*t).hash()).collect(),
    )
}

/// Peer scoring for kith's topics: a message the replica service refuses
/// costs its sender heavily (two put it on the graylist). The mesh-delivery
/// penalties are off: presence and typing are too sparse for a delivery
/// quota to mean anything.
fn gossip_scores() -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let mut params = gossipsub::PeerScoreParams::default();
    for topic in [PRESENCE_TOPIC, TYPING_TOPIC] {
        let topic_params = gossipsub::TopicScoreParams {
            mesh_message_deliveries_weight: 0.0,
            mesh_failure_penalty_weight: 0.0,
            invalid_message_deliveries_weight: -100.0,
            invalid_message_deliveries_decay: 0.5,
            ..gossipsub::TopicScoreParams::default()
        };
        params.topics.insert(gossipsub::IdentTopic::new(topic).hash(), topic_params);
    }
    (params, gossipsub::PeerScoreThresholds::default())
}

/// Relay limits for chat: the defaults (2 minutes, 128 KiB per circuit) cut
/// off a conversation or a file transfer mid-way. The budgets a stranger
/// meets: 128 reservations (4 per peer), 64 circuits (4 per peer), each at
/// most an hour and 256 MiB, so at most 16 GiB relayed an hour; libp2p's
/// default rate limits on reservations and circuits per peer and per IP
/// address stay on; and the relay's own connections go through the
/// per-source connection budgets like any other.
fn relay_config() -> relay::Config {
    relay::Config {
        max_reservations: 128,
        max_reservations_per_peer: 4,
        max_circuit_duration: Duration::from_secs(60 * 60),
        max_circuit_bytes: 256 << 20,
        max_circuits: 64,
        max_circuits_per_peer: 4,
        ..relay::Config::default()
    }
}

/// A relay server that serves from the start. By default libp2p only
/// advertises the relay protocol once AutoNAT has confirmed an external
/// address, which a small kith deployment (or a private network) may never
/// do: an operator who asks for a relay gets one.
fn relay_server(peer_id: libp2p::PeerId) -> relay::Behaviour {
    let mut relay = relay::Behaviour::new(peer_id, relay_config());
    relay.set_status(Some(relay::Status::Enable));
    relay
}

/// Why the swarm could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building the libp2p swarm: {0}")]
pub struct SwarmError(String);

fn err(e: impl std::fmt::Display) -> SwarmError {
    SwarmError(e.to_string())
}

/// yamux with at most [`YAMUX_STREAMS_MAX`] streams per connection.
fn yamux_config() -> yamux::Config {
    let mut config = yamux::Config::default();
    config.set_max_num_streams(YAMUX_STREAMS_MAX);
    config
}

/// Builds the swarm: TCP and QUIC, noise, yamux, DNS, relay client.
pub fn build_swarm(
    key: libp2p::identity::Keypair,
    options: &SwarmOptions,
) -> Result<Swarm<Behaviour>, SwarmError> {
    let request_timeout = options.request_timeout.unwrap_or(Duration::from_secs(30));
    let swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux_config)
        .map_err(err)?
        .with_quic()
        .with_dns()
        .map_err(err)?
        .with_relay_client(noise::Config::new, yamux_config)
        .map_err(err)?
        .with_behaviour(|key, relay_client| {
            let peer_id = key.public().to_peer_id();
            let gossip_config = gossipsub::ConfigBuilder::default()
                .max_transmit_size(16 * 1024)
                .heartbeat_interval(Duration::from_secs(1))
                .validation_mode(gossipsub::ValidationMode::Strict)
                // Nothing is forwarded before the replica service has
                // checked it (`report_message_validation_result`).
                .validate_messages()
                .build()
                .map_err(|e| e.to_string())?;
            let mut gossipsub = gossipsub::Behaviour::new_with_subscription_filter(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
                kith_topics(),
            )?;
            let (scores, thresholds) = gossip_scores();
            gossipsub.with_peer_score(scores, thresholds)?;
            let mdns = if options.mdns {
                Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)?)
            } else {
                None
            };
            let limits = connection_limits::ConnectionLimits::default()
                .with_max_established(Some(CONNECTIONS_MAX))
                .with_max_established_per_peer(Some(CONNECTIONS_PER_PEER_MAX))
                .with_max_pending_incoming(Some(PENDING_INCOMING_MAX));
            Ok(Behaviour {
                sources: SourceBudget::default(),
                limits: connection_limits::Behaviour::new(limits),
                identify: identify::Behaviour::new(identify::Config::new(
                    IDENTIFY_VERSION.into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
                peer: rr(PEER_PROTOCOL, Duration::from_secs(10)),
                client: rr(CLIENT_PROTOCOL, request_timeout),
                admin: rr(ADMIN_PROTOCOL, request_timeout),
                stream: libp2p_stream::Behaviour::new(),
                gossipsub,
                relay_client,
                dcutr: dcutr::Behaviour::new(peer_id),
                autonat: autonat::Behaviour::new(peer_id, autonat::Config::default()),
                relay_server: options.relay_server.then(|| relay_server(peer_id)).into(),
                mdns: mdns.into(),
            })
        })
        .map_err(err)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .with_connection_timeout(HANDSHAKE_TIMEOUT)
        .build();
    Ok(swarm)
}
