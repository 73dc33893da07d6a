//! Screening of peer messages before raft-rs sees them.
//!
//! raft-rs trusts its peers: some well-formed but impossible messages reach
//! `fatal!` (a panic) inside it, for example a heartbeat committing past the
//! follower's log, or a snapshot whose membership lists a node twice. Peer
//! input must never crash a node, so such messages are refused here (or, for
//! a heartbeat's commit, clamped: committing less is always safe).

use crate::limits;
use raft::eraftpb::{ConfState, Message, MessageType};
use std::collections::BTreeSet;

/// Checks `m` (from a peer) against what raft-rs assumes; may lower a
/// heartbeat's commit index to `last_index`.
pub(super) fn screen(m: &mut Message, last_index: u64) -> Result<(), &'static str> {
    let t = m.get_msg_type();
    // Read-index requests and leadership-transfer requests are forwarded
    // between followers and the leader without a term, and raft-rs asserts
    // exactly that when it forwards them again; every other kind has a term.
    let forwarded = matches!(t, MessageType::MsgReadIndex | MessageType::MsgTransferLeader);
    if forwarded != (m.term == 0) {
        return Err("a message with a term where it must have none, or the reverse");
    }
    let indexes = [m.index, m.commit, m.reject_hint, m.request_snapshot];
    if m.term > limits::TERM_MAX
        || m.log_term > limits::TERM_MAX
        || m.commit_term > limits::TERM_MAX
    {
        return Err("a term beyond any real term");
    }
    if indexes.iter().any(|i| *i > limits::LOG_INDEX_MAX) {
        return Err("an index beyond any real log");
    }
    let read_index = matches!(t, MessageType::MsgReadIndex | MessageType::MsgReadIndexResp);
    if read_index {
        // The read's context rides in exactly one entry; raft-rs indexes it.
        return if m.entries.len() == 1 { Ok(()) } else { Err("a read index without its context") };
    }
    if !m.entries.is_empty() && t != MessageType::MsgAppend {
        return Err("entries outside an append");
    }
    // raft-rs reads the term of an index past its log as 0, so a "previous
    // entry" of term 0 beyond the log would match and commit past the end.
    if t == MessageType::MsgAppend && m.index > 0 && m.log_term == 0 {
        return Err("an append after an entry of term 0");
    }
    let mut prev_term = m.log_term;
    for (i, e) in m.entries.iter().enumerate() {
        // Indexes follow the previous entry; terms never decrease and never
        // exceed the sender's term.
        if e.index != m.index + 1 + i as u64 || e.term == 0 || e.term > m.term || e.term < prev_term
        {
            return Err("append entries out of sequence");
        }
        prev_term = e.term;
    }
    if t == MessageType::MsgHeartbeat {
        m.commit = m.commit.min(last_index);
    }
    if let Some(snapshot) = m.snapshot.as_ref() {
        let meta = snapshot.get_metadata();
        if t != MessageType::MsgSnapshot {
            return Err("a snapshot outside a snapshot message");
        }
        if meta.index == 0 || meta.term == 0 || meta.term > m.term {
            return Err("snapshot metadata out of range");
        }
        check_conf_state(meta.get_conf_state())?;
    }
    Ok(())
}

/// The shape raft-rs's `confchange::restore` requires.
fn check_conf_state(cs: &ConfState) -> Result<(), &'static str> {
    let set = |ids: &[u64]| -> Result<BTreeSet<u64>, &'static str> {
        let s: BTreeSet<u64> = ids.iter().copied().collect();
        if s.len() != ids.len() || s.contains(&0) || s.len() > limits::PEERS_MAX {
            return Err("membership lists a node twice, node 0, or too many nodes");
        }
        Ok(s)
    };
    let voters = set(&cs.voters)?;
    let learners = set(&cs.learners)?;
    let outgoing = set(&cs.voters_outgoing)?;
    let learners_next = set(&cs.learners_next)?;
    if voters.is_empty() {
        return Err("membership without voters");
    }
    if !voters.is_disjoint(&learners) || !voters.is_disjoint(&learners_next) {
        return Err("a node is both voter and learner");
    }
    if !learners_next.is_subset(&outgoing) || !learners.is_disjoint(&learners_next) {
        return Err("learners-next must be outgoing voters only");
    }
    if outgoing.is_empty() && (!learners_next.is_empty() || cs.auto_leave) {
        return Err("joint-only fields outside a joint configuration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::{Entry, Snapshot};

    fn msg(t: MessageType) -> Message {
        let mut m = Message::default();
        m.set_msg_type(t);
        m.term = 3;
        m
    }

    #[test]
    fn clamps_heartbeat_commit_and_refuses_impossible_appends() {
        let mut hb = msg(MessageType::MsgHeartbeat);
        hb.commit = 99;
        assert_eq!(screen(&mut hb, 7), Ok(()));
        assert_eq!(hb.commit, 7);
        let mut app = msg(MessageType::MsgAppend);
        app.index = 4;
        app.log_term = 2;
        let entry = |index, term| Entry { index, term, ..Default::default() };
        app.set_entries(vec![entry(5, 2), entry(7, 3)].into());
        assert!(screen(&mut app, 10).is_err());
        app.set_entries(vec![entry(5, 2), entry(6, 4)].into());
        assert!(screen(&mut app, 10).is_err(), "entry term above the message term");
        app.set_entries(vec![entry(5, 2), entry(6, 3)].into());
        assert_eq!(screen(&mut app, 10), Ok(()));
        let mut read = msg(MessageType::MsgReadIndex);
        read.term = 0;
        assert!(screen(&mut read, 1).is_err(), "no context entry");
        read.set_entries(vec![entry(0, 0)].into());
        assert_eq!(screen(&mut read, 1), Ok(()));
        let mut forwarded = msg(MessageType::MsgTransferLeader);
        assert!(screen(&mut forwarded, 2).is_err(), "found by the raft_inbound fuzz target");
        let mut huge = msg(MessageType::MsgHeartbeat);
        huge.term = u64::MAX;
        assert!(screen(&mut huge, 2).is_err(), "found by the raft_inbound fuzz target");
        let mut no_prev_term = msg(MessageType::MsgAppend);
        no_prev_term.index = 26;
        no_prev_term.commit = 218;
        assert!(screen(&mut no_prev_term, 2).is_err(), "found by the raft_inbound fuzz target");
        let mut termless = msg(MessageType::MsgAppendResponse);
        termless.term = 0;
        assert!(screen(&mut termless, 1).is_err());
    }

    #[test]
    fn refuses_malformed_snapshot_membership() {
        let snap = |voters: Vec<u64>, learners: Vec<u64>| {
            let mut m = msg(MessageType::MsgSnapshot);
            let mut s = Snapshot::default();
            s.mut_metadata().index = 5;
            s.mut_metadata().term = 2;
            s.mut_metadata().mut_conf_state().voters = voters;
            s.mut_metadata().mut_conf_state().learners = learners;
            m.set_snapshot(s);
            m
        };
        assert_eq!(screen(&mut snap(vec![1, 2, 3], vec![4]), 0), Ok(()));
        assert!(screen(&mut snap(vec![1, 1], vec![]), 0).is_err());
        assert!(screen(&mut snap(vec![1, 2], vec![2]), 0).is_err());
        assert!(screen(&mut snap(vec![], vec![2]), 0).is_err());
        assert!(screen(&mut snap(vec![0, 1], vec![]), 0).is_err());
    }
}
