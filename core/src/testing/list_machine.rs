//! A small state machine for testing the Raft half: named lists of numbers
//! that clients append to. It is the "list-append" model Jepsen checks, so
//! lost, duplicated and reordered writes all show up in the lists.

use crate::ids::LogIndex;
use crate::state_machine::{ApplyContext, Digest, RestoreError, Restored, StateMachine};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Snapshot encoding version.
const SNAPSHOT_VERSION: u16 = 1;

/// Append `value` to list `list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Append {
    /// Which list.
    pub list: u8,
    /// The value (unique per client operation in the harness).
    pub value: u64,
}

/// Named lists of values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListMachine {
    lists: BTreeMap<u8, Vec<u64>>,
    last_applied: LogIndex,
}

impl ListMachine {
    /// The current contents of `list`.
    pub fn list(&self, list: u8) -> &[u64] {
        self.lists.get(&list).map_or(&[], Vec::as_slice)
    }

    /// All lists.
    pub fn lists(&self) -> &BTreeMap<u8, Vec<u64>> {
        &self.lists
    }
}

impl StateMachine for ListMachine {
    type Command = Append;
    /// The list's length after the append.
    type Response = usize;
    /// Which list to read.
    type Query = u8;
    type QueryResult = Vec<u64>;

    fn apply(&mut self, at: ApplyContext, command: Append) -> usize {
        self.last_applied = at.index;
        let list = self.lists.entry(command.list).or_default();
        list.push(command.value);
        list.len()
    }

    fn query(&self, list: &u8) -> Vec<u64> {
        self.list(*list).to_vec()
    }

    fn snapshot(&mut self, _at: LogIndex, _meta: &[u8]) -> Bytes {
        Bytes::from(crate::versioned::encode(SNAPSHOT_VERSION, &self.lists))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<Restored, RestoreError> {
        if snapshot.is_empty() {
            self.lists.clear();
            return Ok(Restored::default());
        }
        (self.lists, _) = crate::versioned::decode(snapshot, SNAPSHOT_VERSION)?;
        Ok(Restored::default())
    }

    fn digest(&self) -> Digest {
        let bytes = crate::versioned::encode(SNAPSHOT_VERSION, &self.lists);
        Digest(*blake3::hash(&bytes).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Term;

    #[test]
    fn snapshot_restores_an_equal_state() {
        let mut m = ListMachine::default();
        let at = ApplyContext { index: LogIndex(1), term: Term(1), position: 0, stamp_ms: 0 };
        assert_eq!(m.apply(at, Append { list: 2, value: 9 }), 1);
        let mut r = ListMachine::default();
        let at = LogIndex(1);
        r.restore(&m.snapshot(at, &[])).unwrap();
        assert_eq!(r.digest(), m.digest());
        assert!(r.restore(&[1, 2, 3]).is_err());
        assert!(matches!(r.restore(&[7]), Err(RestoreError::Version { .. })));
    }
}
