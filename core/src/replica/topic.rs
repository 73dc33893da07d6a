//! The gossip topics replicas share, and their names on the wire.

/// The gossip topics replicas share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum GossipTopic {
    /// Signed presence announcements.
    Presence,
    /// Signed typing notices.
    Typing,
}

impl GossipTopic {
    /// Every topic, for drivers subscribing at start.
    pub const ALL: [GossipTopic; 2] = [GossipTopic::Presence, GossipTopic::Typing];

    /// The topic's name on the wire (docs/PROTOCOL.md).
    pub fn name(self) -> &'static str {
        match self {
            GossipTopic::Presence => "kith/presence/1",
            GossipTopic::Typing => "kith/typing/1",
        }
    }

    /// The topic with this name, if it is one of ours.
    pub fn named(name: &str) -> Option<GossipTopic> {
        GossipTopic::ALL.into_iter().find(|t| t.name() == name)
    }
}
