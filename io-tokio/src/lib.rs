//! kith's real-world driver: tokio, libp2p and files on disk around
//! `kith_core::node::Node`.
//!
//! Not built yet (see the issue tracker: "The real node"). It will run the
//! loop documented in `kith_core`'s crate docs over a libp2p swarm and the
//! core's durable format on real files.
