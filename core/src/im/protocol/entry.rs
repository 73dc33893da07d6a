//! What a room's ordered log holds: messages and the membership and
//! settings changes between them, one gap-free sequence per room. Putting
//! membership changes in the same sequence makes them take effect at an
//! exact point: a member removed at `seq` sees nothing after it.

use super::file::FileInfo;
use super::room::{Role, Visibility};
use crate::im::identity::UserId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// One entry of a room's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomEntry {
    /// Position in the room, from 1, without gaps.
    pub seq: u64,
    /// When the leader ordered it (ms since the UNIX epoch).
    pub time_ms: u64,
    /// Who caused it.
    pub author: UserId,
    /// What it is.
    pub kind: EntryKind,
}

/// The kinds of room entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EntryKind {
    /// A text message.
    Message(Message),
    /// The room was created.
    Created {
        /// Its visibility.
        visibility: Visibility,
    },
    /// `user` was invited.
    Invited {
        /// The invitee.
        user: UserId,
    },
    /// `user` joined (for direct rooms, both users join at creation).
    Joined {
        /// The new member.
        user: UserId,
    },
    /// `user` left.
    Left {
        /// The former member.
        user: UserId,
    },
    /// `user` was removed by the author.
    Kicked {
        /// The former member.
        user: UserId,
    },
    /// `user` was banned by the author.
    Banned {
        /// The banned user.
        user: UserId,
    },
    /// `user`'s ban was lifted.
    Unbanned {
        /// The user.
        user: UserId,
    },
    /// `user` now has `role`.
    RoleChanged {
        /// The member.
        user: UserId,
        /// The new role.
        role: Role,
    },
    /// The room's title changed.
    Renamed {
        /// The new title.
        title: String,
    },
    /// The room's topic changed.
    TopicChanged {
        /// The new topic.
        topic: String,
    },
    /// A file message: the manifest, and the caption as its message.
    File(Box<FileEntry>),
    /// A message or file by a user the reader blocks: its place in the
    /// log, not its content. It is never stored: reads of a user who
    /// blocks the author show it in the message's place, and show the
    /// message again once the block is lifted.
    Hidden,
}

/// A file message. Edits change the caption; deleting it stops the file
/// being served through this entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The file.
    pub file: FileInfo,
    /// The caption, with the message's id, proof, edits, deletion and
    /// reactions.
    pub message: Message,
}

/// A text message, with what later happened to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The client-chosen message id.
    pub msg_id: Uuid,
    /// The current text (empty once deleted).
    pub text: String,
    /// The signed command that set the current text, so any reader can
    /// verify the author: `postcard(CommandBody)` and its signature.
    pub proof: Proof,
    /// How many times it was edited.
    pub edits: u32,
    /// Deleted: a tombstone that keeps its sequence number.
    pub deleted: bool,
    /// Reactions and who gave them.
    pub reactions: BTreeMap<String, Vec<UserId>>,
}

/// A signed command body as the author sent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// The signed bytes.
    pub body: Bytes,
    /// The signature.
    pub signature: Bytes,
}
