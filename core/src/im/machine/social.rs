//! Who may reach whom: contacts, pending requests and blocks, replicated
//! like the rooms (every change is a signed command applied at one index).
//!
//! Rules kept here, whatever the commands do:
//! - contacts are mutual: `a` lists `b` exactly when `b` lists `a`;
//! - a request `(from, to)` is pending at most once, appears in both
//!   indexes and in the expiry order, and never joins a user to itself;
//! - a sender has at most [`limits::REQUESTS_SENT_PENDING_MAX`] pending, a
//!   recipient at most [`limits::REQUESTS_RECEIVED_PENDING_MAX`] (the
//!   oldest lapses for a newer one, so no crowd of senders closes a door);
//! - blocks are one-way and private: nothing the blocked user can read
//!   changes when they are blocked.

use crate::im::identity::UserId;
use crate::im::protocol::{ImError, RoomId};
use crate::limits;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A pending contact or message request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Request {
    /// When it was made (replicated clock, ms).
    pub(crate) at_ms: u64,
    /// When it lapses.
    pub(crate) expires_at_ms: u64,
    /// Messages the sender placed in the direct room while it waits (0
    /// for a plain contact request).
    pub(crate) messages: u32,
    /// The sequence number of the first of them in the direct room.
    pub(crate) first_seq: Option<u64>,
    /// The recipient declined: it is gone from their list, while the
    /// sender, who is not told, sees it wait until it lapses.
    pub(crate) declined: bool,
}

/// Contacts, requests and blocks of every user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Social {
    contacts: BTreeMap<UserId, BTreeSet<UserId>>,
    /// Pending requests by `(from, to)`.
    requests: BTreeMap<(UserId, UserId), Request>,
    /// Recipient to the senders of its pending requests.
    incoming: BTreeMap<UserId, BTreeSet<UserId>>,
    /// Sender to the recipients of its pending requests.
    outgoing: BTreeMap<UserId, BTreeSet<UserId>>,
    /// `(expires_at_ms, from, to)` of every pending request.
    expiry: BTreeSet<(u64, UserId, UserId)>,
    /// Blocker to the users it blocks.
    blocks: BTreeMap<UserId, BTreeSet<UserId>>,
    /// Users who keep their read position to themselves.
    reads_private: BTreeSet<UserId>,
    /// Each invitee's pending invitations: room, and who invited (None for
    /// invitations from before this index was kept). Follows the rooms'
    /// `invited` sets exactly.
    invitations: BTreeMap<UserId, BTreeMap<RoomId, Option<UserId>>>,
}

/// No invitations at all.
static NO_INVITATIONS: BTreeMap<RoomId, Option<UserId>> = BTreeMap::new();

/// No users at all (what an empty index entry answers).
static NOBODY: BTreeSet<UserId> = BTreeSet::new();

impl Social {
    /// Whether `a` and `b` are contacts.
    pub(crate) fn are_contacts(&self, a: UserId, b: UserId) -> bool {
        self.contacts.get(&a).is_some_and(|c| c.contains(&b))
    }

    /// `user`'s contacts.
    pub(crate) fn contacts_of(&self, user: UserId) -> &BTreeSet<UserId> {
        self.contacts.get(&user).unwrap_or(&NOBODY)
    }

    /// Makes `a` and `b` contacts (both ways).
    pub(crate) fn add_contact(&mut self, a: UserId, b: UserId) -> Result<(), ImError> {
        assert_ne!(a, b, "a user is not their own contact");
        if self.are_contacts(a, b) {
            return Ok(());
        }
        for user in [a, b] {
            if self.contacts_of(user).len() >= limits::CONTACTS_PER_USER_MAX {
                return Err(ImError::LimitReached("contacts per user".into()));
            }
        }
        self.contacts.entry(a).or_default().insert(b);
        self.contacts.entry(b).or_default().insert(a);
        Ok(())
    }

    /// Ends the contact of `a` and `b`; whether there was one.
    pub(crate) fn remove_contact(&mut self, a: UserId, b: UserId) -> bool {
        let had = remove_from(&mut self.contacts, a, b);
        let mirrored = remove_from(&mut self.contacts, b, a);
        assert_eq!(had, mirrored, "contacts are mutual");
        had
    }

    /// Whether `blocker` blocks `user`.
    pub(crate) fn blocks(&self, blocker: UserId, user: UserId) -> bool {
        self.blocks.get(&blocker).is_some_and(|b| b.contains(&user))
    }

    /// The users `blocker` blocks.
    pub(crate) fn blocked_by(&self, blocker: UserId) -> &BTreeSet<UserId> {
        self.blocks.get(&blocker).unwrap_or(&NOBODY)
    }

    /// `blocker` blocks `user` from now on.
    pub(crate) fn block(&mut self, blocker: UserId, user: UserId) -> Result<(), ImError> {
        assert_ne!(blocker, user, "blocking oneself is refused before");
        let blocked = self.blocks.entry(blocker).or_default();
        if !blocked.contains(&user) && blocked.len() >= limits::BLOCKS_PER_USER_MAX {
            return Err(ImError::LimitReached("blocked users".into()));
        }
        blocked.insert(user);
        Ok(())
    }

    /// `blocker` no longer blocks `user`.
    pub(crate) fn unblock(&mut self, blocker: UserId, user: UserId) {
        remove_from(&mut self.blocks, blocker, user);
    }

    /// Whether `user` keeps their read position to themselves.
    pub(crate) fn reads_private(&self, user: UserId) -> bool {
        self.reads_private.contains(&user)
    }

    /// Whether `user` shares their read position.
    pub(crate) fn share_reads(&mut self, user: UserId, share: bool) {
        if share {
            self.reads_private.remove(&user);
        } else {
            self.reads_private.insert(user);
        }
    }

    /// `invitee` is invited to `room` by `by` (the latest inviter counts).
    pub(crate) fn invited(&mut self, invitee: UserId, room: &RoomId, by: Option<UserId>) {
        self.invitations.entry(invitee).or_default().insert(room.clone(), by);
    }

    /// `invitee`'s invitation to `room` is used up or withdrawn.
    pub(crate) fn uninvited(&mut self, invitee: UserId, room: &RoomId) {
        if let Some(rooms) = self.invitations.get_mut(&invitee) {
            rooms.remove(room);
            if rooms.is_empty() {
                self.invitations.remove(&invitee);
            }
        }
    }

    /// `invitee`'s pending invitations: room, and who invited.
    pub(crate) fn invitations_of(&self, invitee: UserId) -> &BTreeMap<RoomId, Option<UserId>> {
        self.invitations.get(&invitee).unwrap_or(&NO_INVITATIONS)
    }

    /// Rebuilds the invitation index from the rooms' invitations, for a
    /// state from before it was kept (the inviters are not known).
    pub(crate) fn index_invitations<'a>(
        &mut self,
        rooms: impl Iterator<Item = (&'a RoomId, &'a BTreeSet<UserId>)>,
    ) {
        self.invitations.clear();
        for (room, invitees) in rooms {
            for invitee in invitees {
                self.invited(*invitee, room, None);
            }
        }
    }

    /// The pending request of `from` to `to`.
    pub(crate) fn request(&self, from: UserId, to: UserId) -> Option<&Request> {
        self.requests.get(&(from, to))
    }

    /// Counts one more message placed while the request of `from` to `to`
    /// waits, refusing past [`limits::REQUEST_MESSAGES_MAX`].
    pub(crate) fn count_message(&mut self, from: UserId, to: UserId) -> Result<(), ImError> {
        let request = self.requests.get_mut(&(from, to)).expect("caller checked it is pending");
        if request.messages >= limits::REQUEST_MESSAGES_MAX {
            return Err(ImError::LimitReached("messages before the recipient accepts".into()));
        }
        request.messages += 1;
        Ok(())
    }

    /// The first message of the request of `from` to `to` is at `seq`
    /// (kept if one was noted before).
    pub(crate) fn note_first(&mut self, from: UserId, to: UserId, seq: u64) {
        if let Some(request) = self.requests.get_mut(&(from, to)) {
            request.first_seq.get_or_insert(seq);
        }
    }

    /// Refuses when `from` has as many requests pending as it may.
    pub(crate) fn check_can_request(&self, from: UserId) -> Result<(), ImError> {
        if self.outgoing.get(&from).map_or(0, BTreeSet::len) >= limits::REQUESTS_SENT_PENDING_MAX {
            return Err(ImError::LimitReached("pending requests sent".into()));
        }
        Ok(())
    }

    /// A new request of `from` to `to` at `now_ms`. Returns the request
    /// that lapsed to make room in `to`'s list, if one did.
    pub(crate) fn add_request(
        &mut self,
        from: UserId,
        to: UserId,
        now_ms: u64,
    ) -> Result<Option<(UserId, UserId)>, ImError> {
        assert_ne!(from, to, "a request to oneself is refused before");
        assert!(self.request(from, to).is_none(), "caller checked none is pending");
        self.check_can_request(from)?;
        let received = self.incoming.get(&to).map_or(&NOBODY, |s| s);
        let lapsed = (received.len() >= limits::REQUESTS_RECEIVED_PENDING_MAX)
            .then(|| {
                received
                    .iter()
                    .map(|sender| (self.requests[&(*sender, to)].at_ms, *sender))
                    .min()
                    .map(|(_, sender)| (sender, to))
            })
            .flatten();
        if let Some((sender, recipient)) = lapsed {
            self.remove_request(sender, recipient);
        }
        let expires_at_ms = now_ms.saturating_add(limits::REQUEST_TTL_MS);
        let request =
            Request { at_ms: now_ms, expires_at_ms, messages: 0, first_seq: None, declined: false };
        self.requests.insert((from, to), request);
        self.incoming.entry(to).or_default().insert(from);
        self.outgoing.entry(from).or_default().insert(to);
        self.expiry.insert((expires_at_ms, from, to));
        Ok(lapsed)
    }

    /// The recipient declined the request of `from` to `to`; whether one
    /// was pending and not declined yet.
    pub(crate) fn decline(&mut self, from: UserId, to: UserId) -> bool {
        match self.requests.get_mut(&(from, to)) {
            Some(r) if !r.declined => {
                r.declined = true;
                true
            }
            _ => false,
        }
    }

    /// Removes the request of `from` to `to`, if pending.
    pub(crate) fn remove_request(&mut self, from: UserId, to: UserId) -> Option<Request> {
        let request = self.requests.remove(&(from, to))?;
        remove_from(&mut self.incoming, to, from);
        remove_from(&mut self.outgoing, from, to);
        self.expiry.remove(&(request.expires_at_ms, from, to));
        Some(request)
    }

    /// Removes requests that lapsed by `now_ms`, at most
    /// [`limits::REQUESTS_EXPIRED_PER_COMMAND_MAX`] of them.
    pub(crate) fn expire(&mut self, now_ms: u64) {
        for _ in 0..limits::REQUESTS_EXPIRED_PER_COMMAND_MAX {
            match self.expiry.first() {
                Some(&(at_ms, from, to)) if at_ms <= now_ms => {
                    self.remove_request(from, to);
                }
                _ => return,
            }
        }
    }

    /// Requests pending to `to`, as `(from, request)`, senders in id order.
    pub(crate) fn requests_to(&self, to: UserId) -> impl Iterator<Item = (UserId, &Request)> {
        let senders = self.incoming.get(&to).unwrap_or(&NOBODY);
        senders.iter().map(move |from| (*from, &self.requests[&(*from, to)]))
    }

    /// Requests `from` has pending, as `(to, request)`, recipients in id order.
    pub(crate) fn requests_from(&self, from: UserId) -> impl Iterator<Item = (UserId, &Request)> {
        let recipients = self.outgoing.get(&from).unwrap_or(&NOBODY);
        recipients.iter().map(move |to| (*to, &self.requests[&(from, *to)]))
    }
}

/// Removes `value` from `map[key]` (dropping an emptied set); whether it
/// was there.
fn remove_from(map: &mut BTreeMap<UserId, BTreeSet<UserId>>, key: UserId, value: UserId) -> bool {
    let Some(set) = map.get_mut(&key) else { return false };
    let had = set.remove(&value);
    if set.is_empty() {
        map.remove(&key);
    }
    had
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u8) -> UserId {
        UserId([n; 32])
    }

    fn numbered(n: u64) -> UserId {
        let mut key = [0; 32];
        key[..8].copy_from_slice(&n.to_be_bytes());
        UserId(key)
    }

    /// Checks the rules of the module documentation.
    fn check(s: &Social) {
        for (a, set) in &s.contacts {
            assert!(!set.is_empty());
            for b in set {
                assert!(s.are_contacts(*b, *a), "contacts are mutual");
            }
        }
        assert_eq!(s.requests.len(), s.expiry.len());
        for ((from, to), r) in &s.requests {
            assert_ne!(from, to);
            assert!(s.incoming[to].contains(from) && s.outgoing[from].contains(to));
            assert!(s.expiry.contains(&(r.expires_at_ms, *from, *to)));
        }
        let indexed: usize = s.incoming.values().map(BTreeSet::len).sum();
        assert_eq!(indexed, s.requests.len());
        assert!(s.outgoing.values().all(|o| o.len() <= limits::REQUESTS_SENT_PENDING_MAX));
        assert!(s.incoming.values().all(|i| i.len() <= limits::REQUESTS_RECEIVED_PENDING_MAX));
    }

    #[test]
    fn contacts_are_mutual_and_bounded() {
        let mut s = Social::default();
        s.add_contact(user(1), user(2)).unwrap();
        assert!(s.are_contacts(user(2), user(1)));
        check(&s);
        assert!(s.remove_contact(user(2), user(1)));
        assert!(!s.remove_contact(user(1), user(2)));
        assert!(s.contacts.is_empty());
        for n in 0..limits::CONTACTS_PER_USER_MAX {
            let other = numbered(n as u64 + 10);
            s.add_contact(user(1), other).unwrap();
        }
        assert!(matches!(s.add_contact(user(2), user(1)), Err(ImError::LimitReached(_))));
        check(&s);
    }

    #[test]
    fn a_sender_has_few_requests_pending_and_a_crowd_only_pushes_out_the_oldest() {
        let mut s = Social::default();
        let to = user(1);
        for n in 0..limits::REQUESTS_SENT_PENDING_MAX {
            s.add_request(user(2), numbered(n as u64 + 10), 5).unwrap();
        }
        let refused = s.add_request(user(2), to, 5);
        assert!(matches!(refused, Err(ImError::LimitReached(_))));
        // A crowd of senders: each new request past the bound pushes out
        // the oldest, and the newest always lands.
        for n in 0..limits::REQUESTS_RECEIVED_PENDING_MAX + 3 {
            let from = numbered(n as u64 + 100_000);
            let lapsed = s.add_request(from, to, 10 + n as u64).unwrap();
            let crowded = n >= limits::REQUESTS_RECEIVED_PENDING_MAX;
            assert_eq!(lapsed.is_some(), crowded);
            if let Some((oldest, _)) = lapsed {
                let first = n - limits::REQUESTS_RECEIVED_PENDING_MAX;
                assert_eq!(oldest, numbered(first as u64 + 100_000));
            }
            assert!(s.request(from, to).is_some());
        }
        check(&s);
    }

    #[test]
    fn requests_lapse_in_order_a_few_per_command() {
        let mut s = Social::default();
        for n in 0..40u64 {
            s.add_request(numbered(n + 10), user(1), n).unwrap();
        }
        s.expire(limits::REQUEST_TTL_MS + 39);
        assert_eq!(s.requests.len(), 40 - limits::REQUESTS_EXPIRED_PER_COMMAND_MAX);
        assert!(s.request(numbered(10), user(1)).is_none());
        s.expire(limits::REQUEST_TTL_MS + 39);
        s.expire(limits::REQUEST_TTL_MS + 39);
        assert!(s.requests.is_empty());
        check(&s);
    }

    #[test]
    fn a_declined_request_waits_for_its_sender_and_is_declined_once() {
        let mut s = Social::default();
        s.add_request(user(2), user(1), 0).unwrap();
        assert!(s.decline(user(2), user(1)));
        assert!(!s.decline(user(2), user(1)));
        assert!(s.request(user(2), user(1)).is_some_and(|r| r.declined));
        assert_eq!(s.requests_from(user(2)).count(), 1);
        assert!(s.remove_request(user(2), user(1)).is_some());
        check(&s);
    }

    #[test]
    fn messages_while_a_request_waits_are_bounded() {
        let mut s = Social::default();
        s.add_request(user(2), user(1), 0).unwrap();
        for _ in 0..limits::REQUEST_MESSAGES_MAX {
            s.count_message(user(2), user(1)).unwrap();
        }
        assert!(matches!(s.count_message(user(2), user(1)), Err(ImError::LimitReached(_))));
    }

    #[test]
    fn blocks_are_one_way_bounded_and_undone() {
        let mut s = Social::default();
        s.block(user(1), user(2)).unwrap();
        assert!(s.blocks(user(1), user(2)) && !s.blocks(user(2), user(1)));
        s.unblock(user(1), user(2));
        assert!(s.blocks.is_empty());
    }
}
