//! Typing notices: "this user is typing in this room", signed by the user,
//! ephemeral like presence. They never enter the log; replicas pass them on
//! over gossip and to the room's live subscribers, and drop them when any
//! queue is full. A notice lapses after [`TYPING_TTL_MS`] unless renewed.

use crate::im::identity::{Identity, IdentityError, UserId};
use crate::im::protocol::RoomId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// How long a typing notice holds without a new one.
pub const TYPING_TTL_MS: u64 = 6_000;

/// The signed part of a typing notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingBody {
    /// The room typed in.
    pub room: RoomId,
    /// True while typing; false when the user stopped (or sent).
    pub active: bool,
    /// The client's clock (ms since the UNIX epoch).
    pub issued_at_ms: u64,
}

/// A typing notice as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTyping {
    /// Who.
    pub user: UserId,
    /// `postcard(TypingBody)`.
    pub body: Bytes,
    /// Signature over `body`.
    pub signature: Bytes,
}

/// Why a typing notice was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypingError {
    /// The signature does not verify.
    #[error("typing notice signature: {0}")]
    Identity(IdentityError),
    /// The body does not decode.
    #[error("typing notice does not decode")]
    Malformed,
    /// Issued too long ago (or replayed after it lapsed).
    #[error("typing notice issued at {issued_at_ms} ms has lapsed (now {now_ms} ms)")]
    Lapsed {
        /// When the notice says it was issued.
        issued_at_ms: u64,
        /// The replica's time.
        now_ms: u64,
    },
    /// Issued further ahead than clocks may disagree.
    #[error("typing notice issued at {issued_at_ms} ms is from the future (now {now_ms} ms)")]
    FromFuture {
        /// When the notice says it was issued.
        issued_at_ms: u64,
        /// The replica's time.
        now_ms: u64,
    },
    /// Not newer than a notice already taken from this user for this room.
    #[error("typing notice repeated")]
    Repeated,
    /// Too many typists are remembered at once.
    #[error("too many typing notices at once")]
    Full,
}

impl SignedTyping {
    /// Signs a notice.
    pub fn sign(identity: &Identity, body: &TypingBody) -> SignedTyping {
        let bytes = Bytes::from(postcard::to_allocvec(body).expect("typing notices encode"));
        SignedTyping { user: identity.user(), signature: identity.sign(&bytes), body: bytes }
    }

    /// Checks the signature and decodes the body.
    pub fn verify(&self) -> Result<TypingBody, TypingError> {
        self.user.verify(&self.body, &self.signature).map_err(TypingError::Identity)?;
        postcard::from_bytes(&self.body).map_err(|_| TypingError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_verify_and_forgeries_do_not() {
        let ann = Identity::from_secret([1; 32]);
        let body = TypingBody { room: RoomId::Group("r".into()), active: true, issued_at_ms: 3 };
        let notice = SignedTyping::sign(&ann, &body);
        assert_eq!(notice.verify(), Ok(body));
        let mut forged = notice.clone();
        forged.user = Identity::from_secret([2; 32]).user();
        assert!(matches!(forged.verify(), Err(TypingError::Identity(_))));
    }
}
