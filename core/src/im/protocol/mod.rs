//! The IM protocol types: commands, entries, replies, queries. Versioned
//! serde types encoded with postcard; docs/PROTOCOL.md specifies them.

mod command;
mod contact;
mod entry;
mod file;
mod query;
mod reply;
mod room;

pub use command::{
    CommandBody, CommandError, Operation, SignedCommand, Target, IM_PROTOCOL_VERSION,
};
pub use contact::{ContactsView, Relation, RequestInfo};
pub use entry::{EntryKind, FileEntry, Message, Proof, RoomEntry};
pub use file::{FileInfo, FileInfoError};
pub use query::{
    ImQuery, InboxPage, InviteInfo, Page, QueryKind, QueryReply, QueryResult, RoomInfo,
    RoomSummary, UserInfo,
};
pub use reply::{ImError, ImEvent, ImResponse, Receipt};
pub use room::{Role, RoomId, Visibility};
