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
//! A request read whole keeps its hold until the replica has handed it to
//! the service ([`HeldFrame`]): frames queued between the network and the
//! service count too, so a flood of small requests faster than the service
//! takes them is bounded like a slow one.
//! Honest traffic stays below it: a leader has at most
//! `APPENDS_IN_FLIGHT_MAX` appends of `APPEND_MESSAGE_BYTES_MAX` in flight
//! to this replica, which the budget holds whole, and a client has at most
//! `limits::SESSION_REQUESTS_IN_FLIGHT_MAX` requests read on its session
//! stream at once (kith's own one or two; each is a command or query of
//! at most 64 KiB).

use kith_core::limits;
use libp2p::PeerId;
use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

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
    /// Every connection's account, to find the one holding the most.
    accounts: Mutex<Vec<Weak<Account>>>,
    unreadable: Mutex<VecDeque<Unreadable>>,
}

/// What one connection holds of the budget. When the budget is spent, the
/// connection holding the most is evicted: its frames are refused with
/// [`EVICTED`] (at their next chunk) until it holds nothing, and the
/// replica disconnects a peer so refused that is not a replica of the
/// cluster. A replica evicted in a burst only sees some frames refused,
/// which Raft sends again.
#[derive(Debug, Default)]
pub struct Account {
    peer: Option<PeerId>,
    held_bytes: AtomicUsize,
    evicted: AtomicBool,
}

/// A frame a peer sent that could not be read, for the replica to count
/// (libp2p's request-response reports no failure before a request is read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// Who sent it.
    pub peer: PeerId,
    /// Whether its connection was evicted for holding the most.
    pub evicted: bool,
}

/// Unreadable frames remembered until the replica takes them.
const UNREADABLE_KEPT_MAX: usize = 1024;

thread_local! {
    /// The connection being set up on this thread: set by the swarm's
    /// first behaviour (`SourceBudget`) before request-response clones its
    /// codec for the connection, so the connection's account knows its peer.
    static CONNECTING: Cell<Option<PeerId>> = const { Cell::new(None) };
}

/// Names the peer of the connection being set up on this thread.
pub fn connecting(peer: PeerId) {
    CONNECTING.with(|c| c.set(Some(peer)));
}

/// The error kind of a frame refused because its connection was evicted.
pub const EVICTED: io::ErrorKind = io::ErrorKind::PermissionDenied;

/// The process's budget for frames read from the network.
pub static READ_BUDGET: ReadBudget = ReadBudget::new(READ_BUDGET_BYTES);

impl ReadBudget {
    /// A budget of `max_bytes`.
    pub const fn new(max_bytes: usize) -> ReadBudget {
        ReadBudget {
            used_bytes: AtomicUsize::new(0),
            max_bytes,
            accounts: Mutex::new(Vec::new()),
            unreadable: Mutex::new(VecDeque::new()),
        }
    }

    /// A new account for the connection being set up on this thread.
    pub fn open_account(&self) -> Arc<Account> {
        self.open_account_of(CONNECTING.with(Cell::get))
    }

    /// A new account for a stream or connection of `peer`.
    pub fn open_account_of(&self, peer: Option<PeerId>) -> Arc<Account> {
        let account = Arc::new(Account { peer, ..Account::default() });
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        accounts.retain(|a| a.strong_count() > 0);
        accounts.push(Arc::downgrade(&account));
        account
    }

    /// Evicts the connection holding the most (if any holds anything).
    fn evict_heaviest(&self) {
        let accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        let heaviest = accounts
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|a| !a.evicted.load(Ordering::Acquire))
            .max_by_key(|a| a.held_bytes.load(Ordering::Acquire));
        if let Some(a) = heaviest.filter(|a| a.held_bytes.load(Ordering::Acquire) > 0) {
            a.evicted.store(true, Ordering::Release);
        }
    }

    /// Records that a frame on `account`'s connection could not be read.
    pub fn note_unreadable(&self, account: Option<&Account>, evicted: bool) {
        let Some(peer) = account.and_then(|a| a.peer) else { return };
        let mut unreadable = self.unreadable.lock().unwrap_or_else(|p| p.into_inner());
        if unreadable.len() < UNREADABLE_KEPT_MAX {
            unreadable.push_back(Unreadable { peer, evicted });
        }
    }

    /// The unreadable frames noted since the last call.
    pub fn take_unreadable(&self) -> Vec<Unreadable> {
        let mut unreadable = self.unreadable.lock().unwrap_or_else(|p| p.into_inner());
        unreadable.drain(..).collect()
    }

    /// Bytes held now.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes.load(Ordering::Relaxed)
    }

    /// A hold on nothing yet, released when dropped, for a reader on the
    /// connection `account` (None: not charged to any connection).
    pub fn hold(&self, account: Option<Arc<Account>>) -> Hold<'_> {
        Hold { budget: self, account, bytes: 0 }
    }

    fn try_take(&self, bytes: usize) -> bool {
        self.used_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.max_bytes)
            })
            .is_ok()
    }
}

/// Bytes one reader holds of a budget, until dropped.
#[derive(Debug)]
pub struct Hold<'a> {
    budget: &'a ReadBudget,
    account: Option<Arc<Account>>,
    bytes: usize,
}

/// A frame read from the network and the part of [`READ_BUDGET`] it holds
/// until dropped: the replica drops it once the service has taken it. A
/// frame this side sends holds nothing.
#[derive(Debug)]
pub struct HeldFrame {
    bytes: Vec<u8>,
    hold: Hold<'static>,
}

impl HeldFrame {
    /// A frame holding nothing (one to send).
    pub fn new(bytes: Vec<u8>) -> HeldFrame {
        HeldFrame { bytes, hold: READ_BUDGET.hold(None) }
    }

    /// A frame read under `hold`.
    pub fn held(bytes: Vec<u8>, hold: Hold<'static>) -> HeldFrame {
        HeldFrame { bytes, hold }
    }

    /// The frame's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, and the hold to drop once they are taken.
    pub fn into_parts(self) -> (Vec<u8>, Hold<'static>) {
        (self.bytes, self.hold)
    }
}

impl Hold<'_> {
    /// Takes `bytes` more, or refuses with an error the peer's stream gets.
    /// A refusal evicts the connection holding the most.
    pub fn grow(&mut self, bytes: usize) -> io::Result<()> {
        if let Some(a) = self.account.as_deref().filter(|a| a.evicted.load(Ordering::Acquire)) {
            // A new frame on a connection whose evicted frames are all
            // gone starts afresh.
            if self.bytes > 0 || a.held_bytes.load(Ordering::Acquire) > 0 {
                return Err(io::Error::new(
                    EVICTED,
                    "this connection held the most of the read budget",
                ));
            }
            a.evicted.store(false, Ordering::Release);
        }
        if !self.budget.try_take(bytes) {
            self.budget.evict_heaviest();
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "too much is being received at once; try again",
            ));
        }
        self.bytes += bytes;
        if let Some(a) = &self.account {
            a.held_bytes.fetch_add(bytes, Ordering::AcqRel);
        }
        Ok(())
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.budget.used_bytes.fetch_sub(self.bytes, Ordering::AcqRel);
        if let Some(a) = &self.account {
            a.held_bytes.fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_are_refused_beyond_the_budget_and_released_on_drop() {
        let budget = ReadBudget::new(100);
        let mut a = budget.hold(None);
        a.grow(60).expect("within");
        let mut b = budget.hold(None);
        assert!(b.grow(50).is_err(), "60 + 50 is over 100");
        b.grow(40).expect("exactly 100");
        drop(a);
        assert_eq!(budget.used_bytes(), 40);
        drop(b);
        assert_eq!(budget.used_bytes(), 0);
    }

    #[test]
    fn a_spent_budget_evicts_the_connection_holding_the_most() {
        let budget = ReadBudget::new(100);
        let (greedy, modest) = (budget.open_account(), budget.open_account());
        let mut g1 = budget.hold(Some(greedy.clone()));
        g1.grow(40).expect("within");
        let mut g2 = budget.hold(Some(greedy.clone()));
        g2.grow(40).expect("within");
        let mut m = budget.hold(Some(modest));
        assert_eq!(m.grow(30).unwrap_err().kind(), io::ErrorKind::OutOfMemory);
        assert_eq!(g1.grow(1).unwrap_err().kind(), EVICTED, "the greedy one is cut off");
        assert_eq!(budget.hold(Some(greedy.clone())).grow(1).unwrap_err().kind(), EVICTED);
        drop((g1, g2));
        m.grow(30).expect("the modest one reads on");
        let mut again = budget.hold(Some(greedy));
        again.grow(1).expect("once its refused frames are gone, it starts afresh");
    }
}
