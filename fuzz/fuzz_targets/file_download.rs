//! The chunk decoder and the download state machine under forged, damaged,
//! duplicated and late answers, write failures and crashes: no panic, no
//! wrong byte written, no saved record claiming unsynced data.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kith_core::testing::fuzz::file_download(data));
