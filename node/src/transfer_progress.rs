//! Progress of a transfer for people and scripts: a bar with bytes, rate
//! and ETA on a terminal, JSON progress events with `--json` (at most five
//! a second, and the last one always), nothing when piped without `--json`.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often `--json` reports progress at most.
const JSON_EVERY: Duration = Duration::from_millis(200);

/// One phase of a transfer (hashing, uploading, fetching).
#[derive(Clone)]
pub struct TransferProgress {
    phase: &'static str,
    total_bytes: u64,
    shown: Shown,
}

#[derive(Clone)]
enum Shown {
    Bar(ProgressBar),
    Json(Arc<Mutex<Option<Instant>>>),
    Nothing,
}

impl TransferProgress {
    /// Starts showing `phase` of `total_bytes`.
    pub fn new(json: bool, phase: &'static str, total_bytes: u64) -> TransferProgress {
        let shown = if json {
            Shown::Json(Arc::new(Mutex::new(None)))
        } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let bar = ProgressBar::new(total_bytes);
            let style = ProgressStyle::with_template(
                "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(phase);
            Shown::Bar(bar)
        } else {
            Shown::Nothing
        };
        TransferProgress { phase, total_bytes, shown }
    }

    /// `bytes` of the total are done.
    pub fn set(&self, bytes: u64) {
        let bytes = bytes.min(self.total_bytes);
        match &self.shown {
            Shown::Bar(bar) => bar.set_position(bytes),
            Shown::Json(last) => {
                let mut last = last.lock().expect("not poisoned");
                if last.is_some_and(|at| at.elapsed() < JSON_EVERY) {
                    return;
                }
                *last = Some(Instant::now());
                self.print(bytes);
            }
            Shown::Nothing => {}
        }
    }

    /// The phase is over, at `bytes`.
    pub fn finish(&self, bytes: u64) {
        match &self.shown {
            Shown::Bar(bar) => {
                bar.set_position(bytes.min(self.total_bytes));
                bar.finish_and_clear();
            }
            Shown::Json(_) => self.print(bytes.min(self.total_bytes)),
            Shown::Nothing => {}
        }
    }

    fn print(&self, bytes: u64) {
        let event = json!({
            "event": "progress",
            "phase": self.phase,
            "bytes": bytes,
            "total_bytes": self.total_bytes,
        });
        // A closed stdout (the reader went away) must not stop the transfer.
        let _ = writeln!(std::io::stdout(), "{event}");
    }
}
