//! The baselines' raft-rs loop (`kith-core-bench`'s raw loop and
//! `kith-sim-bench`'s bare madsim loop): a `RawNode` over `MemStorage`,
//! each `Ready` handled as raft-rs documents.

use raft::prelude::Message;
use raft::storage::MemStorage;
use raft::{RawNode, StateRole};

/// What one `Ready` asks of its caller.
#[derive(Default)]
pub struct Handled {
    /// Messages to deliver, in the order raft-rs produced them.
    pub messages: Vec<Message>,
    /// Entries with data committed while this node led.
    pub committed_as_leader: usize,
}

/// Handles `node`'s `Ready`, if it has one: sends at once what may go at
/// once, persists entries and hard state (in memory), then the messages
/// that needed them, counts committed entries, and advances.
pub fn handle_ready(node: &mut RawNode<MemStorage>) -> Option<Handled> {
    if !node.has_ready() {
        return None;
    }
    let leader = node.raft.state == StateRole::Leader;
    let mut out = Handled::default();
    let mut count = |entries: &[raft::prelude::Entry]| {
        if leader {
            out.committed_as_leader += entries.iter().filter(|e| !e.data.is_empty()).count();
        }
    };
    let mut ready = node.ready();
    let mut messages = ready.take_messages();
    let store = node.raft.raft_log.store.clone();
    if !ready.entries().is_empty() {
        store.wl().append(ready.entries()).expect("appends");
    }
    if let Some(hs) = ready.hs() {
        store.wl().set_hardstate(hs.clone());
    }
    messages.extend(ready.take_persisted_messages());
    count(&ready.take_committed_entries());
    let mut light = node.advance(ready);
    if let Some(commit) = light.commit_index() {
        store.wl().mut_hard_state().set_commit(commit);
    }
    messages.extend(light.take_messages());
    count(&light.take_committed_entries());
    node.advance_apply();
    out.messages = messages;
    Some(out)
}
