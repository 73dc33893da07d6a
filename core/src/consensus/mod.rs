//! The Raft side of the core: raft-rs's storage seen through kith's log.

mod log_store;

pub use log_store::{LogStore, LogStoreError, BOOTSTRAP_INDEX};
