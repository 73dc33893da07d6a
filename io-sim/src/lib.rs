//! kith's deterministic-simulation driver: madsim processes for replicas
//! (the core's replica service) and clients (the core's client session),
//! each replica on madsim's
//! network, a simulated disk with a crash model, and a drifting clock. One
//! seed reproduces a run exactly.
//!
//! madsim simulates only under `--cfg madsim` (set in `.cargo/config.toml`);
//! the build script refuses to build without it.

pub mod chunk_wire;
pub mod client;
mod contacts;
pub mod datagram;
pub mod fetches;
pub mod file_client;
pub mod follower;
pub mod history;
pub mod live_stream;
pub mod lobby;
pub mod operator;
pub mod replica;
pub mod simulation;
pub mod world;
