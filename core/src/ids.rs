//! Identifier newtypes. Each is its own type so a term can never be passed
//! where a log index is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        pub struct $name(pub u64);

        impl $name {
            /// The raw number, for logs and foreign APIs.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_type!(
    /// A replica's Raft id. Never 0 (raft-rs reserves 0 for "none").
    NodeId
);
id_type!(
    /// A Raft term.
    Term
);
id_type!(
    /// A position in the replicated log. Index 0 is "before the first entry".
    LogIndex
);
id_type!(
    /// Names one client submission on the node that accepted it.
    ProposalId
);
id_type!(
    /// Names one linearizable read on the node that accepted it.
    ReadId
);
id_type!(
    /// Names one `Output::Persist` batch; the adapter reports completion with it.
    PersistId
);

impl LogIndex {
    /// The next index.
    pub const fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }
}

impl NodeId {
    /// The Raft id of the replica whose libp2p PeerId has these bytes.
    ///
    /// Deriving the id (rather than assigning one) makes the replica
    /// directory self-certifying: a record "node N is peer P" is checked by
    /// hashing P, so a peer cannot claim another replica's id.
    pub fn of_peer(peer_bytes: &[u8]) -> NodeId {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"kith node id");
        hasher.update(peer_bytes);
        let hash = hasher.finalize();
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&hash.as_bytes()[..8]);
        // Keep ids readable (below 2^53, exact in JSON) and non-zero.
        NodeId((u64::from_le_bytes(raw) & ((1 << 53) - 1)).max(1))
    }
}
