//! What one seed draws: the network's loss, duplication and latency, how
//! often faults come, which fault families are on, where history lives and
//! how often replicas snapshot. Printed at the start of every run.
//!
//! Families added after the first seeds were banked draw from streams of
//! their own (the seed XOR a tag), so seeds without them replay exactly as
//! they did before those families existed.

use super::{Scenario, SimConfig};
use kith_core::ids::NodeId;
use kith_core::rng::SeededRng;
use madsim::net::NetSim;
use std::time::Duration;

/// The parameters of one run.
pub(super) struct Draw {
    pub(super) loss: f64,
    pub(super) duplicate: f64,
    pub(super) latency_ms: (u64, u64),
    pub(super) mean_gap_ms: u64,
    /// A spare replica exists and membership changes are among the faults.
    pub(super) membership: bool,
    /// Replicas keep history on a durable store that loses uncommitted
    /// writes when killed, as the real node's database does.
    pub(super) durable_history: bool,
    /// Disks fill up and reads fail now and then (drawn from this stream
    /// when set).
    pub(super) disk_faults: Option<SeededRng>,
    /// Swizzle-clogs happen now and then (drawn from this stream when set).
    pub(super) swizzle: Option<SeededRng>,
    /// Applied entries between snapshots on every replica.
    pub(super) snapshot_threshold_entries: u64,
    /// The file workload runs, with chunk answers corrupted on the wire at
    /// this rate, and its blob faults drawn from this stream.
    pub(super) files: Option<(f64, SeededRng)>,
}

impl Draw {
    /// Draws the run's parameters; `rng` is the run's main stream, which the
    /// fault schedule goes on drawing from.
    pub(super) fn new(config: &SimConfig, rng: &mut SeededRng) -> Draw {
        let random = config.faults && config.scenario.is_none();
        let base_loss = rng.range(0, 20);
        // A quarter of the seeds lose 20-30 %.
        let mut lossy = SeededRng::new(config.seed ^ 0x6c6f_7373);
        let lossier = config.scenario.is_none() && lossy.chance(0.25);
        let loss_percent = if lossier { lossy.range(20, 31) } else { base_loss };
        let duplicate_percent = if config.faults { rng.range(0, 6) } else { 0 };
        let latency_lo = rng.range(1, 5);
        let latency_ms = (latency_lo, latency_lo + rng.range(1, 40));
        let stream = |tag: u64| SeededRng::new(config.seed ^ tag);
        let family = |tag: u64| {
            let mut s = stream(tag);
            (random && s.chance(0.5)).then_some(s)
        };
        Draw {
            loss: if config.faults { loss_percent as f64 / 100.0 } else { 0.0 },
            duplicate: duplicate_percent as f64 / 100.0,
            latency_ms,
            mean_gap_ms: rng.range(300, 1000),
            membership: random && stream(0x6d65_6d62).chance(0.5),
            durable_history: config
                .durable_history
                .unwrap_or_else(|| stream(0x6869_7374).chance(0.5)),
            disk_faults: family(0x6675_6c6c),
            swizzle: family(0x7377_697a),
            files: family(0x6669_6c65).map(|mut s| (s.range(0, 6) as f64 / 100.0, s)),
            snapshot_threshold_entries: config.scenario.map_or_else(
                || snapshot_threshold(config.seed),
                Scenario::snapshot_threshold_entries,
            ),
        }
    }

    /// The parameters line every run prints first.
    pub(super) fn describe(&self, config: &SimConfig) -> String {
        let mut line = format!(
            "voters={} clients={} loss={:.2} duplicate={:.2} latency={}..{}ms fault_gap~{}ms \
             fault_phase={}s snapshot_every={}",
            config.voters,
            config.clients,
            self.loss,
            self.duplicate,
            self.latency_ms.0,
            self.latency_ms.1,
            self.mean_gap_ms,
            config.fault_phase.as_secs(),
            self.snapshot_threshold_entries,
        );
        if let Some(s) = config.scenario {
            line += &format!(" scenario={s:?}");
        }
        for (on, name) in [
            (self.membership, " membership_changes"),
            (self.durable_history, " durable_history"),
            (self.disk_faults.is_some(), " disk_faults"),
            (self.swizzle.is_some(), " swizzle_clog"),
        ] {
            if on {
                line += name;
            }
        }
        if let Some((corrupt, _)) = &self.files {
            line += &format!(" files(corrupt={corrupt:.2})");
        }
        line
    }

    /// Sets madsim's network to the drawn loss and latency.
    pub(super) fn configure(&self, net: &NetSim) {
        net.update_config(|c| {
            c.packet_loss_rate = self.loss;
            c.send_latency =
                Duration::from_millis(self.latency_ms.0)..Duration::from_millis(self.latency_ms.1);
        });
    }
}

/// Most seeds snapshot every 128 entries, to exercise compaction and
/// catch-up by snapshot often; some every 64; some every 1,024 and some at
/// the node's default, so restarts also replay long logs and laggards
/// catch up from the log as they mostly do in production.
fn snapshot_threshold(seed: u64) -> u64 {
    let mut stream = SeededRng::new(seed ^ 0x736e_6170);
    match stream.range(0, 20) {
        0..=3 => 64,
        4..=11 => 128,
        12..=16 => 1_024,
        _ => kith_core::config::Config::new(NodeId(1), seed).snapshot_threshold_entries,
    }
}
