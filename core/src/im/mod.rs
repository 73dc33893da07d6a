//! Instant messaging: identities, the protocol, the replicated IM state
//! machine, and the ephemeral presence table.

pub mod client_protocol;
pub mod history;
pub mod identity;
pub mod machine;
pub mod presence;
pub mod protocol;
pub mod replica_protocol;
pub mod subscriptions;
pub mod typing;
pub mod verified_commands;

pub use machine::ImMachine;
