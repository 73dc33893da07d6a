//! Forged and malformed peer frames, interleaved with time and client
//! writes, against a 3-replica harness cluster: never a panic or a halt.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kith_core::testing::fuzz::raft_inbound(data));
