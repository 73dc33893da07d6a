//! The IM reference model: a small, obviously correct implementation of
//! the room rules, run side by side with the real state machine. Used by
//! the model-based property test (`core/tests/im_model.rs`) and by the
//! `im_apply` fuzz target; both feed it command sequences.

use crate::ids::{LogIndex, Term};
use crate::im::identity::{Identity, UserId};
use crate::im::protocol::*;
use crate::im::ImMachine;
use crate::state_machine::{ApplyContext, StateMachine};
use crate::testing::sim_history::SimHistory;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

mod direct;

pub use direct::Act;

/// Users in the model.
pub const USERS: usize = 3;
/// Room names in the model.
pub const ROOMS: [&str; 2] = ["a", "b"];

/// One command of a model run (user, room and target are indexes).
#[derive(Clone, Debug, arbitrary::Arbitrary)]
#[allow(missing_docs)]
pub enum Op {
    /// Snapshot the machine and carry on with a copy restored from it.
    Checkpoint,
    Create {
        u: usize,
        r: usize,
        private: bool,
    },
    Join {
        u: usize,
        r: usize,
    },
    Leave {
        u: usize,
        r: usize,
    },
    Invite {
        u: usize,
        r: usize,
        t: usize,
    },
    Kick {
        u: usize,
        r: usize,
        t: usize,
    },
    SetRole {
        u: usize,
        r: usize,
        t: usize,
        role: u8,
    },
    Send {
        u: usize,
        r: usize,
    },
    MarkRead {
        u: usize,
        r: usize,
        seq: u64,
    },
    /// A direct message of `u` to `t`.
    Dm {
        u: usize,
        t: usize,
    },
    /// A contact command of `u` about `t`.
    Contact {
        u: usize,
        t: usize,
        act: Act,
    },
    /// `u` leaves the direct room with `t`.
    LeaveDm {
        u: usize,
        t: usize,
    },
    /// `u` turns down an invitation to room `r`.
    DeclineInvite {
        u: usize,
        r: usize,
    },
}

fn role_of(n: u8) -> Role {
    [Role::Member, Role::Admin, Role::Owner][n as usize]
}

/// The reference: each room is a list of (author, what happened).
#[derive(Default, Debug)]
struct ModelRoom {
    private: bool,
    members: BTreeMap<usize, Role>,
    invited: BTreeSet<usize>,
    /// Who invited each invitee last.
    inviter: BTreeMap<usize, usize>,
    departed: BTreeMap<usize, u64>,
    log: Vec<usize>,
    read: BTreeMap<usize, u64>,
}

impl ModelRoom {
    fn readable(&self, u: usize) -> Option<u64> {
        if self.members.contains_key(&u) || !self.private {
            return Some(self.log.len() as u64);
        }
        self.departed.get(&u).copied()
    }
    fn push(&mut self, author: usize) -> Result<Option<u64>, ImError> {
        self.log.push(author);
        Ok(Some(self.log.len() as u64))
    }
    fn remove(&mut self, u: usize) {
        self.members.remove(&u);
        self.departed.insert(u, self.log.len() as u64);
    }
    fn other_owner(&self, u: usize) -> bool {
        self.members.iter().any(|(m, r)| *m != u && *r == Role::Owner)
    }
    fn member(&self, u: usize) -> Result<Role, ImError> {
        self.members.get(&u).copied().ok_or(ImError::NotMember)
    }
    fn require(&self, u: usize, needed: Role) -> Result<Role, ImError> {
        let r = self.member(u)?;
        if r < needed {
            return Err(ImError::Forbidden { needed });
        }
        Ok(r)
    }
}

#[derive(Default)]
struct Model {
    rooms: BTreeMap<usize, ModelRoom>,
    social: direct::Social,
}

impl Model {
    fn apply(&mut self, op: &Op) -> Result<Option<u64>, ImError> {
        match *op {
            Op::Dm { u, t } => return self.social.send(u, t),
            Op::Contact { u, t, act } => return self.social.act(u, t, act),
            Op::LeaveDm { u, t } => return self.social.leave(u, t),
            _ => {}
        }
        if let Op::Create { u, r, private } = *op {
            if self.rooms.contains_key(&r) {
                return Err(ImError::RoomExists(ROOMS[r].into()));
            }
            let mut room = ModelRoom { private, ..ModelRoom::default() };
            room.members.insert(u, Role::Owner);
            let res = room.push(u);
            self.rooms.insert(r, room);
            return res;
        }
        let r = match *op {
            Op::Join { r, .. }
            | Op::Leave { r, .. }
            | Op::Invite { r, .. }
            | Op::Kick { r, .. }
            | Op::DeclineInvite { r, .. } => r,
            Op::SetRole { r, .. } | Op::Send { r, .. } | Op::MarkRead { r, .. } => r,
            Op::Create { .. } | Op::Checkpoint => unreachable!("handled before"),
            Op::Dm { .. } | Op::Contact { .. } | Op::LeaveDm { .. } => {
                unreachable!("handled before")
            }
        };
        let room = self.rooms.get_mut(&r).ok_or(ImError::NoSuchRoom)?;
        match *op {
            Op::Create { .. } | Op::Checkpoint => unreachable!("handled before"),
            Op::Dm { .. } | Op::Contact { .. } | Op::LeaveDm { .. } => {
                unreachable!("handled before")
            }
            Op::DeclineInvite { u, .. } => {
                if !room.invited.remove(&u) {
                    return Err(ImError::NotInvited);
                }
                room.inviter.remove(&u);
                Ok(None)
            }
            Op::Join { u, .. } => {
                if room.members.contains_key(&u) {
                    return Err(ImError::AlreadyMember);
                }
                if room.private && !room.invited.contains(&u) {
                    return Err(ImError::NotInvited);
                }
                room.invited.remove(&u);
                room.inviter.remove(&u);
                room.departed.remove(&u);
                room.members.insert(u, Role::Member);
                room.push(u)
            }
            Op::Leave { u, .. } => {
                let role = room.member(u)?;
                if role == Role::Owner && !room.other_owner(u) && room.members.len() > 1 {
                    return Err(ImError::LastOwner);
                }
                let res = room.push(u);
                room.remove(u);
                res
            }
            Op::Invite { u, t, .. } => {
                room.require(u, if room.private { Role::Admin } else { Role::Member })?;
                if room.members.contains_key(&t) {
                    return Err(ImError::AlreadyMember);
                }
                room.invited.insert(t);
                room.inviter.insert(t, u);
                room.push(u)
            }
            Op::Kick { u, t, .. } => {
                let mine = room.require(u, Role::Admin)?;
                if room.member(t)? >= mine {
                    return Err(ImError::Forbidden { needed: Role::Owner });
                }
                let res = room.push(u);
                room.remove(t);
                res
            }
            Op::SetRole { u, t, role, .. } => {
                let role = role_of(role);
                let current = room.member(t)?;
                let needed = if role == Role::Owner || current == Role::Owner {
                    Role::Owner
                } else {
                    Role::Admin
                };
                room.require(u, needed)?;
                if current == Role::Owner && role < Role::Owner && !room.other_owner(t) {
                    return Err(ImError::LastOwner);
                }
                room.members.insert(t, role);
                room.push(u)
            }
            Op::Send { u, .. } => {
                room.member(u)?;
                let seq = room.push(u)?;
                // Sending reads the room up to one's own message.
                if let Some(seq) = seq {
                    let c = room.read.entry(u).or_default();
                    *c = (*c).max(seq);
                }
                Ok(seq)
            }
            Op::MarkRead { u, seq, .. } => {
                let limit = room.readable(u).ok_or(ImError::NotMember)?;
                if seq > limit {
                    return Err(ImError::BadCursor);
                }
                let c = room.read.entry(u).or_default();
                *c = (*c).max(seq);
                Ok(Some(*c))
            }
        }
    }
}

fn operation(op: &Op, users: &[Identity]) -> (usize, Operation) {
    let room = |r: usize| RoomId::Group(ROOMS[r].into());
    match *op {
        Op::Create { u, r, private } => {
            let visibility = if private { Visibility::Private } else { Visibility::Public };
            (u, Operation::CreateRoom { name: ROOMS[r].into(), visibility })
        }
        Op::Join { u, r } => (u, Operation::Join { room: room(r) }),
        Op::Leave { u, r } => (u, Operation::Leave { room: room(r) }),
        Op::Invite { u, r, t } => (u, Operation::Invite { room: room(r), user: users[t].user() }),
        Op::Kick { u, r, t } => (u, Operation::Kick { room: room(r), user: users[t].user() }),
        Op::SetRole { u, r, t, role } => {
            (u, Operation::SetRole { room: room(r), user: users[t].user(), role: role_of(role) })
        }
        Op::Send { u, r } => (u, Operation::Send { to: Target::Room(room(r)), text: "hi".into() }),
        Op::MarkRead { u, r, seq } => (u, Operation::MarkRead { room: room(r), seq }),
        Op::Dm { u, t } => {
            (u, Operation::Send { to: Target::User(users[t].user()), text: "hi".into() })
        }
        Op::Contact { u, t, act } => {
            let user = users[t].user();
            let op = match act {
                Act::Request => Operation::RequestContact { user },
                Act::Accept => Operation::AcceptRequest { user },
                Act::Decline => Operation::DeclineRequest { user },
                Act::Cancel => Operation::CancelRequest { user },
                Act::Remove => Operation::RemoveContact { user },
                Act::Block => Operation::Block { user },
                Act::Unblock => Operation::Unblock { user },
            };
            (u, op)
        }
        Op::LeaveDm { u, t } => {
            (u, Operation::Leave { room: RoomId::direct(users[u].user(), users[t].user()) })
        }
        Op::DeclineInvite { u, r } => (u, Operation::DeclineInvite { room: room(r) }),
        Op::Checkpoint => unreachable!("check() handles checkpoints itself"),
    }
}

impl Op {
    /// The op with every field brought into the model's ranges (for ops
    /// that `arbitrary` built from unconstrained numbers).
    pub fn normalized(&self) -> Op {
        let (u_of, r_of) = (|u: usize| u % USERS, |r: usize| r % ROOMS.len());
        match *self {
            Op::Checkpoint => Op::Checkpoint,
            Op::Create { u, r, private } => Op::Create { u: u_of(u), r: r_of(r), private },
            Op::Join { u, r } => Op::Join { u: u_of(u), r: r_of(r) },
            Op::Leave { u, r } => Op::Leave { u: u_of(u), r: r_of(r) },
            Op::Invite { u, r, t } => Op::Invite { u: u_of(u), r: r_of(r), t: u_of(t) },
            Op::Kick { u, r, t } => Op::Kick { u: u_of(u), r: r_of(r), t: u_of(t) },
            Op::SetRole { u, r, t, role } => {
                Op::SetRole { u: u_of(u), r: r_of(r), t: u_of(t), role: role % 3 }
            }
            Op::Send { u, r } => Op::Send { u: u_of(u), r: r_of(r) },
            Op::MarkRead { u, r, seq } => Op::MarkRead { u: u_of(u), r: r_of(r), seq: seq % 12 },
            Op::Dm { u, t } => Op::Dm { u: u_of(u), t: u_of(t) },
            Op::Contact { u, t, act } => Op::Contact { u: u_of(u), t: u_of(t), act },
            Op::LeaveDm { u, t } => Op::LeaveDm { u: u_of(u), t: u_of(t) },
            Op::DeclineInvite { u, r } => Op::DeclineInvite { u: u_of(u), r: r_of(r) },
        }
    }

    /// Decodes a sequence of ops from fuzz input (3 bytes each).
    pub fn decode_all(data: &[u8]) -> Vec<Op> {
        data.chunks_exact(3)
            .map(|c| {
                let (u, r, x) = (c[0] as usize % USERS, c[1] as usize % ROOMS.len(), c[2]);
                let t = x as usize % USERS;
                let act = Act::ALL[c[1] as usize / ROOMS.len() % Act::ALL.len()];
                match c[0] / USERS as u8 % 13 {
                    0 => Op::Create { u, r, private: x % 2 == 1 },
                    1 => Op::Join { u, r },
                    2 => Op::Leave { u, r },
                    3 => Op::Invite { u, r, t },
                    4 => Op::Kick { u, r, t },
                    5 => Op::SetRole { u, r, t, role: x % 3 },
                    6 => Op::Send { u, r },
                    7 => Op::MarkRead { u, r, seq: u64::from(x % 12) },
                    8 => Op::Dm { u, t },
                    9 => Op::Contact { u, t, act },
                    10 => Op::LeaveDm { u, t },
                    11 => Op::DeclineInvite { u, r },
                    _ => Op::Checkpoint,
                }
            })
            .collect()
    }
}

/// Runs `ops` against the machine and the model; panics on any
/// disagreement in results or in what any user can read. Also checks that
/// a snapshot taken at the end restores to an equal digest.
pub fn check(ops: &[Op]) {
    let users: Vec<Identity> =
        (0..USERS).map(|i| Identity::from_secret([i as u8 + 1; 32])).collect();
    let mut machine = ImMachine::default();
    let mut model = Model::default();
    let mut index = 0u64;
    let mut apply = |machine: &mut ImMachine, who: &Identity, op: Operation| {
        index += 1;
        let body = CommandBody {
            version: IM_PROTOCOL_VERSION,
            command_id: Uuid::from_u128(index.into()),
            issued_at_ms: index,
            op,
        };
        let at =
            ApplyContext { index: LogIndex(index), term: Term(1), position: 0, stamp_ms: index };
        machine.apply(at, SignedCommand::sign(who, &body)).result
    };
    for (i, u) in users.iter().enumerate() {
        let registered = apply(&mut machine, u, Operation::Register { name: format!("u{i}") });
        assert!(registered.is_ok());
    }
    let mut checkpoints = 0u64;
    for op in ops {
        if let Op::Checkpoint = op {
            // Go on with a restored copy, alternately over a volatile and a
            // durable history store.
            checkpoints += 1;
            let (volatile, durable) = round_trip(&mut machine, LogIndex(checkpoints));
            machine = if checkpoints.is_multiple_of(2) { volatile } else { durable };
            continue;
        }
        let (u, operation) = operation(op, &users);
        // How long a rate-limited command must wait depends on the clock,
        // which the model leaves out.
        let unclocked = |e| match e {
            ImError::RateLimited { what, .. } => ImError::RateLimited { what, retry_after_ms: 0 },
            other => other,
        };
        let got = apply(&mut machine, &users[u], operation).map_err(unclocked).map(|r| match r {
            Receipt::Appended { seq, .. }
            | Receipt::ReadUpTo { seq, .. }
            | Receipt::Updated { seq, .. } => Some(seq),
            Receipt::Relation { relation, .. } => Some(100 + relation as u64),
            Receipt::Registered { .. }
            | Receipt::Held { .. }
            | Receipt::ReadsShared { .. }
            | Receipt::InviteDeclined { .. } => None,
        });
        assert_eq!(got, model.apply(op), "op {:?}", op);
    }
    // Every user sees exactly the model's visible prefix of every room.
    let mut all_rooms: Vec<(RoomId, Option<&ModelRoom>)> = ROOMS
        .iter()
        .enumerate()
        .map(|(r, name)| (RoomId::Group((*name).into()), model.rooms.get(&r)))
        .collect();
    for a in 0..USERS {
        for b in a..USERS {
            let id = RoomId::direct(users[a].user(), users[b].user());
            all_rooms.push((id, model.social.rooms.get(&(a, b))));
        }
    }
    for (room, want) in all_rooms {
        for u in 0..USERS {
            check_visible(&machine, &model, &users, u, &room, want);
        }
    }
    for (u, user) in users.iter().enumerate() {
        let Ok(QueryReply::Contacts(view)) =
            machine.query(&ImQuery { as_user: user.user(), kind: QueryKind::Contacts })
        else {
            panic!("a contacts query is answered")
        };
        let index = |id: &UserId| users.iter().position(|x| x.user() == *id).expect("a model user");
        let got = [
            view.contacts.iter().map(|(id, _)| index(id)).collect::<Vec<_>>(),
            view.incoming.iter().map(|r| index(&r.user)).collect(),
            view.outgoing.iter().map(|r| index(&r.user)).collect(),
            view.blocked.iter().map(|(id, _)| index(id)).collect(),
        ];
        let Ok(QueryReply::Invites(invites)) =
            machine.query(&ImQuery { as_user: user.user(), kind: QueryKind::Invites })
        else {
            panic!("an invites query is answered")
        };
        let got_invites: Vec<(RoomId, Option<usize>)> =
            invites.iter().map(|i| (i.room.clone(), i.inviter.as_ref().map(index))).collect();
        let want_invites: Vec<(RoomId, Option<usize>)> = model
            .rooms
            .iter()
            .filter_map(|(r, room)| Some((r, room.inviter.get(&u)?)))
            .filter(|(_, by)| !model.social.blocks(u, **by))
            .map(|(r, by)| (RoomId::Group(ROOMS[*r].into()), Some(*by)))
            .collect();
        assert_eq!(got_invites, want_invites, "user {u}: invitations");
        let mut want = model.social.view(u);
        // The machine lists users in id order, the model in index order.
        for (got, want) in got.iter().zip(want.iter_mut()) {
            want.sort_by_key(|i| users[*i].user());
            assert_eq!(got, want, "user {u}: contacts, incoming, outgoing, blocked");
        }
    }

    round_trip(&mut machine, LogIndex(checkpoints + 1));
}

/// Checks what user `u` reads of `room` against the model's room: the
/// visible prefix, by author, with the messages of users `u` blocks hidden.
fn check_visible(
    machine: &ImMachine,
    model: &Model,
    users: &[Identity],
    u: usize,
    room: &RoomId,
    want: Option<&ModelRoom>,
) {
    let kind = QueryKind::History { room: room.clone(), after: None, before: None, limit: 500 };
    let got = machine.query(&ImQuery { as_user: users[u].user(), kind });
    match (got, want.map(|r| r.readable(u))) {
        (Ok(QueryReply::Page(p)), Some(Some(limit))) => {
            let mut authors = Vec::new();
            for e in &p.entries {
                let author = users.iter().position(|x| x.user() == e.author).expect("a model user");
                let blocked = model.social.blocks(u, author);
                // Hidden exactly where the reader blocks the author: the
                // model's messages are all of the kind that hides.
                if e.kind == EntryKind::Hidden {
                    assert!(blocked, "hidden from {u} without a block: {e:?}");
                }
                assert!(
                    !(blocked && matches!(e.kind, EntryKind::Message(_))),
                    "shown to {u}: {e:?}"
                );
                authors.push(author);
            }
            let log = &want.expect("matched Some").log;
            assert_eq!(&authors[..], &log[..limit as usize], "room {room} user {u}");
        }
        (Err(ImError::NotMember), Some(None)) | (Err(ImError::NoSuchRoom), None) => {}
        (got, want) => panic!("room {room} user {u}: got {got:?}, model {want:?}"),
    }
}

/// Restores `machine`'s self-contained snapshot into a machine over a
/// volatile store and one over a durable store; the durable one then
/// snapshots (commits), crashes, and restores from its own local snapshot,
/// a mere reference to its store. Both must equal the original.
pub fn round_trip(machine: &mut ImMachine, at: LogIndex) -> (ImMachine, ImMachine) {
    let embedded = machine.transfer_snapshot().unwrap_or_else(|| machine.snapshot(at, b"m"));
    let mut volatile = ImMachine::default();
    volatile.restore(&embedded).expect("own snapshot restores");
    assert_eq!(volatile.digest(), machine.digest(), "snapshot round trip changed the state");
    let disk = SimHistory::default();
    let mut durable = ImMachine::with_history(Box::new(disk.clone()));
    durable.restore(&embedded).expect("own snapshot restores");
    let marker = durable.snapshot(at, b"m");
    assert!(marker.len() < 16, "a durable machine's local snapshot refers to its store");
    disk.crash();
    let mut durable = ImMachine::with_history(Box::new(disk));
    let restored = durable.restore(&marker).expect("restores from its store");
    assert_eq!(restored.ahead, None);
    assert_eq!(durable.digest(), machine.digest(), "durable round trip changed the state");
    (volatile, durable)
}
