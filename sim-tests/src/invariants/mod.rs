//! The invariants every simulation checks, one file each. A simulator feeds
//! every replica step (and, at the end, the converged chat state) to all of
//! them; the first that objects stops the run with a violation naming it.
//!
//! | invariant | file | sees |
//! | --- | --- | --- |
//! | election safety | `election_safety.rs` | every new leader |
//! | vote safety | `vote_safety.rs` | every vote sent |
//! | log matching | `log_matching.rs` | every batch persisted |
//! | leader completeness | `leader_completeness.rs` | new leaders, applied entries |
//! | state machine safety | `state_machine_safety.rs` | applied entries, digests |
//! | monotonic commit and apply | `monotonic_progress.rs` | every step |
//! | no command applied twice | `applied_once.rs` | applied entries |
//! | removed members cut off | `removed_members.rs` | configurations, frames sent |
//! | no phantom message | `no_phantom.rs` | the settled state |
//! | no duplicate | `no_duplicate.rs` | the settled state |
//! | no acknowledged message lost | `no_ack_lost.rs` | the settled state |
//! | client order | `client_order.rs` | the settled state |
//! | live delivery gap-free and true | `live_delivery.rs` | live deliveries, the settled state |
//! | changes reach subscribers | `change_delivery.rs` | live deliveries, the settled state |
//! | presence converges | `presence_converges.rs` | every replica's presence views after the heal |
//! | blocks hold | `blocks_hold.rs` | each client's blocks and requests shown, after the heal |
//! | no corrupt file byte | `files_no_corrupt_bytes.rs` | contents made, chunks served and written |
//! | sent files retrievable | `files_retrievable.rs` | file messages sent, deleted; fetches after the heal |
//! | deleted files not served | `files_deleted_not_served.rs` | file messages sent, deleted; chunks served |
//! | no reclaim while referenced | `files_no_reclaim_while_referenced.rs` | file messages sent, deleted; copies removed |
//!
//! Checked elsewhere, because they need the client's own view as it
//! happens: linearizable reads, read-your-writes and monotonic reads (the
//! madsim client, `kith_io_sim::client`; the harness workloads), kicked
//! room members receiving nothing (the harness chat workload), no halt and
//! liveness (the drivers).

mod applied_once;
mod blocks_hold;
mod change_delivery;
mod client_order;
mod election_safety;
mod file_messages;
mod files_deleted_not_served;
mod files_no_corrupt_bytes;
mod files_no_reclaim_while_referenced;
mod files_retrievable;
mod leader_completeness;
mod live_delivery;
mod log_matching;
mod monotonic_progress;
mod no_ack_lost;
mod no_duplicate;
mod no_phantom;
mod presence_converges;
mod removed_members;
mod state_machine_safety;
mod vote_safety;

#[cfg(test)]
mod files_tests;
#[cfg(test)]
mod tests;

pub use applied_once::AppliedOnce;
pub use blocks_hold::BlocksHold;
pub use change_delivery::ChangeDelivery;
pub use client_order::ClientOrder;
pub use election_safety::ElectionSafety;
pub use files_deleted_not_served::FilesDeletedNotServed;
pub use files_no_corrupt_bytes::FilesNoCorruptBytes;
pub use files_no_reclaim_while_referenced::FilesNoReclaimWhileReferenced;
pub use files_retrievable::FilesRetrievable;
pub use leader_completeness::LeaderCompleteness;
pub use live_delivery::LiveDelivery;
pub use log_matching::LogMatching;
pub use monotonic_progress::MonotonicProgress;
pub use no_ack_lost::NoAckLost;
pub use no_duplicate::NoDuplicate;
pub use no_phantom::NoPhantom;
pub use presence_converges::PresenceConverges;
pub use removed_members::RemovedMembers;
pub use state_machine_safety::StateMachineSafety;
pub use vote_safety::VoteSafety;

use kith_core::testing::invariant::Invariants;

/// Every invariant, for a simulator to check.
pub fn all() -> Invariants {
    Invariants::new(vec![
        Box::new(ElectionSafety::default()),
        Box::new(VoteSafety::default()),
        Box::new(LogMatching::default()),
        Box::new(LeaderCompleteness::default()),
        Box::new(StateMachineSafety::default()),
        Box::new(MonotonicProgress::default()),
        Box::new(AppliedOnce::default()),
        Box::new(RemovedMembers::default()),
        Box::new(NoPhantom),
        Box::new(NoDuplicate),
        Box::new(NoAckLost),
        Box::new(ClientOrder),
        Box::new(LiveDelivery::default()),
        Box::new(ChangeDelivery::default()),
        Box::new(PresenceConverges),
        Box::new(BlocksHold),
        Box::new(FilesNoCorruptBytes::default()),
        Box::new(FilesRetrievable::default()),
        Box::new(FilesDeletedNotServed::default()),
        Box::new(FilesNoReclaimWhileReferenced::default()),
    ])
}
