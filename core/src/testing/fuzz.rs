//! The checks behind the fuzz targets, shared with `cargo test`, which
//! replays every committed corpus input (fuzz/corpus/<target>/) through them.
//! Each function panics when its property is broken, as a fuzz target must.

use crate::durable::recover;
use crate::im::client_protocol::{RequestFrame, ResponseFrame};
use crate::wire::PeerFrame;

/// `wire_decode`: every decoder that sees network bytes never panics, and
/// what decodes survives an encode/decode round trip unchanged.
pub fn wire_decode(data: &[u8]) {
    if let Ok(frame) = PeerFrame::decode(data) {
        let again = PeerFrame::decode(&frame.encode()).expect("a re-encoded peer frame decodes");
        assert_eq!(again, frame);
    }
    if let Ok(frame) = RequestFrame::decode(data) {
        let again = RequestFrame::decode(&frame.encode()).expect("a re-encoded request decodes");
        assert_eq!(again, frame);
    }
    if let Ok(frame) = ResponseFrame::decode(data) {
        let again = ResponseFrame::decode(&frame.encode()).expect("a re-encoded response decodes");
        assert_eq!(again, frame);
    }
}

/// `log_recovery`: arbitrary disk contents (split into two segments at a
/// point chosen by the first byte) never make recovery panic, and what it
/// returns is a contiguous log within the bytes it was given.
pub fn log_recovery(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else { return };
    let at = (split as usize * rest.len()) / 256;
    let (a, b) = rest.split_at(at);
    for segments in [vec![rest], vec![a, b]] {
        if let Ok(log) = recover(&segments) {
            assert!(log.entries.windows(2).all(|w| w[1].index == w[0].index + 1));
            let last = segments.last().map_or(0, |s| s.len());
            assert!(log.last_segment_valid_bytes + log.torn_tail_bytes <= last);
        }
    }
}
