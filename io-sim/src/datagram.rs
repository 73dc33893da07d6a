//! The framing the simulated transports share: `kind:u8, key:u64le`, then
//! the payload (replica-to-replica requests keyed by their correlation id,
//! live streams by their stream key).

use bytes::Bytes;

/// Bytes before the payload: the kind and the key.
pub const HEADER_BYTES: usize = 9;

/// A request's correlation id carries the incarnation of the process that
/// sent it above this bit, so that an answer to an earlier life's request
/// (datagrams outlive processes) never passes for this life's (seed 315
/// found a restarted replica taking the answer to its previous life's
/// request 1 as the answer to its new request 1).
pub const INCARNATION_SHIFT: u32 = 40;

/// One datagram, split: kind, key (a stream or a request), the rest.
pub fn split(bytes: &Bytes) -> Option<(u8, u64, Bytes)> {
    let (&kind, rest) = bytes.split_first()?;
    let (key, _) = rest.split_first_chunk::<8>()?;
    Some((kind, u64::from_le_bytes(*key), bytes.slice(HEADER_BYTES..)))
}

/// One datagram, built.
pub fn datagram(kind: u8, key: u64, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&key.to_le_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// A number at the head of a payload, and what follows it.
pub fn number(payload: &Bytes) -> Option<(u64, Bytes)> {
    let (n, _) = payload.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*n), payload.slice(8..)))
}
