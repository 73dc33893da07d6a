//! Live delivery: a live subscriber receives each room's entries gap-free,
//! in order and without duplicates, across reconnects (each new stream
//! continues from the subscriber's cursor); and what it received is what
//! the room holds: every entry it got as a message is that message in the
//! converged state, and every position it got as another kind of entry
//! holds no message. A change (edit, deletion, reaction) comes only for a
//! message the subscriber has already received, and names that message.
//! (That every change reaches it is `change_delivery.rs`.)

use kith_core::im::protocol::RoomId;
use kith_core::testing::invariant::{Invariant, Observation};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Each subscriber's position in each room, and what it received.
#[derive(Debug, Default)]
pub struct LiveDelivery {
    cursors: BTreeMap<(usize, RoomId), u64>,
    received: BTreeMap<(RoomId, u64), (usize, Option<Uuid>)>,
}

impl Invariant for LiveDelivery {
    fn name(&self) -> &'static str {
        "live delivery gap-free and true"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        match observation {
            Observation::Followed { subscriber, room, cursor } => {
                let known = self.cursors.entry((*subscriber, (*room).clone())).or_insert(*cursor);
                if *cursor != *known {
                    return Err(format!(
                        "subscriber {subscriber} resumed {room} from {cursor}, having received up to {known}"
                    ));
                }
                Ok(())
            }
            Observation::Delivered { subscriber, room, seq, msg_id, .. } => {
                let key = (*subscriber, (*room).clone());
                let Some(cursor) = self.cursors.get_mut(&key) else {
                    return Err(format!("subscriber {subscriber} got {room} #{seq} unasked"));
                };
                if *seq != *cursor + 1 {
                    return Err(format!(
                        "subscriber {subscriber} got {room} #{seq} after #{cursor} (a gap, a \
                         duplicate or out of order)"
                    ));
                }
                *cursor = *seq;
                let seen =
                    self.received.entry(((*room).clone(), *seq)).or_insert((*subscriber, *msg_id));
                if seen.1 != *msg_id {
                    return Err(format!(
                        "{room} #{seq}: subscriber {subscriber} got {msg_id:?}, subscriber {} got {:?}",
                        seen.0, seen.1
                    ));
                }
                Ok(())
            }
            // A change comes only for a message the subscriber has
            // received, and names that message.
            Observation::Updated { subscriber, room, seq, msg_id, .. } => {
                let cursor = self.cursors.get(&(*subscriber, (*room).clone())).copied();
                if cursor.is_none_or(|c| *seq > c) {
                    return Err(format!(
                        "subscriber {subscriber} got a change to {room} #{seq} before the entry \
                         (cursor {cursor:?})"
                    ));
                }
                let seen = self.received.get(&((*room).clone(), *seq)).map(|(_, id)| *id);
                if msg_id.is_none() || seen.is_some_and(|id| id != *msg_id) {
                    return Err(format!(
                        "subscriber {subscriber} got a change to {room} #{seq} as {msg_id:?}, \
                         which was delivered as {seen:?}"
                    ));
                }
                Ok(())
            }
            Observation::Settled { stored, .. } => {
                let held: BTreeMap<(&RoomId, u64), Uuid> =
                    stored.iter().map(|m| ((&m.room, m.seq), m.msg_id)).collect();
                for ((room, seq), (subscriber, got)) in &self.received {
                    let truth = held.get(&(room, *seq)).copied();
                    if truth != *got {
                        return Err(format!(
                            "subscriber {subscriber} got {got:?} as {room} #{seq}, which holds {truth:?}"
                        ));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
