//! Every byte string fed to every network decoder (peer frames, client
//! requests and responses): never panics, never allocates beyond the frame
//! limit, and what decodes re-encodes and decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kith_core::testing::fuzz::wire_decode(data));
