//! Messages, their edits, deletions and reactions, and read cursors.

use super::{Ctx, ImMachine};
use crate::im::protocol::{
    EntryKind, FileInfo, ImError, ImEvent, Message, Proof, Receipt, Role, RoomId, Target,
};
use crate::limits;
use std::collections::BTreeMap;
use uuid::Uuid;

/// What the acting user may do to a message.
struct Rights {
    /// They wrote it.
    author: bool,
    /// They are an admin or owner of the (group) room.
    moderator: bool,
}

/// Whether `text` has control characters other than newline and tab.
pub(super) fn has_control_chars(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

fn validate_text(text: &str) -> Result<(), ImError> {
    if text.trim().is_empty() || text.len() > limits::MESSAGE_BYTES_MAX || has_control_chars(text) {
        return Err(ImError::BadLength {
            what: "a message".into(),
            max: limits::MESSAGE_BYTES_MAX,
        });
    }
    Ok(())
}

impl ImMachine {
    fn proof(ctx: &Ctx) -> Proof {
        Proof { body: ctx.command.body.clone(), signature: ctx.command.signature.clone() }
    }

    /// A new message (text, or a file's caption) as the command of `ctx`
    /// writes it.
    pub(super) fn new_message(ctx: &Ctx, msg_id: Uuid, text: &str) -> Message {
        Message {
            msg_id,
            text: text.to_string(),
            proof: Self::proof(ctx),
            edits: 0,
            deleted: false,
            reactions: BTreeMap::new(),
        }
    }

    pub(super) fn send(
        &mut self,
        ctx: &mut Ctx,
        msg_id: Uuid,
        to: &Target,
        text: &str,
    ) -> Result<Receipt, ImError> {
        validate_text(text)?;
        let room = self.target_room(ctx, to)?;
        let message = Self::new_message(ctx, msg_id, text);
        let receipt = self.append(ctx, &room, EntryKind::Message(message));
        if let Receipt::Appended { seq, .. } = &receipt {
            self.placed_message(ctx, msg_id, &room, *seq);
        }
        Ok(receipt)
    }

    /// The room a message to `to` goes to (a direct room is opened on
    /// first use).
    pub(super) fn target_room(&mut self, ctx: &mut Ctx, to: &Target) -> Result<RoomId, ImError> {
        match to {
            // A direct room by its id goes the way of a message to the
            // other user: the request rules apply either way.
            Target::Room(RoomId::Direct(a, b)) if *a == ctx.author || *b == ctx.author => {
                let other = if *a == ctx.author { *b } else { *a };
                self.direct_room(ctx, other)
            }
            Target::Room(room) => {
                self.room(room)?.role_of(ctx.author)?;
                Ok(room.clone())
            }
            Target::User(user) => self.direct_room(ctx, *user),
        }
    }

    /// After a message (text or file) was placed at `seq`: its author has
    /// read the room up to it, and its id finds it again.
    pub(super) fn placed_message(&mut self, ctx: &mut Ctx, msg_id: Uuid, room: &RoomId, seq: u64) {
        // Whoever writes a message has read the room up to it: their own
        // messages never count as unread.
        if let Some(r) = self.state.rooms.get_mut(room) {
            let cursor = r.read.entry(ctx.author).or_default();
            if *cursor < seq {
                *cursor = seq;
                // Live subscribers see every read position move.
                let read = ImEvent::Read { room: room.clone(), user: ctx.author, seq };
                ctx.events.push(read);
            }
        }
        if let Err(e) = self.history.put_message_id(ctx.author, msg_id, &(room.clone(), seq)) {
            self.fail(e);
        }
    }

    /// Applies `change` to the message at `seq` after the membership check,
    /// and reports the updated entry.
    fn update_message(
        &mut self,
        ctx: &mut Ctx,
        room: &RoomId,
        seq: u64,
        change: impl FnOnce(&mut Message, Rights) -> Result<(), ImError>,
    ) -> Result<Receipt, ImError> {
        let r = self.state.rooms.get(room).ok_or(ImError::NoSuchRoom)?;
        let role = r.role_of(ctx.author)?;
        let moderator = !r.is_direct() && role >= Role::Admin;
        if seq == 0 || seq > r.last_seq {
            return Err(ImError::NoSuchMessage);
        }
        let old = match self.history.entry(room, seq) {
            Ok(Some(old)) => old,
            Ok(None) => {
                let missing = format!("entry {seq} of a room is missing");
                self.fail(crate::im::history::HistoryError::Corrupt(missing.clone()));
                return Err(ImError::Unavailable(missing));
            }
            Err(e) => {
                let why = e.to_string();
                self.fail(e);
                return Err(ImError::Unavailable(why));
            }
        };
        let mut entry = old.clone();
        let author = entry.author == ctx.author;
        let message = match &mut entry.kind {
            EntryKind::Message(message) => message,
            EntryKind::File(file) => &mut file.message,
            _ => return Err(ImError::NoSuchMessage),
        };
        let was_deleted = message.deleted;
        change(message, Rights { author, moderator })?;
        if message.deleted && !was_deleted {
            // A deleted file message keeps its place, not its file: the
            // content is no longer served through it, and its name, type
            // and hash are gone from the tombstone.
            self.release_file(ctx, room, &old);
            if let EntryKind::File(f) = &mut entry.kind {
                f.file = FileInfo::deleted();
            }
        }
        self.store(room, &entry, Some(&old));
        self.record_change(ctx, room, seq);
        ctx.events.push(ImEvent::Updated { room: room.clone(), entry });
        Ok(Receipt::Updated { room: room.clone(), seq })
    }

    pub(super) fn edit(
        &mut self,
        ctx: &mut Ctx,
        room: &RoomId,
        seq: u64,
        text: &str,
    ) -> Result<Receipt, ImError> {
        validate_text(text)?;
        let proof = Self::proof(ctx);
        self.update_message(ctx, room, seq, |m, rights| {
            if !rights.author {
                return Err(ImError::NotAuthor);
            }
            if m.deleted {
                return Err(ImError::Deleted);
            }
            m.text = text.to_string();
            m.proof = proof;
            m.edits += 1;
            Ok(())
        })
    }

    pub(super) fn delete(
        &mut self,
        ctx: &mut Ctx,
        room: &RoomId,
        seq: u64,
    ) -> Result<Receipt, ImError> {
        let proof = Self::proof(ctx);
        self.update_message(ctx, room, seq, |m, rights| {
            if !rights.author && !rights.moderator {
                return Err(ImError::NotAuthor);
            }
            m.deleted = true;
            m.text.clear();
            m.reactions.clear();
            m.proof = proof;
            Ok(())
        })
    }

    pub(super) fn react(
        &mut self,
        ctx: &mut Ctx,
        room: &RoomId,
        seq: u64,
        reaction: &str,
        add: bool,
    ) -> Result<Receipt, ImError> {
        if reaction.is_empty()
            || reaction.len() > limits::REACTION_BYTES_MAX
            || reaction.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ImError::BadLength {
                what: "a reaction".into(),
                max: limits::REACTION_BYTES_MAX,
            });
        }
        let me = ctx.author;
        self.update_message(ctx, room, seq, |m, _| {
            if m.deleted {
                return Err(ImError::Deleted);
            }
            if add {
                if !m.reactions.contains_key(reaction)
                    && m.reactions.len() >= limits::REACTIONS_PER_MESSAGE_MAX
                {
                    return Err(ImError::LimitReached("reactions per message".into()));
                }
                let who = m.reactions.entry(reaction.to_string()).or_default();
                if let Err(at) = who.binary_search(&me) {
                    who.insert(at, me);
                }
            } else if let Some(who) = m.reactions.get_mut(reaction) {
                who.retain(|u| *u != me);
                if who.is_empty() {
                    m.reactions.remove(reaction);
                }
            }
            Ok(())
        })
    }

    pub(super) fn mark_read(
        &mut self,
        ctx: &mut Ctx,
        room: &RoomId,
        seq: u64,
    ) -> Result<Receipt, ImError> {
        let user = ctx.author;
        let r = self.state.rooms.get_mut(room).ok_or(ImError::NoSuchRoom)?;
        let limit = r.readable_up_to(user).ok_or(ImError::NotMember)?;
        if seq > limit {
            return Err(ImError::BadCursor);
        }
        let cursor = r.read.entry(user).or_default();
        *cursor = (*cursor).max(seq);
        let seq = *cursor;
        ctx.events.push(ImEvent::Read { room: room.clone(), user, seq });
        Ok(Receipt::ReadUpTo { room: room.clone(), seq })
    }
}
