//! Every byte string fed to the peer-frame decoder: it never panics, and a
//! frame that decodes survives an encode/decode round trip unchanged.
#![no_main]

use kith_core::wire::PeerFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = PeerFrame::decode(data) {
        let again = PeerFrame::decode(&frame.encode()).expect("re-encoded frame decodes");
        assert_eq!(again, frame);
    }
});
