//! The IM state machine: users, rooms, messages and read cursors, applied
//! only from committed log entries and fully deterministic.

mod contacts;
mod file_table;
mod files;
mod messages;
mod multiset_hash;
mod queries;
mod rates;
mod replay;
mod rooms;
mod snapshot;
mod social;
mod state;

use crate::config::bug_on;
use crate::ids::LogIndex;
use crate::im::history::{change_number, HistoryError, HistoryStore, MemoryHistory};
use crate::im::identity::UserId;
use crate::im::protocol::{
    CommandBody, ImError, ImEvent, ImQuery, ImResponse, Operation, QueryKind, QueryReply,
    QueryResult, Receipt, RoomEntry, RoomId, SignedCommand,
};
use crate::limits;
use crate::state_machine::{ApplyContext, Digest, RestoreError, Restored, StateMachine};
use bytes::Bytes;
use state::{ImState, UserRecord};
use uuid::Uuid;

/// The replicated IM state machine: summaries in memory, entries in a
/// [`HistoryStore`].
#[derive(Debug)]
pub struct ImMachine {
    state: ImState,
    /// File references and usage: derived from the entries, kept beside
    /// the state (see [`file_table`]).
    files: file_table::FileTable,
    /// Contacts, requests and blocks.
    social: social::Social,
    /// How often each user did what is rate-limited.
    rates: rates::Rates,
    history: Box<dyn HistoryStore>,
    /// Set when the history store failed: the node must stop.
    fault: Option<String>,
    /// Test-only rule breakers (re-apply retried commands).
    #[cfg(feature = "bug-switches")]
    pub(crate) bugs: crate::bugs::BugSwitches,
}

impl Default for ImMachine {
    fn default() -> Self {
        ImMachine::with_history(Box::new(MemoryHistory::default()))
    }
}

/// Marks a change record in the history sum (entries are hashed as
/// `(room, entry)`, change records as `(CHANGE_RECORD, room, change, seq)`).
pub(crate) const CHANGE_RECORD: &str = "change";

/// The context one command runs in.
pub(crate) struct Ctx {
    pub(crate) author: UserId,
    /// The command's change number (`history::change_number`).
    pub(crate) change: u64,
    pub(crate) now_ms: u64,
    pub(crate) command: SignedCommand,
    pub(crate) events: Vec<ImEvent>,
}

impl ImMachine {
    /// An empty machine over `history` (restore a snapshot to fill it).
    pub fn with_history(history: Box<dyn HistoryStore>) -> ImMachine {
        ImMachine {
            state: ImState::default(),
            files: file_table::FileTable::default(),
            social: social::Social::default(),
            rates: rates::Rates::default(),
            history,
            fault: None,
            #[cfg(feature = "bug-switches")]
            bugs: crate::bugs::BugSwitches::default(),
        }
    }

    /// This machine with test-only rule breakers switched on.
    #[cfg(feature = "bug-switches")]
    pub fn with_bugs(self, bugs: crate::bugs::BugSwitches) -> ImMachine {
        ImMachine { bugs, ..self }
    }

    /// Records a store failure; the first one is what the node reports.
    fn fail(&mut self, e: HistoryError) {
        tracing::error!(error = %e, "the history store failed");
        self.fault.get_or_insert_with(|| e.to_string());
    }

    /// Writes `entry`, replacing `old`, and keeps the history sum current.
    fn store(&mut self, room: &RoomId, entry: &RoomEntry, old: Option<&RoomEntry>) {
        if let Some(old) = old {
            self.state.history_sum.remove(&(room, old));
        }
        self.state.history_sum.add(&(room, entry));
        if let Err(e) = self.history.put(room, entry) {
            self.fail(e);
        }
    }

    /// Records that entry `seq` of `room` changed in the command of `ctx`,
    /// for subscribers that resume changes (the history sum covers it).
    fn record_change(&mut self, ctx: &Ctx, room: &RoomId, seq: u64) {
        self.state.history_sum.add(&(CHANGE_RECORD, room, ctx.change, seq));
        if let Err(e) = self.history.put_change(room, ctx.change, seq) {
            self.fail(e);
        }
    }

    /// The changes of `room` numbered after `after`, oldest first, at most
    /// `limit`: `(change, seq)`.
    pub fn changes(
        &self,
        room: &RoomId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, HistoryError> {
        self.history.changes(room, after, limit)
    }

    /// The number of the latest change of `room` (0 for none): no change
    /// to come is numbered at or below it.
    pub fn latest_change(&self, room: &RoomId) -> Result<u64, HistoryError> {
        Ok(self.history.latest_change(room)?.unwrap_or(0))
    }

    /// The replicated clock (ms).
    pub fn clock_ms(&self) -> u64 {
        self.state.clock_ms
    }

    /// A registered user's name.
    pub fn user_name(&self, user: UserId) -> Option<&str> {
        self.state.users.get(&user).map(|u| u.name.as_str())
    }

    /// The highest sequence number `user` may read in `room`, if any.
    pub fn readable_up_to(&self, room: &RoomId, user: UserId) -> Option<u64> {
        self.state.rooms.get(room)?.readable_up_to(user)
    }

    /// Every user's read cursor in `room` (empty for no such room).
    pub fn read_positions(&self, room: &RoomId) -> Vec<(UserId, u64)> {
        self.state
            .rooms
            .get(room)
            .map_or_else(Vec::new, |r| r.read.iter().map(|(user, seq)| (*user, *seq)).collect())
    }

    /// Whether `viewer` is shown `reader`'s read positions (unless the
    /// reader keeps them private, and always their own).
    pub fn shows_reads(&self, reader: UserId, viewer: UserId) -> bool {
        reader == viewer || !self.social.reads_private(reader)
    }

    /// Whether `blocker` blocks `user` (who is then not shown the
    /// blocker's presence or typing, nor their requests).
    pub fn blocks(&self, blocker: UserId, user: UserId) -> bool {
        self.social.blocks(blocker, user)
    }

    /// Whether `user` is a member of `room` now.
    pub fn is_member(&self, room: &RoomId, user: UserId) -> bool {
        self.state.rooms.get(room).is_some_and(|r| r.members.contains_key(&user))
    }

    /// Whether `user` will see entries `room` gets from now on (a member, or
    /// anyone not banned from a public room).
    pub fn can_follow(&self, room: &RoomId, user: UserId) -> bool {
        self.state.rooms.get(room).is_some_and(|r| {
            r.members.contains_key(&user)
                || (r.visibility == Some(crate::im::protocol::Visibility::Public)
                    && !r.banned.contains(&user))
        })
    }

    /// Every room entry, rooms in id order (for checkers and exports; reads
    /// the whole history).
    pub fn all_entries(&self) -> Result<Vec<(RoomId, RoomEntry)>, HistoryError> {
        let mut all = Vec::new();
        for (id, r) in &self.state.rooms {
            let entries = self.history.range(id, 1, r.last_seq, usize::MAX)?;
            all.extend(entries.into_iter().map(|e| (id.clone(), e)));
        }
        Ok(all)
    }

    fn execute(&mut self, ctx: &mut Ctx, body: &CommandBody) -> Result<Receipt, ImError> {
        for file in self.files.expire_orphans(ctx.now_ms) {
            ctx.events.push(ImEvent::FileReleased { file });
        }
        self.social.expire(ctx.now_ms);
        match &body.op {
            Operation::Register { name } => return self.register(ctx.author, name, ctx.now_ms),
            // Replicas are not registered users; intake let only a replica
            // submit this, as itself.
            Operation::HoldFile { file } => return self.hold_file(ctx, *file),
            _ => {}
        }
        if !self.state.users.contains_key(&ctx.author) {
            return Err(ImError::NotRegistered);
        }
        match &body.op {
            Operation::Register { .. } | Operation::HoldFile { .. } => {
                unreachable!("handled above")
            }
            Operation::CreateRoom { name, visibility } => self.create_room(ctx, name, *visibility),
            Operation::Invite { room, user } => self.invite(ctx, room, *user),
            Operation::Join { room } => self.join(ctx, room),
            Operation::Leave { room } => self.leave(ctx, room),
            Operation::Kick { room, user } => self.kick(ctx, room, *user),
            Operation::Ban { room, user } => self.ban(ctx, room, *user),
            Operation::Unban { room, user } => self.unban(ctx, room, *user),
            Operation::SetRole { room, user, role } => self.set_role(ctx, room, *user, *role),
            Operation::Rename { room, title } => self.rename(ctx, room, title),
            Operation::SetTopic { room, topic } => self.set_topic(ctx, room, topic),
            Operation::Send { to, text } => self.send(ctx, body.command_id, to, text),
            Operation::Edit { room, seq, text } => self.edit(ctx, room, *seq, text),
            Operation::Delete { room, seq } => self.delete(ctx, room, *seq),
            Operation::React { room, seq, reaction, add } => {
                self.react(ctx, room, *seq, reaction, *add)
            }
            Operation::MarkRead { room, seq } => self.mark_read(ctx, room, *seq),
            Operation::SendFile { to, file, caption } => {
                self.send_file(ctx, body.command_id, to, file, caption)
            }
            Operation::RequestContact { user } => self.request_contact(ctx, *user),
            Operation::AcceptRequest { user } => self.accept_request(ctx, *user),
            Operation::DeclineRequest { user } => self.decline_request(ctx, *user),
            Operation::CancelRequest { user } => self.cancel_request(ctx, *user),
            Operation::RemoveContact { user } => self.remove_contact(ctx, *user),
            Operation::Block { user } => self.block(ctx, *user),
            Operation::Unblock { user } => self.unblock(ctx, *user),
            Operation::ShareReads { share } => self.share_reads(ctx, *share),
            Operation::DeclineInvite { room } => self.decline_invite(ctx, room),
        }
    }

    fn register(&mut self, user: UserId, name: &str, now_ms: u64) -> Result<Receipt, ImError> {
        validate_user_name(name)?;
        let key = name.to_lowercase();
        match self.state.names.get(&key) {
            Some(owner) if *owner != user => return Err(ImError::NameTaken(name.to_string())),
            _ => {}
        }
        if !self.state.users.contains_key(&user) && self.state.users.len() >= limits::USERS_MAX {
            return Err(ImError::LimitReached("registered users".into()));
        }
        // Last of the checks: a refused registration costs no token.
        self.rates.take(user, rates::RateKind::Registration, now_ms)?;
        if let Some(old) = self.state.users.get(&user) {
            let old_key = old.name.to_lowercase();
            self.state.names.remove(&old_key);
        }
        self.state.names.insert(key, user);
        self.state.users.insert(user, UserRecord { name: name.to_string() });
        Ok(Receipt::Registered { name: name.to_string() })
    }
}

fn validate_user_name(name: &str) -> Result<(), ImError> {
    if name.is_empty() || name.chars().count() > limits::USER_NAME_CHARS_MAX {
        return Err(ImError::InvalidName("names are 1 to 32 characters".into()));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) {
        return Err(ImError::InvalidName("names use only A-Z a-z 0-9 . - _".into()));
    }
    Ok(())
}

impl StateMachine for ImMachine {
    type Command = SignedCommand;
    type Response = ImResponse;
    type Query = ImQuery;
    type QueryResult = QueryResult;

    fn apply(&mut self, at: ApplyContext, command: SignedCommand) -> ImResponse {
        // Leaders' clocks differ; the replicated clock never runs backwards.
        self.state.clock_ms = self.state.clock_ms.max(at.stamp_ms);
        let now_ms = self.state.clock_ms;
        self.state.recent.expire(now_ms);
        let author = command.author;
        // The receiving node verified the signature before proposing.
        let Ok(body) = command.decode_body() else {
            return ImResponse {
                author,
                command_id: Uuid::nil(),
                result: Err(ImError::Malformed),
                duplicate: false,
                events: vec![],
            };
        };
        let command_id = body.command_id;
        let duplicate =
            |result| ImResponse { author, command_id, result, duplicate: true, events: vec![] };
        let dedupe = !bug_on!(self, skip_idempotency);
        let placed = match self.history.message_id(author, command_id) {
            Ok(placed) => placed.filter(|_| dedupe),
            Err(e) => {
                self.fail(e);
                None
            }
        };
        if let Some((room, seq)) = placed {
            return duplicate(Ok(Receipt::Appended { room, seq }));
        }
        if let Some(outcome) = self.state.recent.outcome(author, command_id).filter(|_| dedupe) {
            return duplicate(outcome.clone());
        }
        let fresh =
            |result| ImResponse { author, command_id, result, duplicate: false, events: vec![] };
        if !replay::in_window(body.issued_at_ms, now_ms) {
            return fresh(Err(ImError::Expired { issued_at_ms: body.issued_at_ms, now_ms }));
        }
        if !self.state.recent.has_room(author) {
            return fresh(Err(ImError::LimitReached(
                "commands per user in the replay window".into(),
            )));
        }
        let change = change_number(at.index.get(), at.position);
        let mut ctx = Ctx { author, change, now_ms, command, events: Vec::new() };
        let result = self.execute(&mut ctx, &body);
        // A message placed is found again by its id (above), however old:
        // the window need not hold it too, and most commands are messages.
        let placed_message = matches!(body.op, Operation::Send { .. } | Operation::SendFile { .. })
            && result.is_ok();
        if !placed_message {
            self.state.recent.remember(author, command_id, body.issued_at_ms, result.clone());
        }
        ImResponse { author, command_id, result, duplicate: false, events: ctx.events }
    }

    fn query(&self, query: &ImQuery) -> QueryResult {
        if bug_on!(self, show_blocked_requests) && query.kind == QueryKind::Contacts {
            let (nobody, store) = (std::collections::BTreeSet::new(), self.history.as_ref());
            let view =
                contacts::contacts_view(&self.state, &self.social, store, query.as_user, &nobody);
            return Ok(QueryReply::Contacts(
                view.map_err(|e| ImError::Unavailable(e.to_string()))?,
            ));
        }
        queries::answer(&self.state, &self.social, self.history.as_ref(), query)
    }

    fn snapshot(&mut self, at: LogIndex, meta: &[u8]) -> Bytes {
        self.local_snapshot(at, meta)
    }

    fn transfer_snapshot(&mut self) -> Option<Bytes> {
        self.history.is_durable().then(|| self.embedded_snapshot())
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<Restored, RestoreError> {
        self.restore_snapshot(snapshot)
    }

    fn snapshot_is_self_contained(&self) -> bool {
        !self.history.is_durable()
    }

    fn digest(&self) -> Digest {
        // The file references follow from the entries (in the history
        // sum); which replicas hold what does not.
        let summaries = postcard::to_allocvec(&(
            self.state.summary(),
            &self.files.holdings,
            &self.social,
            &self.rates,
        ))
        .expect("the state encodes");
        Digest(*blake3::hash(&summaries).as_bytes())
    }

    fn fault(&self) -> Option<&str> {
        self.fault.as_deref()
    }
}

#[cfg(test)]
mod tests;
