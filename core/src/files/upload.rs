//! The client's side of an upload, sans I/O: which replicas to ask to
//! store a content, when to ask again, and when the upload is over.
//!
//! Rules (docs/PROTOCOL.md, section 12.2):
//! - Besides the replica the client talks to (slot 0), as many others as
//!   make a majority with it are asked at once (slot k is the replica k
//!   places after it in the client's list). Each fetches from the client in
//!   parallel, so the file message's answer (a majority holds the content)
//!   does not wait for a second replica to copy the content from the first
//!   once the first holds it all. Helpers are best effort: one that fails,
//!   refuses or cannot be reached is not asked again.
//! - `Storing` is asked again after a pause (short: a replica holds the
//!   answer until the content is stored, so asking at once costs little).
//! - The first `Stored`, from any replica asked, ends the upload: the log
//!   records a holder, and the file message may be sent. The driver keeps
//!   serving until the file message is answered (the others go on).
//! - Slot 0 is asked again after a failed call (no answer, connection
//!   lost: the stall rule bounds those) and after `StoreFailed` (asking
//!   again starts over: the disk may have room now) until
//!   [`UploadConfig::store_failures_max`] `StoreFailed` answers come in a
//!   row; any other refusal ends the upload.
//! - An upload that takes no byte from the client for
//!   [`UploadConfig::stall`] is over (a replica whose disk is full, say);
//!   nothing was acknowledged, and asking again goes on.
//!
//! # The run loop a driver writes
//!
//! ```text
//! let mut upload = Upload::new(now, file, replicas_known, served_bytes, config);
//! loop {
//!     while let Some(output) = upload.poll_output() {
//!         match output {
//!             Ask { slot, step } => send StoreFile(file) on slot's connection
//!                 (slot 0: the client's own; slot k: one to the replica `step`
//!                 after it); report Answered { slot, reply } or Failed { slot },
//!             Stored => send the file message (keep serving until answered),
//!             Over(error) => report it; nothing was sent,
//!         }
//!     }
//!     wait for an answer or upload.poll_timeout(); report it, and the
//!     offer's served bytes: upload.handle_input(now, ..) or
//!     upload.handle_timeout(now)
//! }
//! ```

use crate::files::FileId;
use crate::im::protocol::ImError;
use crate::limits;
use crate::session::StoreReply;
use crate::time::Instant;
use std::collections::VecDeque;
use std::time::Duration;

/// How patient an upload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadConfig {
    /// The first pause before asking a replica again.
    pub pause_first: Duration,
    /// The longest pause before asking a replica again.
    pub pause_max: Duration,
    /// How long the upload may take nothing from the client.
    pub stall: Duration,
    /// `StoreFailed` answers from slot 0 in a row after which the upload
    /// is over.
    pub store_failures_max: u32,
}

impl Default for UploadConfig {
    fn default() -> UploadConfig {
        UploadConfig {
            pause_first: Duration::from_millis(limits::UPLOAD_ASK_PAUSE_FIRST_MS),
            pause_max: Duration::from_millis(limits::UPLOAD_ASK_PAUSE_MAX_MS),
            stall: Duration::from_millis(limits::UPLOAD_STALL_MS),
            store_failures_max: limits::UPLOAD_STORE_FAILURES_MAX,
        }
    }
}

/// A fact the driver reports.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum UploadInput {
    /// A replica answered a slot's `StoreFile`.
    Answered {
        /// The slot asked.
        slot: usize,
        /// Its answer.
        reply: StoreReply,
    },
    /// A slot's call ended without an answer (or its connection could not
    /// be made).
    Failed {
        /// The slot asked.
        slot: usize,
    },
    /// The client's offer has served this many group bytes in all (a
    /// counter that only grows; any starting point).
    Served {
        /// The counter.
        bytes_total: u64,
    },
}

/// A command for the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UploadOutput {
    /// Send `StoreFile` on `slot`'s connection, to the replica `step`
    /// places after the client's own in its list (slot 0 is the client's
    /// own connection).
    Ask {
        /// The slot.
        slot: usize,
        /// Places after the client's replica.
        step: usize,
    },
    /// A replica holds the content: send the file message.
    Stored,
    /// The upload is over without a holder.
    Over(UploadError),
}

/// Why an upload ended without a holder.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The replica will not store it.
    #[error("{0}")]
    Refused(ImError),
    /// Nothing was taken from the client for this long.
    #[error("the replica has taken nothing for {} s (is its disk full? see its log)", .0.as_secs())]
    Stalled(Duration),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ask {
    /// A call is out.
    Out,
    /// To be asked again at this time.
    Paused(Instant),
    /// Not asked again.
    Done,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    ask: Ask,
    pause: Duration,
}

/// One upload. See the module docs.
#[derive(Debug)]
pub struct Upload {
    file: FileId,
    config: UploadConfig,
    slots: Vec<Slot>,
    /// `StoreFailed` answers on slot 0 in a row.
    failures: u32,
    served_at_start: u64,
    served: u64,
    moved_at: Instant,
    over: bool,
    outputs: VecDeque<UploadOutput>,
}

impl Upload {
    /// An upload of `file` by a client that knows `replicas_known`
    /// replicas and whose offer has served `served_bytes` so far. Asks
    /// every slot at once.
    pub fn new(
        now: Instant,
        file: FileId,
        replicas_known: usize,
        served_bytes: u64,
        config: UploadConfig,
    ) -> Upload {
        let count = helpers_for(replicas_known) + 1;
        let slot = Slot { ask: Ask::Out, pause: config.pause_first };
        let outputs = (0..count).map(|slot| UploadOutput::Ask { slot, step: slot }).collect();
        Upload {
            file,
            config,
            slots: vec![slot; count],
            failures: 0,
            served_at_start: served_bytes,
            served: served_bytes,
            moved_at: now,
            over: false,
            outputs,
        }
    }

    /// The content uploaded.
    pub fn file(&self) -> FileId {
        self.file
    }

    /// Replicas asked (slot 0 and the helpers).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Bytes uploaded, for people: those served, shared out among the
    /// replicas asked (each fetches the whole content).
    pub fn progress_bytes(&self) -> u64 {
        let served = self.served - self.served_at_start;
        (served / self.slots.len() as u64).min(self.file.size_bytes)
    }

    /// Reports a fact.
    pub fn handle_input(&mut self, now: Instant, input: UploadInput) {
        if self.over {
            return;
        }
        match input {
            UploadInput::Served { bytes_total } => {
                if bytes_total > self.served {
                    self.served = bytes_total;
                    self.moved_at = now;
                }
            }
            UploadInput::Answered { slot, reply } => self.on_answer(now, slot, Some(reply)),
            UploadInput::Failed { slot } => self.on_answer(now, slot, None),
        }
    }

    /// Advances time; call when [`Self::poll_timeout`] is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.over {
            return;
        }
        if now.saturating_since(self.moved_at) >= self.config.stall {
            return self.end(UploadOutput::Over(UploadError::Stalled(self.config.stall)));
        }
        for (slot, s) in self.slots.iter_mut().enumerate() {
            if matches!(s.ask, Ask::Paused(at) if at <= now) {
                s.ask = Ask::Out;
                self.outputs.push_back(UploadOutput::Ask { slot, step: slot });
            }
        }
    }

    /// The next command for the driver.
    pub fn poll_output(&mut self) -> Option<UploadOutput> {
        self.outputs.pop_front()
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.over {
            return None;
        }
        let paused = self.slots.iter().filter_map(|s| match s.ask {
            Ask::Paused(at) => Some(at),
            _ => None,
        });
        paused.chain([self.moved_at + self.config.stall]).min()
    }

    fn on_answer(&mut self, now: Instant, slot: usize, reply: Option<StoreReply>) {
        let Some(s) = self.slots.get_mut(slot).filter(|s| s.ask == Ask::Out) else {
            return; // no call out on that slot: a driver's stale report
        };
        let again = match reply {
            Some(StoreReply::Stored) => return self.end(UploadOutput::Stored),
            Some(StoreReply::Storing) => {
                if slot == 0 {
                    self.failures = 0;
                }
                true
            }
            Some(StoreReply::Refused(e)) if slot == 0 => {
                if !matches!(e, ImError::StoreFailed { .. }) {
                    return self.end(UploadOutput::Over(UploadError::Refused(e)));
                }
                self.failures += 1;
                if self.failures >= self.config.store_failures_max {
                    return self.end(UploadOutput::Over(UploadError::Refused(e)));
                }
                true
            }
            None if slot == 0 => true,
            // A helper that failed or refused is not asked again.
            Some(StoreReply::Refused(_)) | None => false,
        };
        s.ask = if again { Ask::Paused(now + s.pause) } else { Ask::Done };
        s.pause = (s.pause * 2).min(self.config.pause_max);
    }

    fn end(&mut self, output: UploadOutput) {
        self.over = true;
        self.outputs.push_back(output);
    }
}

/// Replicas asked besides the client's own: enough to make a majority of
/// those it knows with it.
fn helpers_for(replicas_known: usize) -> usize {
    replicas_known / 2
}

#[cfg(test)]
#[path = "upload_tests.rs"]
mod tests;
