//! Networking: the libp2p swarm, the frames it carries and the replica
//! directory.

pub mod behaviour;
pub mod codec;
pub mod directory;
pub mod discovery;
pub mod incoming;
pub mod pending;
pub mod read_budget;
pub mod session_frame;
pub mod session_link;
pub mod source_budget;
