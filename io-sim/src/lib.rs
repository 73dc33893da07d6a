//! kith's deterministic-simulation driver: madsim processes for replicas
//! and clients around `kith_core::node::Node`, each replica on madsim's
//! network, a simulated disk with a crash model, and a drifting clock. One
//! seed reproduces a run exactly.
//!
//! madsim simulates only under `--cfg madsim` (set in `.cargo/config.toml`);
//! the build script refuses to build without it.

pub mod client;
pub mod history;
pub mod lobby;
pub mod replica;
pub mod simulation;
pub mod world;
