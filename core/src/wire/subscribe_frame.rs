//! The first frame on a live-subscription stream: which rooms to follow,
//! from where. Two versions are read:
//!
//! - **1**: `postcard(Vec<(RoomId, after_seq: u64)>)`. Changes to entries
//!   already received are sent as `LiveFrame::Updated`, without numbers,
//!   from the moment of subscribing (plus the recent ones, see
//!   `replica::subscriptions`): a change made while the client was away
//!   may be missed.
//! - **2**: `postcard(Vec<(RoomId, after_seq: u64, after_change: u64)>)`.
//!   Changes come as `LiveFrame::Changed` with their change numbers, and
//!   every change numbered after `after_change` to an entry up to the
//!   client's cursor is sent: resuming from the last change number received
//!   (or named by `LiveFrame::ChangesSeen`) misses none.

use super::client_protocol::ClientFrameError;
use crate::im::protocol::RoomId;
use crate::limits;
use crate::versioned;

/// Version 1: rooms and sequence cursors.
pub const SUBSCRIBE_VERSION_SEQ_ONLY: u16 = 1;
/// Version 2: rooms, sequence cursors and change cursors.
pub const SUBSCRIBE_VERSION: u16 = 2;

/// One room to follow and where the client is in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomFrom {
    /// The room.
    pub room: RoomId,
    /// Entries with a greater sequence number are delivered, oldest first.
    pub after_seq: u64,
    /// Changes numbered after this are delivered (0: every change to the
    /// entries up to `after_seq`); `None` for a version 1 frame, which
    /// resumes no changes.
    pub after_change: Option<u64>,
}

impl RoomFrom {
    /// Follow `room` after entry `after_seq` and change `after_change`.
    pub fn new(room: RoomId, after_seq: u64, after_change: u64) -> RoomFrom {
        RoomFrom { room, after_seq, after_change: Some(after_change) }
    }
}

/// The first frame on a live-subscription stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeFrame {
    /// The rooms to follow.
    pub rooms: Vec<RoomFrom>,
}

impl SubscribeFrame {
    /// Whether changes come numbered (a version 2 frame).
    pub fn numbered(&self) -> bool {
        self.rooms.iter().any(|r| r.after_change.is_some())
    }

    /// Encodes, version first: version 2 if any room has a change cursor
    /// (a room without one then resumes every change), else version 1.
    pub fn encode(&self) -> Vec<u8> {
        if self.numbered() {
            let rooms: Vec<(&RoomId, u64, u64)> = self
                .rooms
                .iter()
                .map(|r| (&r.room, r.after_seq, r.after_change.unwrap_or(0)))
                .collect();
            versioned::encode(SUBSCRIBE_VERSION, &rooms)
        } else {
            let rooms: Vec<(&RoomId, u64)> =
                self.rooms.iter().map(|r| (&r.room, r.after_seq)).collect();
            versioned::encode(SUBSCRIBE_VERSION_SEQ_ONLY, &rooms)
        }
    }

    /// Decodes untrusted bytes of either version.
    pub fn decode(bytes: &[u8]) -> Result<SubscribeFrame, ClientFrameError> {
        let max = limits::SUBSCRIBE_FRAME_BYTES_MAX;
        let found = postcard::take_from_bytes::<u16>(bytes).map(|(v, _)| v);
        let rooms = if found == Ok(SUBSCRIBE_VERSION_SEQ_ONLY) {
            let rooms: Vec<(RoomId, u64)> =
                versioned::decode_frame(bytes, SUBSCRIBE_VERSION_SEQ_ONLY, max)?;
            rooms
                .into_iter()
                .map(|(room, after_seq)| RoomFrom { room, after_seq, after_change: None })
                .collect()
        } else {
            let rooms: Vec<(RoomId, u64, u64)> =
                versioned::decode_frame(bytes, SUBSCRIBE_VERSION, max)?;
            rooms.into_iter().map(|(room, seq, change)| RoomFrom::new(room, seq, change)).collect()
        };
        Ok(SubscribeFrame { rooms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lobby() -> RoomId {
        RoomId::Group("lobby".into())
    }

    #[test]
    fn both_versions_round_trip_at_every_byte() {
        let v2 = SubscribeFrame { rooms: vec![RoomFrom::new(lobby(), 7, 9 << 10)] };
        let v1 = SubscribeFrame {
            rooms: vec![RoomFrom { room: lobby(), after_seq: 7, after_change: None }],
        };
        for frame in [v1, v2] {
            let bytes = frame.encode();
            assert_eq!(SubscribeFrame::decode(&bytes), Ok(frame.clone()));
            for cut in 0..bytes.len() {
                assert!(SubscribeFrame::decode(&bytes[..cut]).is_err(), "cut {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(SubscribeFrame::decode(&longer).is_err());
        }
    }

    #[test]
    fn the_layouts_are_the_documented_ones() {
        // docs/PROTOCOL.md, "Live subscriptions": version, count, then per
        // room: tag 0 (Group), name length, name, after_seq[, after_change].
        let v1 = SubscribeFrame {
            rooms: vec![RoomFrom {
                room: RoomId::Group("ab".into()),
                after_seq: 5,
                after_change: None,
            }],
        };
        assert_eq!(v1.encode(), [1, 1, 0, 2, b'a', b'b', 5]);
        let v2 = SubscribeFrame { rooms: vec![RoomFrom::new(RoomId::Group("ab".into()), 5, 300)] };
        assert_eq!(v2.encode(), [2, 1, 0, 2, b'a', b'b', 5, 0xac, 0x02]);
        let other = [3u8, 0];
        assert_eq!(
            SubscribeFrame::decode(&other),
            Err(ClientFrameError::Version { found: 3, supported: 2 })
        );
    }
}
