//! Client commands: what a user asks the replicated state to do, signed.

use super::file::FileInfo;
use super::room::{Role, RoomId, Visibility};
use crate::files::FileId;
use crate::im::identity::{Identity, IdentityError, UserId};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The IM protocol version this build speaks.
pub const IM_PROTOCOL_VERSION: u16 = 1;

/// Where a message goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// A room the author belongs to.
    Room(RoomId),
    /// A user: their direct room with the author, created on first use.
    User(UserId),
}

/// One thing a user can do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Operation {
    /// Register (or rename) the author with a unique display name.
    Register {
        /// 1 to 32 of `A-Z a-z 0-9 . - _`, unique ignoring case.
        name: String,
    },
    /// Create a group room; the author becomes its owner.
    CreateRoom {
        /// The room's unique name.
        name: String,
        /// Who may join.
        visibility: Visibility,
    },
    /// Invite a user to a room (admins; any member in public rooms).
    Invite {
        /// The room.
        room: RoomId,
        /// The invitee.
        user: UserId,
    },
    /// Join a public room, or a private one the author is invited to.
    Join {
        /// The room.
        room: RoomId,
    },
    /// Leave a room.
    Leave {
        /// The room.
        room: RoomId,
    },
    /// Remove a member (admins, over members of lower rank).
    Kick {
        /// The room.
        room: RoomId,
        /// The member.
        user: UserId,
    },
    /// Remove a member and bar them from rejoining (admins).
    Ban {
        /// The room.
        room: RoomId,
        /// The user.
        user: UserId,
    },
    /// Lift a ban (admins).
    Unban {
        /// The room.
        room: RoomId,
        /// The user.
        user: UserId,
    },
    /// Change a member's role (owners; admins may not create owners).
    SetRole {
        /// The room.
        room: RoomId,
        /// The member.
        user: UserId,
        /// The new role.
        role: Role,
    },
    /// Rename a group room (admins). Its id stays the same.
    Rename {
        /// The room.
        room: RoomId,
        /// The new display title.
        title: String,
    },
    /// Set a room's topic (admins).
    SetTopic {
        /// The room.
        room: RoomId,
        /// The topic (at most 512 bytes).
        topic: String,
    },
    /// Send a text message; the command id is the message id.
    Send {
        /// Where.
        to: Target,
        /// The text (at most 16 KiB).
        text: String,
    },
    /// Replace the text of one's own message.
    Edit {
        /// The room.
        room: RoomId,
        /// The message's sequence number.
        seq: u64,
        /// The new text.
        text: String,
    },
    /// Delete a message (its author, or an admin); a tombstone keeps its place.
    Delete {
        /// The room.
        room: RoomId,
        /// The message's sequence number.
        seq: u64,
    },
    /// Add or remove a reaction.
    React {
        /// The room.
        room: RoomId,
        /// The message's sequence number.
        seq: u64,
        /// The reaction (an emoji or short code, at most 32 bytes).
        reaction: String,
        /// Add (true) or remove (false).
        add: bool,
    },
    /// Move the author's read cursor in a room forward to `seq`.
    MarkRead {
        /// The room.
        room: RoomId,
        /// Last entry read.
        seq: u64,
    },
    /// Send a file: its manifest becomes a room entry (the command id is
    /// the message id). The content is stored by the replicas beforehand.
    SendFile {
        /// Where.
        to: Target,
        /// The file.
        file: FileInfo,
        /// A caption (may be empty; at most 16 KiB).
        caption: String,
    },
    /// Replicas only: the author (a replica's key) holds `file`'s content,
    /// synced. Clients' commands of this kind are refused at intake, and a
    /// replica's only if it is the author.
    HoldFile {
        /// The content.
        file: FileId,
    },
    /// Ask `user` to become a contact (accepting their request, if they
    /// sent one).
    RequestContact {
        /// The other user.
        user: UserId,
    },
    /// Accept `user`'s contact or message request: contacts from now on,
    /// and their direct room opens to the author.
    AcceptRequest {
        /// The sender.
        user: UserId,
    },
    /// Decline `user`'s request; the sender is not told.
    DeclineRequest {
        /// The sender.
        user: UserId,
    },
    /// Withdraw the author's own request to `user`.
    CancelRequest {
        /// The recipient.
        user: UserId,
    },
    /// End a contact (both ways); a direct room stays as it is.
    RemoveContact {
        /// The contact.
        user: UserId,
    },
    /// Block `user`: no requests or invitations from them, no presence or
    /// typing to them, their messages hidden from the author's views. The
    /// blocked user is not told.
    Block {
        /// The user.
        user: UserId,
    },
    /// Lift a block; what was hidden shows again.
    Unblock {
        /// The user.
        user: UserId,
    },
    /// Whether the author's read position is shown to others.
    ShareReads {
        /// Share (the default) or keep private.
        share: bool,
    },
    /// Turn down an invitation to a room (`Join` accepts one).
    DeclineInvite {
        /// The room.
        room: RoomId,
    },
}

/// What the author signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandBody {
    /// [`IM_PROTOCOL_VERSION`] of the client that built it.
    pub version: u16,
    /// Client-chosen id: retries reuse it, and the state applies it once.
    pub command_id: Uuid,
    /// The client's clock when it first built the command (ms since the
    /// UNIX epoch); commands older than the replay window are refused.
    pub issued_at_ms: u64,
    /// What to do.
    pub op: Operation,
}

/// A command with its author and signature over the body's exact bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCommand {
    /// Who signed.
    pub author: UserId,
    /// `postcard(CommandBody)`: the signed bytes, kept verbatim so that any
    /// reader can re-verify who wrote a stored message.
    pub body: Bytes,
    /// ed25519 signature over `body`.
    pub signature: Bytes,
}

/// Why a signed command was refused before it reached the log.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CommandError {
    /// The body does not decode.
    #[error("command body does not decode")]
    Malformed,
    /// The signature does not verify for the author.
    #[error("signature check failed: {0}")]
    Identity(IdentityError),
    /// The authenticated connection belongs to someone else.
    #[error("command signed by {author} arrived on a connection authenticated as {connection}")]
    AuthorMismatch {
        /// The command's author.
        author: String,
        /// The connection's user.
        connection: String,
    },
    /// Built by a client speaking another protocol version.
    #[error("IM protocol version {found} is not supported (this node speaks {supported})")]
    Version {
        /// The command's version.
        found: u16,
        /// This build's version.
        supported: u16,
    },
    /// Only a replica may submit this operation, as itself.
    #[error("only a replica may submit this, as itself")]
    ReplicaOnly,
}

impl SignedCommand {
    /// Signs `body` as `identity`.
    pub fn sign(identity: &Identity, body: &CommandBody) -> SignedCommand {
        let bytes = Bytes::from(postcard::to_allocvec(body).expect("command bodies encode"));
        SignedCommand { author: identity.user(), signature: identity.sign(&bytes), body: bytes }
    }

    /// Checks the signature and version and decodes the body. Called by the
    /// node that receives the command, before proposing it; `connection` is
    /// the user the transport authenticated, if any.
    pub fn verify(&self, connection: Option<UserId>) -> Result<CommandBody, CommandError> {
        self.check_author(connection)?;
        self.author.verify(&self.body, &self.signature).map_err(CommandError::Identity)?;
        self.decode_body()
    }

    /// Refuses a command whose author is not the connection's user.
    pub(crate) fn check_author(&self, connection: Option<UserId>) -> Result<(), CommandError> {
        match connection.filter(|c| *c != self.author) {
            Some(conn) => Err(CommandError::AuthorMismatch {
                author: self.author.to_string(),
                connection: conn.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// A hash of exactly these signed bytes (author, signature, body).
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(&self.author.0);
        h.update(&(self.signature.len() as u64).to_le_bytes());
        h.update(&self.signature);
        h.update(&self.body);
        *h.finalize().as_bytes()
    }

    /// Decodes the body without checking the signature (for replicas
    /// applying a command the leader already verified).
    pub fn decode_body(&self) -> Result<CommandBody, CommandError> {
        let body: CommandBody =
            postcard::from_bytes(&self.body).map_err(|_| CommandError::Malformed)?;
        if body.version != IM_PROTOCOL_VERSION {
            return Err(CommandError::Version {
                found: body.version,
                supported: IM_PROTOCOL_VERSION,
            });
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> CommandBody {
        CommandBody {
            version: IM_PROTOCOL_VERSION,
            command_id: Uuid::from_u128(1),
            issued_at_ms: 5,
            op: Operation::Register { name: "ann".into() },
        }
    }

    #[test]
    fn verifies_signature_version_and_connection() {
        let ann = Identity::from_secret([1; 32]);
        let bob = Identity::from_secret([2; 32]);
        let cmd = SignedCommand::sign(&ann, &body());
        assert_eq!(cmd.verify(Some(ann.user())), Ok(body()));
        assert!(matches!(cmd.verify(Some(bob.user())), Err(CommandError::AuthorMismatch { .. })));
        let mut forged = cmd.clone();
        forged.author = bob.user();
        assert_eq!(forged.verify(None), Err(CommandError::Identity(IdentityError::BadSignature)));
        let mut tampered = cmd.clone();
        tampered.body =
            Bytes::from(postcard::to_allocvec(&CommandBody { issued_at_ms: 6, ..body() }).unwrap());
        assert!(tampered.verify(None).is_err());
        let future = SignedCommand::sign(&ann, &CommandBody { version: 9, ..body() });
        assert_eq!(future.verify(None), Err(CommandError::Version { found: 9, supported: 1 }));
        let junk = SignedCommand {
            body: Bytes::from_static(&[0xff]),
            signature: ann.sign(&[0xff]),
            author: ann.user(),
        };
        assert_eq!(junk.verify(None), Err(CommandError::Malformed));
    }
}

#[cfg(test)]
mod encoding_tests {
    use super::*;

    /// Pins the byte layout docs/PROTOCOL.md documents.
    #[test]
    fn body_layout_matches_the_spec() {
        let body = CommandBody {
            version: IM_PROTOCOL_VERSION,
            command_id: Uuid::from_u128(0x0102),
            issued_at_ms: 300,
            op: Operation::Join { room: RoomId::Group("ab".into()) },
        };
        let bytes = postcard::to_allocvec(&body).unwrap();
        let mut want = vec![1u8, 16];
        want.extend_from_slice(&0x0102u128.to_be_bytes());
        want.extend_from_slice(&[0xac, 0x02, 3, 0, 2, b'a', b'b']);
        assert_eq!(bytes, want);
    }
}
