//! Open-loop load: message `i` is due at `i / rate` seconds after the
//! start, whatever happened to the messages before it, so a slow
//! acknowledgement shows as latency of the messages queued behind it
//! rather than as fewer messages sent (no coordinated omission).
//!
//! A message's latency counts from its due time when its sender was still
//! busy with an earlier one then (it waited in the client), and from the
//! moment it was sent otherwise (so the load generator's timer lag, up to
//! a millisecond here, is not charged to the system).

use anyhow::Result;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One sender of the open-loop load (it owns a connection).
pub trait OpenLoopSender: Send + 'static {
    /// Sends message `i` and waits for its acknowledgement.
    fn send(&mut self, i: u64) -> impl Future<Output = Result<()>> + Send;
}

/// The messages' due times and when each one's latency starts.
pub struct Schedule {
    t0: Instant,
    rate_per_s: u64,
    /// Nanoseconds after `t0` each message's latency starts; `u64::MAX`
    /// until it is sent.
    starts: Vec<AtomicU64>,
}

impl Schedule {
    /// `rate_per_s` messages a second for `seconds`, starting shortly.
    pub fn new(rate_per_s: u64, seconds: u64) -> Arc<Schedule> {
        let count = rate_per_s * seconds;
        Arc::new(Schedule {
            t0: Instant::now() + Duration::from_millis(100),
            rate_per_s,
            starts: (0..count).map(|_| AtomicU64::new(u64::MAX)).collect(),
        })
    }

    /// How many messages the schedule sends.
    pub fn count(&self) -> u64 {
        self.starts.len() as u64
    }

    fn due(&self, i: u64) -> Instant {
        self.t0 + Duration::from_nanos(i * 1_000_000_000 / self.rate_per_s)
    }

    /// Time from message `i`'s start to `now` (its delivery), if it is one
    /// of the schedule's and was sent.
    pub fn since_start(&self, i: u64, now: Instant) -> Option<Duration> {
        let start = self.starts.get(i as usize)?.load(Ordering::Acquire);
        (start != u64::MAX)
            .then(|| now.saturating_duration_since(self.t0 + Duration::from_nanos(start)))
    }
}

/// Runs the schedule: message `i` goes through sender `i % senders.len()`.
/// Each message's time from its start to its acknowledgement, in no order.
pub async fn run<S: OpenLoopSender>(
    schedule: Arc<Schedule>,
    senders: Vec<S>,
) -> Result<(Vec<Duration>, Vec<S>)> {
    let n = senders.len() as u64;
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(k, mut sender)| {
            let schedule = schedule.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut i = k as u64;
                while i < schedule.count() {
                    let due = schedule.due(i);
                    let busy_past_due = Instant::now() > due;
                    tokio::time::sleep_until(due.into()).await;
                    let start = if busy_past_due { due } else { Instant::now() };
                    let offset = start.duration_since(schedule.t0).as_nanos() as u64;
                    schedule.starts[i as usize].store(offset, Ordering::Release);
                    sender.send(i).await?;
                    acked.push(start.elapsed());
                    i += n;
                }
                anyhow::Ok((acked, sender))
            })
        })
        .collect();
    let (mut all, mut senders) = (Vec::new(), Vec::new());
    for t in tasks {
        let (acked, sender) = t.await??;
        all.extend(acked);
        senders.push(sender);
    }
    Ok((all, senders))
}

/// p50, p99 and p99.9 of `samples`, in milliseconds (zeros when empty).
pub fn percentiles(mut samples: Vec<Duration>) -> [f64; 3] {
    if samples.is_empty() {
        return [0.0; 3];
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    [at(0.50), at(0.99), at(0.999)]
}
