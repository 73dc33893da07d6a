//! Arbitrary disk contents (split into segments by the first byte): recovery
//! never panics, and what it returns is a contiguous log.
#![no_main]

use kith_core::durable::recover;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let at = (split as usize * rest.len()) / 256;
    let (a, b) = rest.split_at(at);
    for segments in [vec![rest], vec![a, b]] {
        if let Ok(log) = recover(&segments) {
            assert!(log.entries.windows(2).all(|w| w[1].index == w[0].index + 1));
            assert!(log.last_segment_valid_bytes <= segments.last().map_or(0, |s| s.len()));
        }
    }
});
