//! Live subscriptions over datagrams, with the properties of the real
//! node's libp2p stream (`/kith/live/1`): frames numbered in order, at most
//! a window of them unacknowledged, and a stream that breaks rather than
//! skips. A client that sees a gap it cannot fill, or hears nothing, opens
//! a new stream from its cursor, as a real client reconnects. Only bytes
//! and numbering live here; what to deliver is the replica service's.
//!
//! Client to replica, on `TAG_LIVE`: `kind:u8, key:u64le, payload`:
//! - `SUBSCRIBE`: payload is the 32-byte user id, then a `SubscribeFrame`;
//! - `ACK`: payload is the highest frame number received in order (u64le),
//!   also sent as a keepalive.
//!
//! Replica to client: `FRAME` (`key, number:u64le, LiveFrame bytes`),
//! `HEARTBEAT` (`key, next number`: the answer to an `ACK`), `UNKNOWN`
//! (`key`: no such stream here, subscribe again).

pub use crate::datagram::{datagram, number, split};
use kith_core::replica::subscriptions::SubscriptionId;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Client: open a stream.
pub const SUBSCRIBE: u8 = 0;
/// Client: frames received so far (and "still here").
pub const ACK: u8 = 1;
/// Replica: one live frame.
pub const FRAME: u8 = 0x10;
/// Replica: the answer to an ACK.
pub const HEARTBEAT: u8 = 0x11;
/// Replica: no such stream.
pub const UNKNOWN: u8 = 0x12;

/// Frames a replica sends ahead of the client's acknowledgements.
pub const WINDOW_FRAMES: u64 = 32;
/// A stream not heard from for this long is closed.
pub const SILENCE_MAX: std::time::Duration = std::time::Duration::from_secs(3);

/// One open stream, on the replica's side.
#[derive(Debug)]
pub struct Stream {
    /// The service's subscription.
    pub subscription: SubscriptionId,
    /// The number the next frame gets.
    pub next: u64,
    /// The highest number the client acknowledged.
    pub acked: u64,
    /// When the client was last heard.
    pub heard: madsim::time::Instant,
}

impl Stream {
    /// Whether the window has room for another frame.
    pub fn has_room(&self) -> bool {
        self.next - 1 - self.acked < WINDOW_FRAMES
    }
}

/// The replica's open streams, by client address and key.
pub type Streams = BTreeMap<(SocketAddr, u64), Stream>;
