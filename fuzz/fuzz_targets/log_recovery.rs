//! Arbitrary disk contents: recovery never panics, and returns a contiguous
//! log within the bytes it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kith_core::testing::fuzz::log_recovery(data));
