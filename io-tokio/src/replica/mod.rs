//! One replica: the run loop documented in `kith_core` over a libp2p swarm
//! and real files. Everything that decides lives in the core; this module
//! moves bytes between the swarm, the disk and the node, keeps time, and
//! remembers who is waiting for which answer.
//!
//! The loop, once per event:
//! 1. carry out every `poll_output()` of the node (send, persist, answer);
//! 2. hand live subscribers what the hub has for them, as far as their
//!    bounded queues allow;
//! 3. wait for the first of: a swarm event, a disk report, a new live
//!    subscription, the node's `poll_timeout()`, shutdown.

mod askers;
mod client_traffic;
mod clock;
mod live;
mod metrics;
mod outputs;
mod peer_traffic;
mod snapshot_stream;
mod start;

pub use metrics::MetricsSnapshot;
pub use start::{ReplicaError, ReplicaOptions, StartMode};

use crate::net::behaviour::Behaviour;
use crate::net::directory::Directory;
use crate::storage::{DiskWriter, WriteReport};
use askers::{AdminAsker, Asker};
use clock::Clock;
use futures::StreamExt;
use kith_core::ids::{ProposalId, ReadId};
use kith_core::im::presence::PresenceTable;
use kith_core::im::subscriptions::SubscriptionHub;
use kith_core::im::ImMachine;
use kith_core::node::{Input, Node};
use libp2p::request_response::OutboundRequestId;
use libp2p::{Multiaddr, PeerId, Swarm};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Outstanding Raft requests per peer; beyond this, frames are dropped
/// (Raft retransmits) so a slow peer cannot grow our memory.
const RAFT_IN_FLIGHT_PER_PEER_MAX: usize = 256;
/// Client requests this replica forwards to the leader at once; beyond
/// this, clients are told to back off.
const FORWARDS_MAX: usize = 1024;
/// How often replicas exchange their directories.
const HELLO_INTERVAL: Duration = Duration::from_secs(2);

/// What an outbound peer request was for.
#[derive(Debug)]
enum Outbound {
    Raft(PeerId),
    Forward(Asker),
    Admin(AdminAsker),
    Hello,
}

/// The state of a running replica.
struct Replica {
    node: Node<ImMachine>,
    swarm: Swarm<Behaviour>,
    disk: DiskWriter,
    directory: Directory,
    /// Peers we dialed to join; trusted for their directory.
    join_targets: Vec<Multiaddr>,
    join_peers: BTreeSet<PeerId>,
    admins: BTreeSet<PeerId>,
    clock: Clock,
    proposals: BTreeMap<ProposalId, (Asker, kith_core::time::Instant)>,
    reads: BTreeMap<ReadId, Asker>,
    admin_proposals: BTreeMap<ProposalId, AdminAsker>,
    outbound: BTreeMap<OutboundRequestId, Outbound>,
    /// Client commands forwarded to the leader and not yet answered.
    forwards: usize,
    /// Commands whose signatures this replica checked (clients retry).
    verified: kith_core::im::verified_commands::VerifiedCommands,
    raft_in_flight: BTreeMap<PeerId, usize>,
    hub: SubscriptionHub,
    live: live::LiveSubscribers,
    snapshots: snapshot_stream::SnapshotSenders,
    presence: PresenceTable,
    metrics: metrics::Metrics,
    shared_metrics: Arc<Mutex<MetricsSnapshot>>,
}

/// Runs a replica until `shutdown` completes (or the node halts).
pub async fn run(
    options: ReplicaOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ReplicaError> {
    let (mut replica, mut disk_reports, mut live_requests, mut snapshot_chunks) =
        start::start(&options).await?;
    if let Some(addr) = options.metrics {
        metrics::serve(addr, replica.shared_metrics.clone()).await?;
    }
    let mut hello = tokio::time::interval(HELLO_INTERVAL);
    let mut metrics_tick = tokio::time::interval(Duration::from_secs(1));
    tokio::pin!(shutdown);
    loop {
        replica.flush_outputs();
        let live_backlog = replica.pump_live();
        if let Some(reason) = replica.node.halted() {
            return Err(ReplicaError::Halted(reason.to_string()));
        }
        let wake = replica.next_wake(live_backlog);
        tokio::select! {
            event = replica.swarm.select_next_some() => replica.on_swarm_event(event),
            report = disk_reports.recv() => match report {
                Some(report) => replica.on_disk(report),
                None => return Err(ReplicaError::Halted("the disk writer stopped".into())),
            },
            Some(request) = live_requests.recv() => replica.on_live_request(request),
            Some((peer, frame)) = snapshot_chunks.recv() => replica.on_snapshot_chunk(peer, frame),
            _ = hello.tick() => {
                replica.redial_join_targets();
                replica.send_hellos();
            }
            _ = tokio::time::sleep_until(wake) => replica.on_timer(),
            _ = metrics_tick.tick() => replica.publish_metrics(),
            () = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down: writing the batches already queued");
    let Replica { disk, .. } = replica;
    disk.close();
    tracing::info!("stopped");
    Ok(())
}

impl Replica {
    fn now(&self) -> kith_core::time::Instant {
        self.clock.now()
    }

    fn next_wake(&self, live_backlog: bool) -> tokio::time::Instant {
        let node = self.node.poll_timeout();
        let presence = self.presence.poll_timeout();
        let at = [node, presence].into_iter().flatten().min();
        let mut wake = at.map_or_else(
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
        if self.node.poll_timeout().is_some_and(|t| t <= now) {
            self.node.handle_timeout(now);
        }
        self.presence.expire(now);
    }

    fn on_disk(&mut self, report: WriteReport) {
        let now = self.now();
        match report {
            WriteReport::Durable(up_to) => self.node.handle_input(now, Input::Persisted { up_to }),
            WriteReport::Failed { id, reason } => {
                self.node.handle_input(now, Input::PersistFailed { id, reason })
            }
        }
    }
}
