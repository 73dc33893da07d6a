//! kith's sans-I/O core.
//!
//! Everything that decides lives here, one layer a folder:
//!
//! - [`raft`]: the Raft driver over raft-rs ([`raft::Node`]);
//! - [`im`]: the replicated IM state machine and its protocol;
//! - [`replica`]: the replica service around the node (intake, forwarding,
//!   presence, typing, subscriptions, admission, admin), what every driver runs;
//! - [`session`]: the client session (where a request goes next, and when);
//! - [`wire`] and [`durable`]: the wire formats and the durable format;
//! - [`limits`]: a bound on everything, related by compile-time assertions.
//!
//! The core never
//! reads a clock, opens a socket, spawns a thread or draws from a global
//! random source. Drivers (`kith-io-tokio`, `kith-io-sim`, the in-memory
//! harness in [`testing`]) feed it facts and carry out its commands.
//!
//! # The run loop a driver writes
//!
//! ```no_run
//! # use kith_core::{raft::{Node, Input, Output}, state_machine::StateMachine, time::Instant};
//! # fn now() -> Instant { Instant::ZERO }
//! # enum Event { Frame(kith_core::ids::NodeId, bytes::Bytes), Durable(kith_core::ids::PersistId), Timer }
//! # fn next_event(_deadline: Option<Instant>) -> Event { Event::Timer }
//! # fn send(_: kith_core::ids::NodeId, _: bytes::Bytes) {}
//! # fn append_and_fsync(_: bool, _: &[u8]) {}
//! # fn reply<T>(_: T) {}
//! fn run<S: StateMachine>(mut node: Node<S>) {
//!     loop {
//!         // 1. Carry out every command, in order.
//!         while let Some(output) = node.poll_output() {
//!             match output {
//!                 Output::Send { to, frame } => send(to, frame),
//!                 // Write, fsync, then report (in id order; may be grouped).
//!                 Output::Persist { id, new_segment, bytes } => {
//!                     append_and_fsync(new_segment, &bytes);
//!                     node.handle_input(now(), Input::Persisted { up_to: id });
//!                 }
//!                 Output::Halted { .. } => return,
//!                 other => reply(other), // Applied, Dropped, ReadReady, ...
//!             }
//!         }
//!         // 2. Wait for the next fact or the node's timer, and report it.
//!         match next_event(node.poll_timeout()) {
//!             Event::Frame(from, bytes) => node.handle_input(now(), Input::Received { from, bytes }),
//!             Event::Durable(up_to) => node.handle_input(now(), Input::Persisted { up_to }),
//!             Event::Timer => node.handle_timeout(now()),
//!         }
//!     }
//! }
//! ```
//!
//! Client submissions go through [`raft::Node::submit`] (typed result now,
//! `Output::Applied` or `Output::Dropped` later); reads through
//! [`raft::Node::read`]; membership through [`raft::Node::change_membership`].

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

#[cfg(feature = "bug-switches")]
pub mod bugs;
pub mod config;
pub mod durable;
pub mod files;
pub mod ids;
pub mod im;
pub mod limits;
pub mod raft;
pub mod rate;
pub mod replica;
pub mod rng;
pub mod session;
pub mod state_machine;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod versioned;
pub mod wire;
