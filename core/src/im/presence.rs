//! Presence announcements: who is online, away or offline, signed by the
//! user. The table each replica keeps of them is the replica service's
//! (`crate::replica::presence`).
//!
//! Presence is ephemeral and never enters the Raft log: a user's client
//! announces itself (signed, with a time-to-live) over gossip, and each node
//! keeps this table, expiring announcements by the `now` its driver passes
//! in. Announcements may arrive late, twice or out of order; an older one
//! never overrides a newer one.

use crate::im::identity::{Identity, IdentityError, UserId};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What a user's client says about them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PresenceStatus {
    /// Active.
    Online,
    /// Connected but idle.
    Away,
    /// Gone (announced on clean exit, or after the time-to-live ran out).
    Offline,
}

/// The signed part of an announcement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceBody {
    /// The announced status.
    pub status: PresenceStatus,
    /// The client's clock (ms since the UNIX epoch); orders announcements.
    pub issued_at_ms: u64,
    /// How long the status holds without a new announcement.
    pub ttl_ms: u64,
}

/// An announcement as it travels over gossip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPresence {
    /// Who.
    pub user: UserId,
    /// `postcard(PresenceBody)`.
    pub body: Bytes,
    /// Signature over `body`.
    pub signature: Bytes,
}

impl SignedPresence {
    /// Signs an announcement.
    pub fn sign(identity: &Identity, body: &PresenceBody) -> SignedPresence {
        let bytes = Bytes::from(postcard::to_allocvec(body).expect("presence encodes"));
        SignedPresence { user: identity.user(), signature: identity.sign(&bytes), body: bytes }
    }

    /// Checks the signature and decodes the body.
    pub fn verify(&self) -> Result<PresenceBody, PresenceError> {
        self.user.verify(&self.body, &self.signature).map_err(PresenceError::Identity)?;
        postcard::from_bytes(&self.body).map_err(|_| PresenceError::Malformed)
    }
}

/// Why an announcement was ignored.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PresenceError {
    /// Bad signature.
    #[error("presence signature: {0}")]
    Identity(IdentityError),
    /// The body does not decode.
    #[error("presence announcement does not decode")]
    Malformed,
    /// Longer than the maximum time-to-live.
    #[error("presence ttl of {0} ms exceeds the maximum")]
    TtlTooLong(u64),
    /// An announcement at least as new was already seen.
    #[error("stale presence announcement")]
    Stale,
    /// The table is full of live entries.
    #[error("presence table is full")]
    Full,
}
