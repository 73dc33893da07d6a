//! The payload of a normal log entry: a batch of encoded commands, stamped
//! with the proposing leader's clock.
//!
//! Encoding: `postcard(version: u16) ++ postcard(stamp_ms: u64) ++
//! postcard(Vec<bytes>)`. Each command is encoded once, at submission, so its
//! size is checked before it is queued. The stamp is how wall-clock time
//! enters the deterministic state machine: every replica sees the same one.

use bytes::Bytes;

/// Version of the entry payload encoding.
pub const COMMAND_BATCH_VERSION: u16 = 1;

/// Encodes a batch of already-encoded commands stamped at `stamp_ms`.
pub fn encode(stamp_ms: u64, commands: &[Bytes]) -> Vec<u8> {
    crate::versioned::encode(COMMAND_BATCH_VERSION, &(stamp_ms, commands))
}

/// Decodes a batch into its stamp and commands; `None` when the bytes are
/// not a batch of this version.
pub fn decode(bytes: &[u8]) -> Option<(u64, Vec<Bytes>)> {
    crate::versioned::decode(bytes, COMMAND_BATCH_VERSION).ok().map(|(batch, _)| batch)
}

/// Bytes a command adds to an encoded batch (length prefix included).
pub fn encoded_len(command: &Bytes) -> usize {
    command.len() + 5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let cmds = vec![Bytes::from_static(b"a"), Bytes::new()];
        let enc = encode(17, &cmds);
        assert_eq!(decode(&enc), Some((17, cmds)));
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[9, 0]), None);
        assert!(encoded_len(&Bytes::from_static(b"abc")) >= 4);
    }
}
