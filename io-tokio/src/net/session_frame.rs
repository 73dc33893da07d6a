//! Frames of `/kith/session/1`, where one stream carries a client
//! session's requests instead of a stream per request: each frame is a
//! request id (8 bytes, little-endian) and then a request frame exactly as
//! on `/kith/client/1`; its answer comes back as a frame with the same id
//! and the response frame, in whatever order answers are ready
//! (docs/PROTOCOL.md section 5.2).
//!
//! Why: a stream per request cost every request a yamux stream opened and
//! closed, its protocol negotiated, and a timer armed in request-response,
//! each a few more small encrypted frames and wake-ups on both sides, for
//! a 64-byte chat message.

use super::behaviour::RR_FRAME_BYTES_MAX;
use super::codec::{append_frame_of, write_frames};
use futures::AsyncWrite;
use std::io;

/// Bytes of the request id that starts every session frame.
pub const SESSION_ID_BYTES: usize = 8;
/// Largest session frame: a request or response frame and its id.
pub const SESSION_FRAME_BYTES_MAX: usize = RR_FRAME_BYTES_MAX + SESSION_ID_BYTES;

/// A session frame too short to hold its request id.
#[derive(Debug, thiserror::Error)]
#[error("a session frame of {0} bytes is shorter than its 8-byte request id")]
pub struct ShortFrame(usize);

/// Appends the session frame that carries `body` under request id `id`,
/// with its length prefix (as `codec::write_frame` writes it), to `wire`:
/// frames gathered this way go out in one write, one yamux frame.
pub fn append(wire: &mut Vec<u8>, id: u64, body: &[u8]) -> io::Result<()> {
    append_frame_of(wire, &[&id.to_le_bytes(), body])
}

/// Writes the session frame of `body` under `id`, and flushes it.
pub async fn write<T: AsyncWrite + Unpin>(io: &mut T, id: u64, body: &[u8]) -> io::Result<()> {
    let mut wire = Vec::new();
    append(&mut wire, id, body)?;
    write_frames(io, &wire).await
}

/// Splits a session frame (as `codec::read_frame` reads it: without its
/// length prefix) into its request id and body.
pub fn decode(mut frame: Vec<u8>) -> Result<(u64, Vec<u8>), ShortFrame> {
    let Some(id) = frame.get(..SESSION_ID_BYTES) else {
        return Err(ShortFrame(frame.len()));
    };
    let id = u64::from_le_bytes(id.try_into().expect("8 bytes"));
    frame.drain(..SESSION_ID_BYTES);
    Ok((id, frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_short_ones_are_refused() {
        for body in [&b""[..], b"x", b"a request frame"] {
            let mut wire = Vec::new();
            append(&mut wire, u64::MAX - 7, body).unwrap();
            let mut cursor = futures::io::Cursor::new(wire);
            let frame = futures::executor::block_on(crate::net::codec::read_frame(
                &mut cursor,
                SESSION_FRAME_BYTES_MAX,
            ))
            .unwrap();
            assert_eq!(frame.len(), SESSION_ID_BYTES + body.len());
            assert_eq!(decode(frame).unwrap(), (u64::MAX - 7, body.to_vec()));
        }
        for len in 0..SESSION_ID_BYTES {
            assert_eq!(decode(vec![1; len]).unwrap_err().0, len);
        }
    }
}
