//! Log matching (Raft §5.3): two entries with the same index and term carry
//! the same payload, on every replica, checked on every batch a replica
//! asks its disk to persist.

use kith_core::durable::Record;
use kith_core::testing::invariant::{Invariant, Observation};
use kith_core::wire::WireEntryPayload;
use std::collections::BTreeMap;

/// A hash of every entry persisted anywhere, by (index, term).
#[derive(Debug, Default)]
pub struct LogMatching {
    payloads: BTreeMap<(u64, u64), blake3::Hash>,
}

impl Invariant for LogMatching {
    fn name(&self) -> &'static str {
        "log matching"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        let Observation::Persisting { node, records } = observation else { return Ok(()) };
        for record in *records {
            let Record::Entries(entries) = record else { continue };
            for e in entries {
                let hash = match &e.payload {
                    WireEntryPayload::Normal(data) => blake3::hash(data),
                    WireEntryPayload::ConfChange(cc) => {
                        blake3::hash(&postcard::to_allocvec(cc).expect("wire types encode"))
                    }
                };
                let prior = *self.payloads.entry((e.index, e.term)).or_insert(hash);
                if prior != hash {
                    return Err(format!(
                        "node {node} holds a different entry at index {} term {}",
                        e.index, e.term
                    ));
                }
            }
        }
        Ok(())
    }
}
