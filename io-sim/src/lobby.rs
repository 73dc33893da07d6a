//! The shared room clients write to and read whole. Like the keys of a
//! Jepsen list-append workload, it is rotated once it holds
//! [`LOBBY_ENTRIES_MAX`] entries: every read stays one bounded page that a
//! checker can verify in full, however long a run goes on, instead of a
//! list that outgrows a page and can no longer be read at once.

use kith_core::im::protocol::{Operation, RoomId, Visibility};

/// Entries (messages and membership changes) a lobby takes before the
/// next one opens. Sends already under way still land, so a lobby ends a
/// little past this; reads ask for [`LOBBY_READ_LIMIT`].
pub const LOBBY_ENTRIES_MAX: u64 = 256;

/// The page size of a whole-lobby read: the largest page, which leaves
/// room for the sends that race a rotation.
pub const LOBBY_READ_LIMIT: u32 = kith_core::limits::PAGE_ENTRIES_MAX as u32;

const _: () = assert!(LOBBY_ENTRIES_MAX * 3 / 2 < LOBBY_READ_LIMIT as u64);

/// The lobby of generation `generation`: `lobby`, then `lobby-1`, ...
pub fn lobby(generation: u64) -> RoomId {
    RoomId::Group(lobby_name(generation))
}

/// The name a client creates lobby `generation` with.
pub fn lobby_name(generation: u64) -> String {
    match generation {
        0 => "lobby".into(),
        g => format!("lobby-{g}"),
    }
}

/// The run's current lobby, shared by its clients as a Jepsen generator
/// shares its key schedule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LobbySchedule {
    generation: u64,
}

impl LobbySchedule {
    /// The generation clients should be writing to.
    pub fn current(&self) -> u64 {
        self.generation
    }

    /// Opens the next lobby if an entry at `seq` in lobby `generation`
    /// filled the current one. True for exactly one caller per rotation:
    /// that client creates the room.
    pub fn rotate_after(&mut self, generation: u64, seq: u64) -> bool {
        let rotate = generation == self.generation && seq >= LOBBY_ENTRIES_MAX;
        if rotate {
            self.generation += 1;
        }
        rotate
    }
}

/// One client's place in the schedule: the lobby it writes to and reads,
/// and the longest read of it so far (reads of one lobby never shrink).
#[derive(Debug)]
pub struct LobbySeat {
    generation: u64,
    /// It created this lobby: the owner stays (an only owner may not leave).
    owns: bool,
    longest_read: usize,
}

impl LobbySeat {
    /// A seat in the first lobby; its `creator` creates it.
    pub fn new(creator: bool) -> LobbySeat {
        LobbySeat { generation: 0, owns: creator, longest_read: 0 }
    }

    /// The generation this client is in.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The room this client writes to and reads.
    pub fn room(&self) -> RoomId {
        lobby(self.generation)
    }

    /// The operations that move this client to the schedule's lobby if it
    /// moved on (in the order to run them): join the new, leave the old.
    pub fn catch_up(&mut self, schedule: &LobbySchedule) -> Vec<Operation> {
        if schedule.current() <= self.generation {
            return Vec::new();
        }
        let mut ops = vec![Operation::Join { room: lobby(schedule.current()) }];
        ops.extend(self.leave());
        self.move_to(schedule.current(), false);
        ops
    }

    /// After this client's entry at `seq` in `room` was acknowledged: if it
    /// filled the lobby, the operations that open the next one.
    pub fn after_ack(
        &mut self,
        schedule: &mut LobbySchedule,
        room: &RoomId,
        seq: u64,
    ) -> Vec<Operation> {
        if *room != self.room() || !schedule.rotate_after(self.generation, seq) {
            return Vec::new();
        }
        let next = schedule.current();
        let mut ops =
            vec![Operation::CreateRoom { name: lobby_name(next), visibility: Visibility::Public }];
        ops.extend(self.leave());
        self.move_to(next, true);
        ops
    }

    /// Records a whole read of lobby `generation` that found `len` entries;
    /// returns the longer earlier read of the same lobby if it shrank.
    pub fn saw_read(&mut self, generation: u64, len: usize) -> Option<usize> {
        if generation != self.generation {
            return None;
        }
        let before = self.longest_read;
        self.longest_read = before.max(len);
        (len < before).then_some(before)
    }

    fn leave(&self) -> Option<Operation> {
        (!self.owns).then(|| Operation::Leave { room: self.room() })
    }

    fn move_to(&mut self, generation: u64, owns: bool) {
        *self = LobbySeat { generation, owns, longest_read: 0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_caller_rotates_a_full_lobby() {
        let mut s = LobbySchedule::default();
        assert!(!s.rotate_after(0, LOBBY_ENTRIES_MAX - 1));
        assert!(s.rotate_after(0, LOBBY_ENTRIES_MAX));
        assert!(!s.rotate_after(0, LOBBY_ENTRIES_MAX + 1), "a late send to the old lobby");
        assert_eq!(s.current(), 1);
        assert_eq!(lobby(0), RoomId::Group("lobby".into()));
        assert_eq!(lobby(1), RoomId::Group("lobby-1".into()));
    }

    #[test]
    fn the_filler_opens_the_next_lobby_and_the_rest_follow() {
        let mut schedule = LobbySchedule::default();
        let (mut creator, mut filler, mut other) =
            (LobbySeat::new(true), LobbySeat::new(false), LobbySeat::new(false));
        assert!(filler.after_ack(&mut schedule, &lobby(0), 3).is_empty());
        let opened = filler.after_ack(&mut schedule, &lobby(0), LOBBY_ENTRIES_MAX);
        assert_eq!(
            opened,
            vec![
                Operation::CreateRoom { name: "lobby-1".into(), visibility: Visibility::Public },
                Operation::Leave { room: lobby(0) },
            ]
        );
        assert_eq!((filler.generation(), filler.room()), (1, lobby(1)));
        // A late ack in the old lobby changes nothing.
        assert!(other.after_ack(&mut schedule, &lobby(0), LOBBY_ENTRIES_MAX + 1).is_empty());
        assert_eq!(
            other.catch_up(&schedule),
            vec![Operation::Join { room: lobby(1) }, Operation::Leave { room: lobby(0) }]
        );
        // The first lobby's owner joins the next and stays in its own.
        assert_eq!(creator.catch_up(&schedule), vec![Operation::Join { room: lobby(1) }]);
        assert!(creator.catch_up(&schedule).is_empty());
        // The filler owns lobby-1 now: it stays in it when it fills.
        let opened = filler.after_ack(&mut schedule, &lobby(1), LOBBY_ENTRIES_MAX);
        assert_eq!(opened.len(), 1);
    }

    #[test]
    fn reads_of_one_lobby_may_not_shrink() {
        let mut seat = LobbySeat::new(false);
        assert_eq!(seat.saw_read(0, 5), None);
        assert_eq!(seat.saw_read(0, 4), Some(5));
        assert_eq!(seat.saw_read(0, 9), None);
        let mut schedule = LobbySchedule::default();
        schedule.rotate_after(0, LOBBY_ENTRIES_MAX);
        seat.catch_up(&schedule);
        assert_eq!(seat.saw_read(1, 1), None, "a new lobby starts over");
        assert_eq!(seat.saw_read(0, 2), None, "a read of an older lobby is not compared");
    }
}
