//! The Prometheus text endpoint (`--metrics ADDR`).

use super::peer_faults::PeerFault;
use super::Replica;
use crate::net::read_budget::{READ_BUDGET, READ_BUDGET_BYTES};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Counters the run loop keeps.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(super) raft_frames_shed: u64,
    pub(super) snapshot_chunks_dropped: u64,
    commit_latency_sum: Duration,
    commit_latency_count: u64,
    /// Counts of commits at or under each bucket bound.
    commit_latency_buckets: [u64; BUCKETS_MS.len()],
    /// The longest call into the service since the last publish.
    service_call_longest: Duration,
    /// Calls into the service that held the run loop `SERVICE_CALL_SLOW`
    /// or longer.
    service_calls_slow: u64,
}

/// A call into the service this long holds up everything the replica
/// does (a snapshot's commit of the history store took 30-67 ms in the
/// cluster benchmark, docs/PERFORMANCE.md): counted, and the longest shown.
const SERVICE_CALL_SLOW: Duration = Duration::from_millis(20);
/// Beyond this a call is logged: the cluster's election timeout is of the
/// same order, so peers may have taken this replica for gone.
const SERVICE_CALL_LOGGED: Duration = Duration::from_millis(500);

const BUCKETS_MS: [u64; 8] = [1, 5, 10, 25, 50, 100, 500, 1000];

impl Metrics {
    /// Records how long one call into the service (`what`) held the loop.
    pub(super) fn observe_service_call(&mut self, took: Duration, what: &str) {
        self.service_call_longest = self.service_call_longest.max(took);
        if took >= SERVICE_CALL_SLOW {
            self.service_calls_slow += 1;
        }
        if took >= SERVICE_CALL_LOGGED {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                what,
                "the service held the run loop"
            );
        }
    }

    /// Records one command's time from submission to applied.
    pub(super) fn observe_commit(&mut self, latency: Duration) {
        self.commit_latency_sum += latency;
        self.commit_latency_count += 1;
        for (bound, count) in BUCKETS_MS.iter().zip(&mut self.commit_latency_buckets) {
            if latency <= Duration::from_millis(*bound) {
                *count += 1;
            }
        }
    }
}

/// What the endpoint serves: the text, rebuilt by the run loop.
#[derive(Debug, Default)]
pub struct MetricsSnapshot {
    text: String,
}

impl Replica {
    pub(super) fn publish_metrics(&mut self) {
        let s = self.service.node().status();
        let m = &self.metrics;
        let core = self.service.node().metrics();
        let refused = self.service.metrics().raft_frames_refused;
        let mut text = String::with_capacity(2048);
        let members = s.membership.voters.len() + s.membership.learners.len();
        let longest_us = m.service_call_longest.as_micros() as u64;
        let slow_help = format!(
            "Calls into the replica service that held the run loop {} ms or more.",
            SERVICE_CALL_SLOW.as_millis()
        );
        let series: [(&str, &str, &str, u64); 18] = [
            ("kith_applied_index", "gauge", "Highest log index applied.", s.applied.get()),
            ("kith_commit_index", "gauge", "Highest log index known committed.", s.commit.get()),
            ("kith_term", "gauge", "Current Raft term.", s.term.get()),
            ("kith_is_leader", "gauge", "1 on the leader.", u64::from(s.leader == Some(s.id))),
            (
                "kith_leader_changes_total",
                "counter",
                "Changes of the leader this replica knows of.",
                core.leader_changes,
            ),
            (
                "kith_peers_connected",
                "gauge",
                "Connected libp2p peers.",
                self.swarm.connected_peers().count() as u64,
            ),
            ("kith_members", "gauge", "Voters and learners.", members as u64),
            (
                "kith_proposals_pending",
                "gauge",
                "Client requests awaiting an answer (commands, reads, forwards).",
                self.askers.len() as u64,
            ),
            (
                "kith_forwards_pending",
                "gauge",
                "Client commands forwarded to the leader and not yet answered.",
                self.service.forwards_pending() as u64,
            ),
            (
                "kith_live_subscriptions",
                "gauge",
                "Open live streams.",
                self.service.live_count() as u64,
            ),
            (
                "kith_raft_frames_shed_total",
                "counter",
                "Raft frames dropped at the per-peer in-flight limit.",
                m.raft_frames_shed,
            ),
            (
                "kith_raft_frames_refused_total",
                "counter",
                "Raft frames refused from non-members.",
                refused,
            ),
            (
                "kith_frames_malformed_total",
                "counter",
                "Peer frames that did not decode.",
                core.frames_malformed,
            ),
            ("kith_snapshots_taken_total", "counter", "Snapshots taken.", core.snapshots_taken),
            (
                "kith_snapshots_sent_total",
                "counter",
                "Snapshots sent to peers.",
                core.snapshots_sent,
            ),
            (
                "kith_snapshot_chunks_dropped_total",
                "counter",
                "Snapshot chunks dropped at a full per-peer stream queue.",
                m.snapshot_chunks_dropped,
            ),
            (
                "kith_service_call_longest_microseconds",
                "gauge",
                "The longest call into the replica service since the last update (1 s).",
                longest_us,
            ),
            ("kith_service_calls_slow_total", "counter", &slow_help, m.service_calls_slow),
        ];
        for (name, kind, help, value) in series {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
        }
        let (name, held) = ("kith_read_budget_bytes", READ_BUDGET.used_bytes());
        text.push_str(&format!(
            "# HELP {name} Bytes of frames being read now (budget {READ_BUDGET_BYTES}).\n# TYPE {name} gauge\n{name} {held}\n"
        ));
        for fault in PeerFault::ALL {
            let (name, value) = (fault.metric(), self.faults.total(fault));
            text.push_str(&format!(
                "# HELP {name} Peer faults of this kind.\n# TYPE {name} counter\n{name} {value}\n"
            ));
        }
        text.push_str(
            "# HELP kith_commit_latency_seconds Submission to applied, on the accepting replica.\n",
        );
        text.push_str("# TYPE kith_commit_latency_seconds histogram\n");
        for (bound, count) in BUCKETS_MS.iter().zip(m.commit_latency_buckets) {
            text.push_str(&format!(
                "kith_commit_latency_seconds_bucket{{le=\"{}\"}} {count}\n",
                *bound as f64 / 1000.0
            ));
        }
        text.push_str(&format!(
            "kith_commit_latency_seconds_bucket{{le=\"+Inf\"}} {}\nkith_commit_latency_seconds_sum {}\nkith_commit_latency_seconds_count {}\n",
            m.commit_latency_count,
            m.commit_latency_sum.as_secs_f64(),
            m.commit_latency_count
        ));
        if let Ok(mut shared) = self.shared_metrics.lock() {
            shared.text = text;
        }
        self.metrics.service_call_longest = Duration::ZERO;
    }
}

/// Serves the metrics text over plain HTTP on `addr`.
pub(super) async fn serve(
    addr: SocketAddr,
    metrics: Arc<Mutex<MetricsSnapshot>>,
) -> Result<(), super::ReplicaError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| super::ReplicaError::Metrics { addr, reason: e.to_string() })?;
    tracing::info!(%addr, "serving metrics at /metrics");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                // One request per connection; the request itself is ignored.
                let _ = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await;
                let body = metrics.lock().map(|m| m.text.clone()).unwrap_or_default();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    Ok(())
}
