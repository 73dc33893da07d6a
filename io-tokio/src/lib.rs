//! kith's real-world driver: tokio, libp2p and files on disk around
//! `kith_core::raft::Node`.
//!
//! - [`replica`]: the run loop of one replica (the loop documented in
//!   `kith_core`), over a libp2p swarm and a [`storage::SegmentLog`].
//! - [`client`]: what the `kith` command uses to talk to a replica.
//! - [`files`]: file content over `/kith/chunks/1` (serve, fetch, offer).
//! - [`net`]: the swarm, its protocols and the replica directory.
//! - [`storage`]: the core's durable format on real files.

pub mod client;
pub mod files;
pub mod key_file;
pub mod net;
pub mod peer_ids;
pub mod replica;
pub mod storage;
