//! The reference model of contacts, requests, blocks and direct rooms:
//! the rules of `im::machine::contacts`, written out plainly over small
//! sets.

use super::ModelRoom;
use crate::im::protocol::{ImError, Relation, Role};
use crate::limits;
use std::collections::{BTreeMap, BTreeSet};

/// What a contact command does (`Op::Contact`'s `act`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, arbitrary::Arbitrary)]
pub enum Act {
    /// `RequestContact`.
    Request,
    /// `AcceptRequest`.
    Accept,
    /// `DeclineRequest`.
    Decline,
    /// `CancelRequest`.
    Cancel,
    /// `RemoveContact`.
    Remove,
    /// `Block`.
    Block,
    /// `Unblock`.
    Unblock,
}

impl Act {
    /// Every act, in order.
    pub const ALL: [Act; 7] = [
        Act::Request,
        Act::Accept,
        Act::Decline,
        Act::Cancel,
        Act::Remove,
        Act::Block,
        Act::Unblock,
    ];
}

#[derive(Debug, Default)]
struct ModelRequest {
    messages: u32,
    declined: bool,
}

/// Contacts, requests, blocks and the direct rooms, by user index.
#[derive(Debug, Default)]
pub(super) struct Social {
    contacts: BTreeSet<(usize, usize)>,
    requests: BTreeMap<(usize, usize), ModelRequest>,
    blocks: BTreeSet<(usize, usize)>,
    /// Direct rooms by (lower, higher) user index.
    pub(super) rooms: BTreeMap<(usize, usize), ModelRoom>,
    /// New requests each user made (a model run is too short for the
    /// request rate to earn a token back).
    made: BTreeMap<usize, u32>,
}

fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

/// A model result: a relation as a number (receipts are compared as
/// numbers in the model test).
fn code(relation: Relation) -> Option<u64> {
    Some(100 + relation as u64)
}

impl Social {
    pub(super) fn blocks(&self, blocker: usize, user: usize) -> bool {
        self.blocks.contains(&(blocker, user))
    }

    fn are_contacts(&self, a: usize, b: usize) -> bool {
        self.contacts.contains(&pair(a, b))
    }

    fn relation(&self, u: usize, t: usize) -> Relation {
        if self.blocks(u, t) {
            Relation::Blocked
        } else if self.are_contacts(u, t) {
            Relation::Contact
        } else if self.requests.contains_key(&(u, t)) {
            Relation::RequestSent
        } else if self.requests.get(&(t, u)).is_some_and(|r| !r.declined) {
            Relation::RequestReceived
        } else {
            Relation::None
        }
    }

    fn member(&self, u: usize, t: usize, who: usize) -> bool {
        self.rooms.get(&pair(u, t)).is_some_and(|r| r.members.contains_key(&who))
    }

    /// `who` joins the direct room of `u` and `t`; `author` wrote the entry.
    fn enter(&mut self, u: usize, t: usize, who: usize, author: usize) {
        let room = self.rooms.entry(pair(u, t)).or_default();
        if room.members.contains_key(&who) {
            return;
        }
        room.departed.remove(&who);
        room.members.insert(who, Role::Member);
        room.private = true;
        room.log.push(author);
    }

    /// A new request of `u` to `t`, within `u`'s request rate.
    fn new_request(&mut self, u: usize, t: usize) -> Result<(), ImError> {
        let made = self.made.entry(u).or_default();
        if *made >= limits::REQUEST_RATE.burst {
            let what = "new requests".into();
            return Err(ImError::RateLimited { what, retry_after_ms: 0 });
        }
        *made += 1;
        self.requests.insert((u, t), ModelRequest::default());
        Ok(())
    }

    fn accept(&mut self, u: usize, t: usize) {
        self.contacts.insert(pair(u, t));
        self.requests.remove(&(t, u));
        self.requests.remove(&(u, t));
        if self.member(u, t, t) && !self.member(u, t, u) {
            self.enter(u, t, u, u);
        }
    }

    /// A contact command of `u` about `t`.
    pub(super) fn act(&mut self, u: usize, t: usize, act: Act) -> Result<Option<u64>, ImError> {
        if u == t {
            return Err(ImError::Yourself);
        }
        match act {
            Act::Request => {
                if self.blocks(u, t) {
                    return Err(ImError::YouBlock);
                }
                if self.requests.contains_key(&(t, u)) {
                    self.accept(u, t);
                } else if !self.are_contacts(u, t) && !self.requests.contains_key(&(u, t)) {
                    self.new_request(u, t)?;
                }
            }
            Act::Accept => {
                if !self.requests.contains_key(&(t, u)) {
                    return Err(ImError::NoSuchRequest);
                }
                self.accept(u, t);
            }
            Act::Decline => match self.requests.get_mut(&(t, u)) {
                Some(r) if !r.declined => r.declined = true,
                _ => return Err(ImError::NoSuchRequest),
            },
            Act::Cancel => {
                self.requests.remove(&(u, t)).ok_or(ImError::NoSuchRequest)?;
            }
            Act::Remove => {
                if !self.contacts.remove(&pair(u, t)) {
                    return Err(ImError::NotContact);
                }
            }
            Act::Block => {
                self.blocks.insert((u, t));
                self.requests.remove(&(u, t));
            }
            Act::Unblock => {
                self.blocks.remove(&(u, t));
            }
        }
        Ok(code(self.relation(u, t)))
    }

    /// A direct message of `u` to `t`.
    pub(super) fn send(&mut self, u: usize, t: usize) -> Result<Option<u64>, ImError> {
        let both = self.member(u, t, u) && self.member(u, t, t);
        if !both && u == t {
            self.enter(u, t, u, u);
        } else if !both {
            if self.blocks(u, t) {
                return Err(ImError::YouBlock);
            }
            if self.requests.contains_key(&(t, u)) {
                self.accept(u, t);
            }
            let open = self.are_contacts(u, t) && !self.blocks(t, u);
            if !open {
                if !self.requests.contains_key(&(u, t)) {
                    self.new_request(u, t)?;
                }
                let request = self.requests.get_mut(&(u, t)).expect("made above");
                if request.messages >= limits::REQUEST_MESSAGES_MAX {
                    return Err(ImError::LimitReached(
                        "messages before the recipient accepts".into(),
                    ));
                }
                request.messages += 1;
            }
            self.enter(u, t, u, u);
            if open {
                self.enter(u, t, t, u);
            }
        }
        let room = self.rooms.get_mut(&pair(u, t)).expect("entered above");
        let seq = room.log.len() as u64 + 1;
        room.log.push(u);
        let cursor = room.read.entry(u).or_default();
        *cursor = (*cursor).max(seq);
        Ok(Some(seq))
    }

    /// `u` leaves the direct room with `t`.
    pub(super) fn leave(&mut self, u: usize, t: usize) -> Result<Option<u64>, ImError> {
        let room = self.rooms.get_mut(&pair(u, t)).ok_or(ImError::NoSuchRoom)?;
        room.member(u)?;
        room.log.push(u);
        let seq = room.log.len() as u64;
        room.remove(u);
        if u != t {
            self.requests.remove(&(u, t));
        }
        Ok(Some(seq))
    }

    /// What `u`'s contacts query must list: contacts, senders of requests
    /// shown to `u`, recipients of `u`'s requests, users `u` blocks.
    pub(super) fn view(&self, u: usize) -> [Vec<usize>; 4] {
        let others = |f: &dyn Fn(usize) -> bool| (0..super::USERS).filter(|t| f(*t)).collect();
        [
            others(&|t| t != u && self.are_contacts(u, t)),
            others(&|t| {
                self.requests.get(&(t, u)).is_some_and(|r| !r.declined) && !self.blocks(u, t)
            }),
            others(&|t| self.requests.contains_key(&(u, t))),
            others(&|t| self.blocks(u, t)),
        ]
    }
}
