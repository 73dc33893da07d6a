//! Command sequences against the IM state machine and its reference model:
//! results and visible histories agree; snapshots round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kith_core::testing::fuzz::im_apply(data));
