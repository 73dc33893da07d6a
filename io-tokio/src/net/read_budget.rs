//! One memory budget for every frame being read, over all streams of all
//! connections: what a stranger can make this process hold on its behalf.
//!
//! Each frame is bounded by the codec (`limits::FRAME_BYTES_MAX`), but
//! without a total, a stranger opening many streams that each declare a
//! frame just under the limit and send it slowly made a replica hold
//! 64 MiB for the request timeout (fresh keys and streams are free). A
//! frame is therefore read in chunks, each reserved from the budget before
//! it is buffered; a frame that cannot reserve its next chunk is refused
//! (its stream fails, its bytes are released) and the sender may retry.
//! Honest traffic stays below it: a leader has at most
//! `APPENDS_IN_FLIGHT_MAX` appends of `APPEND_MESSAGE_BYTES_MAX` in flight
//! to this replica, which the budget holds whole, and clients send one
//! request at a time.

use kith_core::limits;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of frames being read at once, process-wide: what a leader may
/// have in flight to this replica (32 MiB).
pub const READ_BUDGET_BYTES: usize =
    limits::APPENDS_IN_FLIGHT_MAX * limits::APPEND_MESSAGE_BYTES_MAX as usize;
/// How much of a frame is reserved and read at a time: a frame declared
/// large but sent slowly holds only what has arrived.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

const _: () = assert!(READ_CHUNK_BYTES <= READ_BUDGET_BYTES);
const _: () = assert!(limits::FRAME_BYTES_MAX <= READ_BUDGET_BYTES / 4);
const _: () = assert!(READ_BUDGET_BYTES <= 64 * 1024 * 1024, "a stranger's reach stays small");

/// A budget of bytes shared by every reader of a process.
#[derive(Debug)]
pub struct ReadBudget {
    used_bytes: AtomicUsize,
    max_bytes: usize,
}

/// The process's budget for frames read from the network.
pub static READ_BUDGET: ReadBudget = ReadBudget::new(READ_BUDGET_BYTES);

impl ReadBudget {
    /// A budget of `max_bytes`.
    pub const fn new(max_bytes: usize) -> ReadBudget {
        ReadBudget { used_bytes: AtomicUsize::new(0), max_bytes }
    }

    /// Bytes held now.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes.load(Ordering::Relaxed)
    }

    /// A hold on nothing yet, released when dropped.
    pub fn hold(&self) -> Hold<'_> {
        Hold { budget: self, bytes: 0 }
    }

    fn try_take(&self, bytes: usize) -> bool {
        self.used_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.max_bytes)
            })
            .is_ok()
    }
}

/// Bytes one reader holds of a budget.
#[derive(Debug)]
pub struct Hold<'a> {
    budget: &'a ReadBudget,
    bytes: usize,
}

impl Hold<'_> {
    /// Takes `bytes` more, or refuses with an error the peer's stream gets.
    pub fn grow(&mut self, bytes: usize) -> io::Result<()> {
        if !self.budget.try_take(bytes) {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "too much is being received at once; try again",
            ));
        }
        self.bytes += bytes;
        Ok(())
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.budget.used_bytes.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_are_refused_beyond_the_budget_and_released_on_drop() {
        let budget = ReadBudget::new(100);
        let mut a = budget.hold();
        a.grow(60).expect("within");
        let mut b = budget.hold();
        assert!(b.grow(50).is_err(), "60 + 50 is over 100");
        b.grow(40).expect("exactly 100");
        drop(a);
        assert_eq!(budget.used_bytes(), 40);
        drop(b);
        assert_eq!(budget.used_bytes(), 0);
    }
}
