//! Contact commands, and where a direct message goes.
//!
//! A direct message between users who are not contacts is a **message
//! request**: the direct room opens to the sender only, and the recipient
//! sees who wrote and the first message in their requests, not in their
//! rooms, until they accept (or reply, which accepts). Until then the room
//! does not count toward the recipient's room limit, and the sender may
//! place at most [`crate::limits::REQUEST_MESSAGES_MAX`] messages in it. So no
//! number of strangers can fill a user's rooms.
//!
//! Blocking is private: a blocked user's commands succeed as they would
//! otherwise, and what they send waits where the blocker never looks.

use super::rates::RateKind;
use super::social::{Request, Social};
use super::state::ImState;
use super::{Ctx, ImMachine};
use crate::im::history::{HistoryError, HistoryStore};
use crate::im::identity::UserId;
use crate::im::protocol::{
    ContactsView, EntryKind, ImError, Page, Receipt, Relation, RequestInfo, RoomEntry, RoomId,
};
use std::collections::BTreeSet;

impl ImMachine {
    /// Where the author stands with `user`.
    fn relation(&self, author: UserId, user: UserId) -> Relation {
        let s = &self.social;
        if s.blocks(author, user) {
            Relation::Blocked
        } else if s.are_contacts(author, user) {
            Relation::Contact
        } else if s.request(author, user).is_some() {
            Relation::RequestSent
        } else if s.request(user, author).is_some_and(|r| !r.declined) {
            Relation::RequestReceived
        } else {
            Relation::None
        }
    }

    fn relation_receipt(&self, ctx: &Ctx, user: UserId) -> Receipt {
        Receipt::Relation { user, relation: self.relation(ctx.author, user) }
    }

    /// Checks that `user` is registered and not the author.
    fn other_user(&self, ctx: &Ctx, user: UserId) -> Result<(), ImError> {
        if user == ctx.author {
            return Err(ImError::Yourself);
        }
        self.require_registered(user)
    }

    pub(super) fn request_contact(
        &mut self,
        ctx: &mut Ctx,
        user: UserId,
    ) -> Result<Receipt, ImError> {
        self.other_user(ctx, user)?;
        if self.social.blocks(ctx.author, user) {
            return Err(ImError::YouBlock);
        }
        if self.social.request(user, ctx.author).is_some() {
            // They asked first: asking back accepts.
            return self.accept_request(ctx, user);
        }
        if !self.social.are_contacts(ctx.author, user)
            && self.social.request(ctx.author, user).is_none()
        {
            self.new_request(ctx, user)?;
        }
        Ok(self.relation_receipt(ctx, user))
    }

    pub(super) fn accept_request(
        &mut self,
        ctx: &mut Ctx,
        user: UserId,
    ) -> Result<Receipt, ImError> {
        self.other_user(ctx, user)?;
        if self.social.request(user, ctx.author).is_none() {
            return Err(ImError::NoSuchRequest);
        }
        let room = RoomId::direct(ctx.author, user);
        let waiting = self.is_member(&room, user) && !self.is_member(&room, ctx.author);
        // Every check before the first change: a refused command changes nothing.
        if waiting {
            self.require_room_slot(ctx.author)?;
        }
        self.social.add_contact(ctx.author, user)?;
        self.social.remove_request(user, ctx.author);
        // Any request of the author's own to them is answered too.
        self.social.remove_request(ctx.author, user);
        if waiting {
            self.enter_direct(ctx, &room, ctx.author)?;
        }
        Ok(self.relation_receipt(ctx, user))
    }

    pub(super) fn decline_request(
        &mut self,
        ctx: &mut Ctx,
        user: UserId,
    ) -> Result<Receipt, ImError> {
        self.other_user(ctx, user)?;
        if !self.social.decline(user, ctx.author) {
            return Err(ImError::NoSuchRequest);
        }
        Ok(self.relation_receipt(ctx, user))
    }

    pub(super) fn cancel_request(
        &mut self,
        ctx: &mut Ctx,
        user: UserId,
    ) -> Result<Receipt, ImError> {
        self.other_user(ctx, user)?;
        if self.social.remove_request(ctx.author, user).is_none() {
            return Err(ImError::NoSuchRequest);
        }
        Ok(self.relation_receipt(ctx, user))
    }

    pub(super) fn remove_contact(
        &mut self,
        ctx: &mut Ctx,
        user: UserId,
    ) -> Result<Receipt, ImError> {
        self.other_user(ctx, user)?;
        if !self.social.remove_contact(ctx.author, user) {
            return Err(ImError::NotContact);
        }
        Ok(self.relation_receipt(ctx, user))
    }

    pub(super) fn block(&mut self, ctx: &mut Ctx, user: UserId) -> Result<Receipt, ImError> {
        self.other_user(ctx, user)?;
        self.social.block(ctx.author, user)?;
        // A request to someone one blocks means nothing any more.
        self.social.remove_request(ctx.author, user);
        Ok(self.relation_receipt(ctx, user))
    }

    pub(super) fn unblock(&mut self, ctx: &mut Ctx, user: UserId) -> Result<Receipt, ImError> {
        self.other_user(ctx, user)?;
        self.social.unblock(ctx.author, user);
        Ok(self.relation_receipt(ctx, user))
    }

    pub(super) fn share_reads(&mut self, ctx: &mut Ctx, share: bool) -> Result<Receipt, ImError> {
        self.social.share_reads(ctx.author, share);
        Ok(Receipt::ReadsShared { share })
    }

    /// The direct room a message of the author to `other` goes to, opening
    /// it (to both contacts, or to the sender alone as a message request)
    /// when it is not open to both.
    pub(super) fn direct_room(&mut self, ctx: &mut Ctx, other: UserId) -> Result<RoomId, ImError> {
        self.require_registered(other)?;
        let me = ctx.author;
        let id = RoomId::direct(me, other);
        if self.is_member(&id, me) && self.is_member(&id, other) {
            return Ok(id);
        }
        if me == other {
            // Notes to oneself: a direct room of one.
            self.enter_direct(ctx, &id, me)?;
            return Ok(id);
        }
        if self.social.blocks(me, other) {
            return Err(ImError::YouBlock);
        }
        // Replying to a request accepts it (and a user who blocks the
        // author has no request waiting for them: blocking withdrew it).
        let accepting = self.social.request(other, me).is_some();
        let open =
            accepting || (self.social.are_contacts(me, other) && !self.social.blocks(other, me));
        let entering: Vec<UserId> = if open { vec![me, other] } else { vec![me] };
        let entering: Vec<UserId> =
            entering.into_iter().filter(|u| !self.is_member(&id, *u)).collect();
        // Every check before the first change: a refused message changes nothing.
        for user in &entering {
            self.require_room_slot(*user)?;
        }
        if accepting {
            self.accept_request(ctx, other)?;
        }
        if !open {
            self.request_messages(ctx, other)?;
        }
        for user in entering {
            self.enter_direct(ctx, &id, user)?;
        }
        if !open {
            // The message goes in next (the caller checked all else).
            let next = self.state.rooms.get(&id).map_or(1, |r| r.last_seq + 1);
            self.social.note_first(me, other, next);
        }
        Ok(id)
    }

    /// Counts one more message of the author's request to `other`, making
    /// the request if none waits.
    fn request_messages(&mut self, ctx: &Ctx, other: UserId) -> Result<(), ImError> {
        let me = ctx.author;
        if self.social.request(me, other).is_none() {
            self.new_request(ctx, other)?;
        }
        self.social.count_message(me, other)
    }

    /// A new request of the author to `user`, within the author's pending
    /// bound and request rate (checked in that order, so a refusal for the
    /// bound costs no token).
    fn new_request(&mut self, ctx: &Ctx, user: UserId) -> Result<(), ImError> {
        self.social.check_can_request(ctx.author)?;
        self.rates.take(ctx.author, RateKind::Request, ctx.now_ms)?;
        self.social.add_request(ctx.author, user, ctx.now_ms)?;
        Ok(())
    }

    /// Puts `user` into the direct room `id` (creating it), with a
    /// `Joined` entry, within their room limit.
    fn enter_direct(&mut self, ctx: &mut Ctx, id: &RoomId, user: UserId) -> Result<(), ImError> {
        if self.is_member(id, user) {
            return Ok(());
        }
        self.require_room_slot(user)?;
        let direct = || super::state::Room::new(String::new(), None);
        self.state.rooms.entry(id.clone()).or_insert_with(direct);
        self.admit(ctx, id, user);
        Ok(())
    }

    /// The author leaves a direct room: a request of theirs that waits in
    /// it is withdrawn too.
    pub(super) fn leave_direct(&mut self, ctx: &Ctx, room: &RoomId) {
        if let RoomId::Direct(a, b) = room {
            let other = if *a == ctx.author { *b } else { *a };
            if other != ctx.author {
                self.social.remove_request(ctx.author, other);
            }
        }
    }
}

/// `entry` as a reader who blocks `hidden` sees it: a message or file of
/// theirs becomes [`EntryKind::Hidden`].
pub(crate) fn hide_entry(hidden: &BTreeSet<UserId>, entry: &mut RoomEntry) {
    let content = matches!(entry.kind, EntryKind::Message(_) | EntryKind::File(_));
    if content && hidden.contains(&entry.author) {
        entry.kind = EntryKind::Hidden;
    }
}

/// A page as a reader who blocks `hidden` sees it.
pub(super) fn hide_blocked(hidden: &BTreeSet<UserId>, mut page: Page) -> Page {
    if !hidden.is_empty() {
        page.entries.iter_mut().for_each(|e| hide_entry(hidden, e));
    }
    page
}

/// `user`'s contacts, requests (but those of the senders in `hidden`: the
/// users it blocks, unless a bug switch says otherwise) and blocks.
pub(super) fn contacts_view(
    state: &ImState,
    social: &Social,
    store: &dyn HistoryStore,
    user: UserId,
    hidden: &BTreeSet<UserId>,
) -> Result<ContactsView, HistoryError> {
    let name = |u: &UserId| state.users.get(u).map_or_else(String::new, |r| r.name.clone());
    let named = |u: &UserId| (*u, name(u));
    let info = |other: UserId, r: &Request, first: Option<RoomEntry>| RequestInfo {
        user: other,
        name: name(&other),
        at_ms: r.at_ms,
        expires_at_ms: r.expires_at_ms,
        messages: r.messages,
        first,
    };
    let mut incoming = Vec::new();
    for (from, r) in social.requests_to(user) {
        if r.declined || hidden.contains(&from) {
            continue;
        }
        let first = first_message(store, from, user, r)?;
        incoming.push(info(from, r, first));
    }
    Ok(ContactsView {
        contacts: social.contacts_of(user).iter().map(named).collect(),
        incoming,
        outgoing: social.requests_from(user).map(|(to, r)| info(to, r, None)).collect(),
        blocked: social.blocked_by(user).iter().map(named).collect(),
    })
}

/// The first message of the waiting request of `from` to `to`.
fn first_message(
    store: &dyn HistoryStore,
    from: UserId,
    to: UserId,
    request: &Request,
) -> Result<Option<RoomEntry>, HistoryError> {
    match request.first_seq {
        Some(seq) => store.entry(&RoomId::direct(from, to), seq),
        None => Ok(None),
    }
}
