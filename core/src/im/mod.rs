//! Instant messaging, the replicated state machine: identities, the IM
//! protocol (signed commands, queries, and the signed presence and typing
//! notices), the IM state machine and its history store. What a replica
//! keeps beside the log (presence table, subscriptions, verified commands)
//! is the replica service's (`crate::replica`).

pub mod history;
pub mod identity;
pub mod machine;
pub mod presence;
pub mod protocol;
pub mod typing;

pub use machine::ImMachine;
