//! The in-memory cluster harness: N nodes wired through a seeded sans-I/O
//! network emulator and simulated disks, with the invariants it is given
//! ([`invariant::Invariants`]) checked after every step and the client
//! workload's own checks at the end. No async runtime: it runs as fast as
//! the CPU allows, and one seed replays a run exactly.

pub mod blob_disk;
pub mod cluster;
pub mod disk;
pub mod download_schedule;
pub mod fault_schedule;
pub mod file_observation;
pub mod fuzz;
pub mod im_model;
pub mod im_workload;
pub mod inbound_schedule;
pub mod invariant;
pub mod list_machine;
pub mod list_workload;
pub mod network;
pub mod scenario;
pub mod sim_history;
pub mod violation;
pub mod workload;
