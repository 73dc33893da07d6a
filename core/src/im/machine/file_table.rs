//! Which entries refer to which file content, and how much each user's
//! file messages hold. Kept beside [`super::state::ImState`] (and after it
//! in snapshots and stored summaries), so that summaries written before
//! files existed still read.
//!
//! Rules:
//! - A file message refers to its content from the moment it is applied
//!   until it is deleted; content no entry refers to is released (replicas
//!   reclaim it).
//! - Each file message charges its author the file's size against
//!   [`limits::USER_FILE_BYTES_MAX`], shared content or not; deleting it,
//!   by anyone, gives the author the bytes back.
//! - A user may fetch content while they may read some live (not deleted)
//!   entry that refers to it.
//! - Replicas record that they hold content (`HoldFile`, after it is
//!   synced); a file message needs at least one holder, so content is
//!   uploaded before its message. Content held but referred to by no entry
//!   is released [`limits::ORPHAN_HOLD_MS`] after it was first held (an
//!   upload whose message never came), or at once when its last message is
//!   deleted; a released content has no holders and replicas reclaim it.

use crate::files::FileId;
use crate::im::identity::UserId;
use crate::im::protocol::{ImError, RoomId};
use crate::limits;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One file message: where it is and who pays for it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Reference {
    pub(crate) room: RoomId,
    pub(crate) seq: u64,
    pub(crate) author: UserId,
}

/// Every file's references and every user's usage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileTable {
    files: BTreeMap<FileId, BTreeSet<Reference>>,
    usage_bytes: BTreeMap<UserId, u64>,
    /// Not derived from the entries: snapshots carry it.
    pub(crate) holdings: Holdings,
}

/// Which replicas hold which content, and content nobody refers to yet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Holdings {
    holders: BTreeMap<FileId, BTreeSet<UserId>>,
    /// Held, referred to by no entry: (first held at, file), oldest first.
    orphans: BTreeSet<(u64, FileId)>,
    orphan_since_ms: BTreeMap<FileId, u64>,
}

impl FileTable {
    /// Refuses a new file message of `author` that the limits do not allow.
    pub(crate) fn check_new(&self, author: UserId, file: FileId) -> Result<(), ImError> {
        self.check_quota(author, file)?;
        if self.files.get(&file).is_some_and(|refs| refs.len() >= limits::FILE_REFERENCES_MAX) {
            return Err(ImError::LimitReached("messages sharing one file".into()));
        }
        Ok(())
    }

    /// Refuses `file` when its size would take `user` past the quota.
    pub(crate) fn check_quota(&self, user: UserId, file: FileId) -> Result<(), ImError> {
        let used_bytes = self.usage(user);
        if used_bytes.saturating_add(file.size_bytes) > limits::USER_FILE_BYTES_MAX {
            return Err(ImError::QuotaExceeded {
                used_bytes,
                quota_bytes: limits::USER_FILE_BYTES_MAX,
                size_bytes: file.size_bytes,
            });
        }
        Ok(())
    }

    /// Records a file message (after [`FileTable::check_new`]); false if
    /// it was already recorded (then nothing changes).
    pub(crate) fn refer(&mut self, file: FileId, reference: Reference) -> bool {
        self.holdings.adopt(file);
        let author = reference.author;
        let fresh = self.files.entry(file).or_default().insert(reference);
        if fresh {
            *self.usage_bytes.entry(author).or_default() += file.size_bytes;
        }
        fresh
    }

    /// Forgets a deleted file message; true when no entry refers to the
    /// content any more.
    pub(crate) fn release(&mut self, file: FileId, reference: &Reference) -> bool {
        let Some(refs) = self.files.get_mut(&file) else { return false };
        if !refs.remove(reference) {
            return false;
        }
        let used = self.usage_bytes.entry(reference.author).or_default();
        *used = used.checked_sub(file.size_bytes).expect("usage covers every reference");
        if *used == 0 {
            self.usage_bytes.remove(&reference.author);
        }
        if refs.is_empty() {
            self.files.remove(&file);
            self.holdings.holders.remove(&file);
            return true;
        }
        false
    }

    /// Records that `replica` holds `file` (true if it was not recorded
    /// yet); refused when too much content nobody refers to is held already.
    pub(crate) fn hold(
        &mut self,
        file: FileId,
        replica: UserId,
        now_ms: u64,
    ) -> Result<bool, ImError> {
        let h = &mut self.holdings;
        let referenced = self.files.contains_key(&file);
        if !referenced && !h.orphan_since_ms.contains_key(&file) {
            if h.orphans.len() >= limits::ORPHAN_FILES_MAX {
                return Err(ImError::LimitReached("content held but not yet sent".into()));
            }
            h.orphans.insert((now_ms, file));
            h.orphan_since_ms.insert(file, now_ms);
        }
        Ok(h.holders.entry(file).or_default().insert(replica))
    }

    /// The replicas that hold `file`.
    pub(crate) fn holders(&self, file: FileId) -> impl Iterator<Item = &UserId> {
        self.holdings.holders.get(&file).into_iter().flatten()
    }

    /// Releases content held longer than [`limits::ORPHAN_HOLD_MS`] with no
    /// entry referring to it (a bounded number per call); returns it.
    pub(crate) fn expire_orphans(&mut self, now_ms: u64) -> Vec<FileId> {
        let h = &mut self.holdings;
        let mut released = Vec::new();
        while released.len() < limits::ORPHANS_EXPIRED_PER_COMMAND_MAX {
            let Some(&(since_ms, file)) = h.orphans.first() else { break };
            if since_ms.saturating_add(limits::ORPHAN_HOLD_MS) > now_ms {
                break;
            }
            h.orphans.remove(&(since_ms, file));
            h.orphan_since_ms.remove(&file);
            h.holders.remove(&file);
            released.push(file);
        }
        released
    }

    /// Bytes `user`'s file messages hold.
    pub(crate) fn usage(&self, user: UserId) -> u64 {
        self.usage_bytes.get(&user).copied().unwrap_or(0)
    }

    /// Whether any entry refers to `file`.
    pub(crate) fn is_referenced(&self, file: FileId) -> bool {
        self.files.contains_key(&file)
    }

    /// Every content some entry refers to, in id order, from `after` on
    /// (exclusive).
    pub(crate) fn referenced_after(
        &self,
        after: Option<FileId>,
    ) -> impl Iterator<Item = FileId> + '_ {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, Excluded);
        self.files.range((from, Unbounded)).map(|(file, _)| *file)
    }

    /// The entries that refer to `file`.
    pub(crate) fn references(&self, file: FileId) -> impl Iterator<Item = &Reference> {
        self.files.get(&file).into_iter().flatten()
    }
}

impl Holdings {
    /// `file` is now referred to: it is no longer an orphan.
    fn adopt(&mut self, file: FileId) {
        if let Some(since_ms) = self.orphan_since_ms.remove(&file) {
            self.orphans.remove(&(since_ms, file));
        }
    }
}
