//! A budget on log lines per call site, so that nothing a peer does can
//! flood the log.
//!
//! kith's own code summarizes repeated peer faults (see io-tokio's
//! `peer_faults`), but libraries log some faults once per event: libp2p
//! writes "Dropping inbound stream because we are at capacity" for every
//! stream opened beyond a connection's limit (1,744 lines, about 200 KB,
//! for one connection opening 2,000 streams), yamux "maximum number of
//! streams reached". Each call site may write [`LINES_PER_WINDOW`] lines a
//! window; the rest are counted, and a summary line per call site says how
//! many were suppressed when the window ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::callsite::Identifier;
use tracing::Metadata;

/// Lines one call site may write per window.
pub const LINES_PER_WINDOW: u32 = 20;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Site {
    started: Instant,
    lines: u32,
    suppressed: u64,
    target: String,
    place: String,
}

/// The budget, shared by the filter and the summarizer.
#[derive(Clone, Debug, Default)]
pub struct LogBudget {
    sites: Arc<Mutex<HashMap<Identifier, Site>>>,
}

impl LogBudget {
    /// Whether the event at `meta` may be written now (it is counted
    /// either way). Spans pass.
    pub fn allow(&self, meta: &Metadata<'_>, now: Instant) -> bool {
        if meta.is_span() {
            return true;
        }
        // Keyed by the call site itself: nothing is allocated per event,
        // only when a call site is first seen.
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        let site = sites.entry(meta.callsite()).or_insert_with(|| Site {
            started: now,
            lines: 0,
            suppressed: 0,
            target: meta.target().to_string(),
            place: format!("{}:{}", meta.file().unwrap_or("?"), meta.line().unwrap_or(0)),
        });
        if now.saturating_duration_since(site.started) >= WINDOW && site.suppressed == 0 {
            (site.started, site.lines) = (now, 0);
        }
        if site.lines < LINES_PER_WINDOW {
            site.lines += 1;
            return true;
        }
        site.suppressed += 1;
        false
    }

    /// One line for each call site whose window ended with lines
    /// suppressed; their windows start again.
    pub fn summaries(&self, now: Instant) -> Vec<String> {
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        let mut lines = Vec::new();
        for site in sites.values_mut() {
            let elapsed = now.saturating_duration_since(site.started);
            if elapsed >= WINDOW && site.suppressed > 0 {
                lines.push(format!(
                    "suppressed {} more log lines from {} ({}) in the last {} s",
                    site.suppressed,
                    site.target,
                    site.place,
                    elapsed.as_secs()
                ));
                (site.started, site.lines, site.suppressed) = (now, 0, 0);
            }
        }
        // Forget quiet call sites, so the table stays small.
        sites.retain(|_, s| now.saturating_duration_since(s.started) < WINDOW * 6);
        lines
    }

    /// Writes each summary once its window ends (looking every second),
    /// from a thread of its own.
    pub fn summarize_in_background(&self) {
        let budget = self.clone();
        let spawned = std::thread::Builder::new().name("log-budget".into()).spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            for line in budget.summaries(Instant::now()) {
                tracing::warn!(target: "kith::log_budget", "{line}");
            }
        });
        if let Err(e) = spawned {
            eprintln!("warning: log summaries are off: {e}");
        }
    }
}

/// As a filter: every event is asked about (never cached per call site).
impl<S> tracing_subscriber::layer::Filter<S> for LogBudget {
    fn enabled(&self, meta: &Metadata<'_>, _: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        self.allow(meta, Instant::now())
    }

    fn callsite_enabled(&self, _: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::callsite::Identifier;
    use tracing::metadata::{Kind, Level};

    struct Site;
    impl tracing::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            &META
        }
    }
    static SITE: Site = Site;
    static META: Metadata<'static> = Metadata::new(
        "event",
        "libp2p_request_response::handler",
        Level::WARN,
        Some("handler.rs"),
        Some(169),
        None,
        tracing::field::FieldSet::new(&[], Identifier(&SITE)),
        Kind::EVENT,
    );

    #[test]
    fn a_flood_from_one_call_site_is_cut_to_its_budget_and_summarized() {
        let budget = LogBudget::default();
        let t0 = Instant::now();
        let written = (0..2000).filter(|_| budget.allow(&META, t0)).count();
        assert_eq!(written, LINES_PER_WINDOW as usize);
        assert!(budget.summaries(t0 + Duration::from_secs(1)).is_empty(), "mid-window");
        let lines = budget.summaries(t0 + WINDOW);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("suppressed 1980 more log lines from libp2p_request_response"));
        assert!(budget.allow(&META, t0 + WINDOW), "a new window writes again");
    }
}
