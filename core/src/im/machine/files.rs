//! File messages: a manifest in the room's log, its content referred to
//! while the message stands ([`super::file_table`]).

use super::file_table::Reference;
use super::messages::has_control_chars;
use super::{Ctx, ImMachine};
use crate::files::FileId;
use crate::ids::NodeId;
use crate::im::identity::UserId;
use crate::im::protocol::{
    EntryKind, FileEntry, FileInfo, FileInfoError, ImError, ImEvent, Receipt, RoomEntry, RoomId,
    Target,
};
use crate::limits;
use uuid::Uuid;

impl ImMachine {
    pub(super) fn send_file(
        &mut self,
        ctx: &mut Ctx,
        msg_id: Uuid,
        to: &Target,
        file: &FileInfo,
        caption: &str,
    ) -> Result<Receipt, ImError> {
        file.validate().map_err(ImError::BadFile)?;
        if caption.len() > limits::MESSAGE_BYTES_MAX || has_control_chars(caption) {
            return Err(ImError::BadLength {
                what: "a caption".into(),
                max: limits::MESSAGE_BYTES_MAX,
            });
        }
        self.files.check_new(ctx.author, file.id)?;
        if self.files.holders(file.id).next().is_none() {
            return Err(ImError::FileNotStored);
        }
        let room = self.target_room(ctx, to)?;
        let message = Self::new_message(ctx, msg_id, caption);
        let entry = FileEntry { file: file.clone(), message };
        let receipt = self.append(ctx, &room, EntryKind::File(Box::new(entry)));
        if let Receipt::Appended { seq, .. } = &receipt {
            let reference = Reference { room: room.clone(), seq: *seq, author: ctx.author };
            assert!(self.files.refer(file.id, reference), "a new entry is a new reference");
            self.placed_message(ctx, msg_id, &room, *seq);
        }
        Ok(receipt)
    }

    /// A replica holds `file`'s content (synced).
    pub(super) fn hold_file(&mut self, ctx: &mut Ctx, file: FileId) -> Result<Receipt, ImError> {
        FileInfoError::check_size(file).map_err(ImError::BadFile)?;
        if self.files.hold(file, ctx.author, ctx.now_ms)? {
            ctx.events.push(ImEvent::FileHeld { file, holder: ctx.author });
        }
        Ok(Receipt::Held { file })
    }

    /// The replicas (by key) that hold `file`'s content.
    pub fn file_holders(&self, file: FileId) -> Vec<UserId> {
        self.files.holders(file).copied().collect()
    }

    /// The Raft ids of the replicas that hold `file`'s content.
    pub fn file_holder_nodes(&self, file: FileId) -> impl Iterator<Item = NodeId> + '_ {
        self.files.holders(file).map(UserId::node_id)
    }

    /// Forgets the reference a deleted file entry held, and tells the
    /// replicas when the content is no longer referred to at all.
    pub(super) fn release_file(&mut self, ctx: &mut Ctx, room: &RoomId, entry: &RoomEntry) {
        let EntryKind::File(f) = &entry.kind else { return };
        if crate::config::bug_on!(self, deletion_keeps_file_reference) {
            return;
        }
        let reference = Reference { room: room.clone(), seq: entry.seq, author: entry.author };
        let mut released = self.files.release(f.file.id, &reference);
        if crate::config::bug_on!(self, release_on_any_delete) {
            // Every other message's reference goes with this one.
            let others: Vec<Reference> = self.files.references(f.file.id).cloned().collect();
            for other in others {
                released |= self.files.release(f.file.id, &other);
            }
        }
        if released {
            ctx.events.push(ImEvent::FileReleased { file: f.file.id });
        }
    }

    /// Whether `user` may fetch `file`'s content: they may read some entry
    /// that refers to it and is not deleted.
    pub fn may_fetch(&self, user: UserId, file: FileId) -> bool {
        self.files.references(file).any(|r| {
            self.state.rooms.get(&r.room).and_then(|room| room.readable_up_to(user)) >= Some(r.seq)
        })
    }

    /// Whether any entry refers to `file` (its content must be kept).
    pub fn is_file_referenced(&self, file: FileId) -> bool {
        self.files.is_referenced(file)
    }

    /// Whether the log refers to `file` or records a replica holding it:
    /// its content is in use (replicated, kept, served to members).
    pub fn is_file_in_use(&self, file: FileId) -> bool {
        self.is_file_referenced(file) || self.files.holders(file).next().is_some()
    }

    /// Every content some entry refers to, in id order, after `after`
    /// (a cursor for sweeps that go through them a part at a time).
    pub fn referenced_files_after(
        &self,
        after: Option<FileId>,
    ) -> impl Iterator<Item = FileId> + '_ {
        self.files.referenced_after(after)
    }

    /// Refuses a file of `file`'s size that would take `user` past their
    /// quota (the check a file message passes, made early for uploads).
    pub fn check_file_quota(&self, user: UserId, file: FileId) -> Result<(), ImError> {
        self.files.check_quota(user, file)
    }

    /// Bytes of files `user`'s messages hold against their quota.
    pub fn file_usage(&self, user: UserId) -> u64 {
        self.files.usage(user)
    }
}
