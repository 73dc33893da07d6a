//! One replica: the replica service's run loop (`kith_core::replica`) over
//! a libp2p swarm and real files. Every decision is the service's; this
//! module moves bytes between the swarm, the disk and the service, keeps
//! time, keeps the address book, and maps the service's askers to libp2p
//! channels.
//!
//! The loop, once per event:
//! 1. carry out every `poll_output()` of the service (answer, send,
//!    persist, publish);
//! 2. fill each live stream's bounded queue from `poll_live` while it has
//!    room;
//! 3. wait for the first of: a swarm event, a disk report, a new live
//!    stream, a session request, a snapshot chunk, a chunk request, a file
//!    task's report, the service's `poll_timeout()`, shutdown;
//!    report it to the service as a fact.

mod askers;
mod client_traffic;
mod clock;
mod files;
mod frame_stream;
mod live;
mod metrics;
mod outputs;
mod peer_faults;
mod peer_links;
mod peer_traffic;
mod sessions;
mod start;

pub use metrics::MetricsSnapshot;
pub use start::{ReplicaError, ReplicaOptions, StartMode};

use crate::net::behaviour::Behaviour;
use crate::net::directory::Directory;
use crate::peer_ids::node_id_of;
use crate::storage::{DiskWriter, WriteReport};
use askers::Askers;
use clock::Clock;
use futures::StreamExt;
use kith_core::replica::{ReplicaService, ServiceInput};
use libp2p::request_response::OutboundRequestId;
use libp2p::{Multiaddr, PeerId, Swarm};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Raft frames queued for one peer's stream; beyond this, frames are
/// dropped (Raft retransmits) so a slow peer cannot grow our memory.
const RAFT_FRAMES_QUEUED_PER_PEER: usize = 256;
/// Raft frames received and not yet taken by the run loop.
const RAFT_FRAMES_RECEIVED_QUEUED: usize = 64;
/// Snapshot chunks queued per peer (256 KiB each).
const CHUNKS_QUEUED_PER_PEER: usize = 64;
/// Snapshot chunks received and not yet taken by the run loop.
const CHUNKS_RECEIVED_QUEUED: usize = 16;
/// How often replicas exchange their directories.
const HELLO_INTERVAL: Duration = Duration::from_secs(2);

/// What an outbound peer request was for.
#[derive(Debug)]
enum Outbound {
    Hello,
    /// A request of a session link to a peer without session streams.
    Linked(crate::net::session_link::Pending),
}

/// The state of a running replica.
struct Replica {
    service: ReplicaService,
    swarm: Swarm<Behaviour>,
    disk: DiskWriter,
    directory: Directory,
    /// Addresses we dial to join; whoever answers there is a join target.
    join_targets: Vec<Multiaddr>,
    join_peers: BTreeSet<PeerId>,
    clock: Clock,
    askers: Askers,
    outbound: BTreeMap<OutboundRequestId, Outbound>,
    live: live::LiveSubscribers,
    raft: frame_stream::FrameSenders,
    snapshots: frame_stream::FrameSenders,
    /// The service's requests to other replicas.
    peer_links: peer_links::PeerLinks,
    metrics: metrics::Metrics,
    /// Faults peers committed, for metrics and bounded logs.
    faults: peer_faults::PeerFaults,
    shared_metrics: Arc<Mutex<MetricsSnapshot>>,
    /// File content: the blob store, the fetches running, and where file
    /// tasks report.
    blobs: crate::storage::BlobStore,
    fetches: BTreeMap<kith_core::files::FileId, tokio::task::AbortHandle>,
    /// Removals still running, which a new fetch of the same file awaits.
    removals: BTreeMap<kith_core::files::FileId, tokio::task::JoinHandle<()>>,
    file_reports: tokio::sync::mpsc::Sender<files::FileReport>,
}

/// Runs a replica until `shutdown` completes (or the node halts).
pub async fn run(
    options: ReplicaOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ReplicaError> {
    let start::Started {
        mut replica,
        mut disk_reports,
        mut live_requests,
        mut streamed,
        mut chunk_requests,
        mut session_requests,
        mut peer_links,
        mut file_reports,
    } = start::start(&options).await?;
    if let Some(addr) = options.metrics {
        metrics::serve(addr, replica.shared_metrics.clone()).await?;
    }
    let mut hello = tokio::time::interval(HELLO_INTERVAL);
    let mut metrics_tick = tokio::time::interval(Duration::from_secs(1));
    tokio::pin!(shutdown);
    loop {
        replica.flush_outputs();
        let live_backlog = replica.pump_live();
        if let Some(reason) = replica.service.node().halted() {
            return Err(ReplicaError::Halted(reason.to_string()));
        }
        let wake = replica.next_wake(live_backlog);
        replica.take_unreadable();
        tokio::select! {
            event = replica.swarm.select_next_some() => replica.on_swarm_event(event),
            report = disk_reports.recv() => match report {
                Some(report) => replica.on_disk(report),
                None => return Err(ReplicaError::Halted("the disk writer stopped".into())),
            },
            Some(request) = live_requests.recv() => replica.on_live_request(request),
            Some(request) = session_requests.recv() => {
                replica.on_session_request(request);
                // One turn of the loop for the requests that arrived together.
                for _ in 1..sessions::SESSION_REQUESTS_QUEUED {
                    let Ok(request) = session_requests.try_recv() else { break };
                    replica.on_session_request(request);
                }
            }
            Some(request) = chunk_requests.recv() => replica.on_chunk_stream(request),
            Some(report) = file_reports.recv() => replica.on_file_report(report),
            Some((request, answer)) = peer_links.answers.recv() => {
                replica.on_linked_answer(kith_core::replica::OutboundId(request), answer)
            }
            Some((peer, (frame, answer))) = peer_links.fallback.recv() => {
                replica.send_peer(peer, frame, Outbound::Linked(answer))
            }
            Some((peer, frame)) = streamed.raft.recv() => {
                replica.on_streamed_frame(peer, frame);
                // Take what else has arrived before carrying out outputs:
                // one turn of the loop for a burst of frames.
                for _ in 1..RAFT_FRAMES_RECEIVED_QUEUED {
                    let Ok((peer, frame)) = streamed.raft.try_recv() else { break };
                    replica.on_streamed_frame(peer, frame);
                }
            }
            Some((peer, frame)) = streamed.snapshots.recv() => replica.on_streamed_frame(peer, frame),
            _ = hello.tick() => {
                replica.redial_join_targets();
                replica.send_hellos();
            }
            _ = tokio::time::sleep_until(wake) => replica.on_timer(),
            _ = metrics_tick.tick() => {
                replica.publish_metrics();
                for line in replica.faults.summaries(std::time::Instant::now()) {
                    tracing::warn!("{line}");
                }
            }
            () = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down: writing the batches already queued");
    let Replica { disk, fetches, .. } = replica;
    for fetch in fetches.values() {
        fetch.abort();
    }
    disk.close();
    tracing::info!("stopped");
    Ok(())
}

impl Replica {
    fn now(&self) -> kith_core::time::Instant {
        self.clock.now()
    }

    /// Reports one fact to the service.
    fn input(&mut self, input: ServiceInput) {
        let now = self.now();
        let started = std::time::Instant::now();
        self.service.handle_input(now, input);
        self.metrics.observe_service_call(started.elapsed(), "an input");
    }

    fn next_wake(&self, live_backlog: bool) -> tokio::time::Instant {
        let mut wake = self.service.poll_timeout().map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(1),
            |t| self.clock.deadline(t),
        );
        if live_backlog {
            wake = wake.min(tokio::time::Instant::now() + Duration::from_millis(20));
        }
        wake
    }

    fn on_timer(&mut self) {
        let now = self.now();
        if self.service.poll_timeout().is_some_and(|t| t <= now) {
            let started = std::time::Instant::now();
            self.service.handle_timeout(now);
            self.metrics.observe_service_call(started.elapsed(), "a timeout");
        }
    }

    fn on_disk(&mut self, report: WriteReport) {
        match report {
            WriteReport::Durable(up_to) => self.input(ServiceInput::Persisted { up_to }),
            WriteReport::Failed { id, reason } => {
                self.input(ServiceInput::PersistFailed { id, reason })
            }
        }
    }

    /// Tells the service every replica the directory holds: members (or
    /// an operator) vouched for each.
    fn vouch_directory(&mut self) {
        let known: Vec<(PeerId, _)> = self.directory.peers().map(|(id, p)| (p, id)).collect();
        for (peer, id) in known {
            debug_assert_eq!(node_id_of(&peer), id);
            // Replicas get the connection reserve, and a place in gossip.
            let behaviour = self.swarm.behaviour_mut();
            behaviour.sources.trust(peer);
            behaviour.limits.bypass_peer_id(&peer);
            behaviour.gossipsub.set_application_score(&peer, 0.0);
            self.input(ServiceInput::ReplicaVouched { id, name: peer.to_string() });
        }
    }
}
