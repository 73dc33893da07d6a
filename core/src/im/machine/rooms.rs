//! Room lifecycle and membership. Each change is an entry in the room's log,
//! so it takes effect at an exact sequence number.

use super::rates::RateKind;
use super::state::Room;
use super::{Ctx, ImMachine};
use crate::im::identity::UserId;
use crate::im::protocol::{
    EntryKind, ImError, ImEvent, Receipt, Role, RoomEntry, RoomId, Visibility,
};
use crate::limits;

impl ImMachine {
    pub(super) fn room(&self, room: &RoomId) -> Result<&Room, ImError> {
        self.state.rooms.get(room).ok_or(ImError::NoSuchRoom)
    }

    /// A group room (membership operations make no sense in direct rooms).
    fn group(&self, room: &RoomId) -> Result<&Room, ImError> {
        let r = self.room(room)?;
        if r.is_direct() {
            return Err(ImError::DirectRoom);
        }
        Ok(r)
    }

    /// Appends an entry to `room` and reports it to subscribers.
    pub(super) fn append(&mut self, ctx: &mut Ctx, room: &RoomId, kind: EntryKind) -> Receipt {
        let r = self.state.rooms.get_mut(room).expect("caller checked the room exists");
        r.last_seq += 1;
        let seq = r.last_seq;
        let entry = RoomEntry { seq, time_ms: ctx.now_ms, author: ctx.author, kind };
        self.store(room, &entry, None);
        ctx.events.push(ImEvent::Appended { room: room.clone(), entry });
        Receipt::Appended { room: room.clone(), seq }
    }

    pub(super) fn require_registered(&self, user: UserId) -> Result<(), ImError> {
        if self.state.users.contains_key(&user) {
            Ok(())
        } else {
            Err(ImError::NoSuchUser)
        }
    }

    /// Refuses when `user` belongs to as many rooms as they may.
    pub(super) fn require_room_slot(&self, user: UserId) -> Result<(), ImError> {
        if self.state.rooms_of(user) >= limits::ROOMS_PER_USER_MAX {
            return Err(ImError::LimitReached("rooms per user".into()));
        }
        Ok(())
    }

    fn require_room_capacity(&self, user: UserId, room: &Room) -> Result<(), ImError> {
        self.require_room_slot(user)?;
        if room.members.len() >= limits::MEMBERS_PER_ROOM_MAX {
            return Err(ImError::LimitReached("members per room".into()));
        }
        Ok(())
    }

    pub(super) fn create_room(
        &mut self,
        ctx: &mut Ctx,
        name: &str,
        visibility: Visibility,
    ) -> Result<Receipt, ImError> {
        if !RoomId::valid_group_name(name) {
            return Err(ImError::InvalidName("room names are 1 to 64 of a-z 0-9 - _".into()));
        }
        let id = RoomId::Group(name.to_string());
        if self.state.rooms.contains_key(&id) {
            return Err(ImError::RoomExists(name.to_string()));
        }
        self.require_room_slot(ctx.author)?;
        // Last of the checks: a refused creation costs no token.
        self.rates.take(ctx.author, RateKind::RoomCreation, ctx.now_ms)?;
        let mut room = Room::new(name.to_string(), Some(visibility));
        room.members.insert(ctx.author, Role::Owner);
        self.state.rooms.insert(id.clone(), room);
        self.state.join_index(ctx.author, &id);
        Ok(self.append(ctx, &id, EntryKind::Created { visibility }))
    }

    pub(super) fn invite(
        &mut self,
        ctx: &mut Ctx,
        room: &RoomId,
        user: UserId,
    ) -> Result<Receipt, ImError> {
        let r = self.group(room)?;
        let needed =
            if r.visibility == Some(Visibility::Private) { Role::Admin } else { Role::Member };
        r.require(ctx.author, needed)?;
        self.require_registered(user)?;
        let r = self.group(room)?;
        if r.members.contains_key(&user) {
            return Err(ImError::AlreadyMember);
        }
        if r.banned.contains(&user) {
            return Err(ImError::Banned);
        }
        if r.invited.len() >= limits::INVITES_PER_ROOM_MAX {
            return Err(ImError::LimitReached("invitations per room".into()));
        }
        self.state.rooms.get_mut(room).expect("checked").invited.insert(user);
        self.social.invited(user, room, Some(ctx.author));
        Ok(self.append(ctx, room, EntryKind::Invited { user }))
    }

    pub(super) fn join(&mut self, ctx: &mut Ctx, room: &RoomId) -> Result<Receipt, ImError> {
        let r = self.group(room)?;
        let user = ctx.author;
        if r.members.contains_key(&user) {
            return Err(ImError::AlreadyMember);
        }
        if r.banned.contains(&user) {
            return Err(ImError::Banned);
        }
        if r.visibility == Some(Visibility::Private) && !r.invited.contains(&user) {
            return Err(ImError::NotInvited);
        }
        self.require_room_capacity(user, r)?;
        self.end_invitation(room, user);
        Ok(self.admit(ctx, room, user))
    }

    /// `user` becomes a member of `room` (which exists), with a `Joined`
    /// entry: joining a group room, or entering a direct one.
    pub(super) fn admit(&mut self, ctx: &mut Ctx, room: &RoomId, user: UserId) -> Receipt {
        let r = self.state.rooms.get_mut(room).expect("the caller made sure the room exists");
        r.departed.remove(&user);
        r.members.insert(user, Role::Member);
        self.state.join_index(user, room);
        self.append(ctx, room, EntryKind::Joined { user })
    }

    /// The author turns down an invitation to `room`. Nothing is
    /// appended: the members see the invitation go from the room's details.
    pub(super) fn decline_invite(&mut self, ctx: &Ctx, room: &RoomId) -> Result<Receipt, ImError> {
        let r = self.group(room)?;
        if !r.invited.contains(&ctx.author) {
            return Err(ImError::NotInvited);
        }
        self.end_invitation(room, ctx.author);
        Ok(Receipt::InviteDeclined { room: room.clone() })
    }

    /// `user`'s invitation to `room`, if any, ends: in the room and in the
    /// invitation index alike.
    fn end_invitation(&mut self, room: &RoomId, user: UserId) {
        if let Some(r) = self.state.rooms.get_mut(room) {
            r.invited.remove(&user);
        }
        self.social.uninvited(user, room);
    }

    pub(super) fn leave(&mut self, ctx: &mut Ctx, room: &RoomId) -> Result<Receipt, ImError> {
        // Direct rooms may be left too (a message from a contact, or an
        // accepted request, opens them again); they have no owners.
        let r = self.room(room)?;
        let user = ctx.author;
        let role = r.role_of(user)?;
        if role == Role::Owner && !r.has_other_owner(user) && r.members.len() > 1 {
            return Err(ImError::LastOwner);
        }
        if r.is_direct() {
            self.leave_direct(ctx, room);
        }
        let receipt = self.append(ctx, room, EntryKind::Left { user });
        self.remove_from_room(room, user);
        Ok(receipt)
    }

    fn remove_from_room(&mut self, room: &RoomId, user: UserId) {
        let r = self.state.rooms.get_mut(room).expect("checked");
        let seq = r.last_seq;
        r.remove_member(user, seq);
        self.state.leave_index(user, room);
    }

    /// Checks that the author outranks `user` (who must be a member) and is at least admin.
    fn require_outranks(&self, ctx: &Ctx, room: &RoomId, user: UserId) -> Result<(), ImError> {
        let r = self.group(room)?;
        let mine = r.require(ctx.author, Role::Admin)?;
        let theirs = r.role_of(user)?;
        if theirs >= mine {
            return Err(ImError::Forbidden { needed: Role::Owner });
        }
        Ok(())
    }

    pub(super) fn kick(
        &mut self,
        ctx: &mut Ctx,
        room: &RoomId,
        user: UserId,
    ) -> Result<Receipt, ImError> {
        self.require_outranks(ctx, room, user)?;
        let receipt = self.append(ctx, room, EntryKind::Kicked { user });
        self.remove_from_room(room, user);
        Ok(receipt)
    }

    pub(super) fn ban(
        &mut self,
        ctx: &mut Ctx,
        room: &RoomId,
        user: UserId,
    ) -> Result<Receipt, ImError> {
        let r = self.group(room)?;
        r.require(ctx.author, Role::Admin)?;
        self.require_registered(user)?;
        let r = self.group(room)?;
        let is_member = r.members.contains_key(&user);
        if is_member {
            self.require_outranks(ctx, room, user)?;
        }
        let receipt = self.append(ctx, room, EntryKind::Banned { user });
        if is_member {
            self.remove_from_room(room, user);
        }
        self.end_invitation(room, user);
        let r = self.state.rooms.get_mut(room).expect("checked");
        r.banned.insert(user);
        if !is_member {
            // A non-member banned from a public room loses read access here.
            let seq = r.last_seq;
            r.departed.entry(user).and_modify(|s| *s = (*s).min(seq));
        }
        Ok(receipt)
    }

    pub(super) fn unban(
        &mut self,
        ctx: &mut Ctx,
        room: &RoomId,
        user: UserId,
    ) -> Result<Receipt, ImError> {
        let r = self.group(room)?;
        r.require(ctx.author, Role::Admin)?;
        if !r.banned.contains(&user) {
            return Err(ImError::NotBanned);
        }
        self.state.rooms.get_mut(room).expect("checked").banned.remove(&user);
        Ok(self.append(ctx, room, EntryKind::Unbanned { user }))
    }

    pub(super) fn set_role(
        &mut self,
        ctx: &mut Ctx,
        room: &RoomId,
        user: UserId,
        role: Role,
    ) -> Result<Receipt, ImError> {
        let r = self.group(room)?;
        let current = r.role_of(user)?;
        // Admins manage members and admins below owner; only owners touch owners.
        let needed =
            if role == Role::Owner || current == Role::Owner { Role::Owner } else { Role::Admin };
        r.require(ctx.author, needed)?;
        if current == Role::Owner && role < Role::Owner && !r.has_other_owner(user) {
            return Err(ImError::LastOwner);
        }
        self.state.rooms.get_mut(room).expect("checked").members.insert(user, role);
        Ok(self.append(ctx, room, EntryKind::RoleChanged { user, role }))
    }

    pub(super) fn rename(
        &mut self,
        ctx: &mut Ctx,
        room: &RoomId,
        title: &str,
    ) -> Result<Receipt, ImError> {
        self.group(room)?.require(ctx.author, Role::Admin)?;
        let chars = title.chars().count();
        if chars == 0 || chars > limits::ROOM_NAME_CHARS_MAX || title.chars().any(char::is_control)
        {
            return Err(ImError::BadLength {
                what: "a room title".into(),
                max: limits::ROOM_NAME_CHARS_MAX,
            });
        }
        self.state.rooms.get_mut(room).expect("checked").title = title.to_string();
        Ok(self.append(ctx, room, EntryKind::Renamed { title: title.to_string() }))
    }

    pub(super) fn set_topic(
        &mut self,
        ctx: &mut Ctx,
        room: &RoomId,
        topic: &str,
    ) -> Result<Receipt, ImError> {
        self.group(room)?.require(ctx.author, Role::Admin)?;
        if topic.len() > limits::TOPIC_BYTES_MAX
            || topic.chars().any(|c| c.is_control() && c != '\n')
        {
            return Err(ImError::BadLength {
                what: "a topic".into(),
                max: limits::TOPIC_BYTES_MAX,
            });
        }
        self.state.rooms.get_mut(room).expect("checked").topic = topic.to_string();
        Ok(self.append(ctx, room, EntryKind::TopicChanged { topic: topic.to_string() }))
    }
}
