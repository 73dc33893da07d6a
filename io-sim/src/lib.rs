//! kith's deterministic-simulation driver: madsim nodes, network, simulated
//! disks and clocks around `kith_core::node::Node`.
//!
//! The madsim driver is being built (see the issue tracker: "Deterministic
//! simulation"). Until it lands, the seeded runner `kith-sim` drives the
//! core through the in-memory harness (`kith_core::testing`), which runs the
//! same node code with a seeded network emulator and simulated disks.
