//! How changes reach a subscription: a version 1 subscription's marked
//! entries, then the room's change records after the change cursor (see
//! the module documentation of `replica::subscriptions`).

use super::{page_after, Delivery, Follow};
use crate::im::identity::UserId;
use crate::im::machine::ImMachine;
use crate::im::protocol::{RoomEntry, RoomId};
use crate::limits;
use std::collections::VecDeque;

/// Room space left in a subscriber's queue.
pub(super) fn space(queue: &VecDeque<Delivery>) -> usize {
    limits::SUBSCRIBER_QUEUE_MAX.saturating_sub(queue.len())
}

/// Entry `seq` of `room` as `user` may read it now.
fn entry_now(machine: &ImMachine, user: UserId, room: &RoomId, seq: u64) -> Option<RoomEntry> {
    let page = page_after(machine, user, room, seq.checked_sub(1)?, 1).ok()?;
    page.entries.into_iter().find(|e| e.seq == seq)
}

/// Sends a version 1 subscription's marked entries (changed before it
/// subscribed) as they are now, while the queue has room.
pub(super) fn send_marked(
    machine: &ImMachine,
    user: UserId,
    room: &RoomId,
    follow: &mut Follow,
    queue: &mut VecDeque<Delivery>,
) {
    while space(queue) > 0 {
        let Some(seq) = follow.changed.pop_first() else { break };
        if let Some(entry) = entry_now(machine, user, room, seq) {
            queue.push_back(Delivery::Updated { room: room.clone(), change: None, entry });
        }
    }
}

/// Change records read at a time.
pub(super) const CHANGE_PAGE: usize = 256;

/// Sends, in change order, the changes numbered after the change cursor to
/// entries already delivered, as the entries are now; an entry changed
/// again later in the same page is sent once, at its last change. Reads at
/// most `SUBSCRIPTION_CHANGE_SCAN_MAX` records and stops when the queue is
/// full (the next refill goes on). A version 2 subscriber whose cursor
/// moved past changes it did not need (or was set back from beyond this
/// replica's latest) is then told where it is. Returns whether every
/// change was sent (none is left for a later refill).
pub(super) fn send_changes(
    machine: &ImMachine,
    user: UserId,
    room: &RoomId,
    follow: &mut Follow,
    queue: &mut VecDeque<Delivery>,
) -> bool {
    let Ok(latest) = machine.latest_change(room) else { return false };
    let mut budget = limits::SUBSCRIPTION_CHANGE_SCAN_MAX;
    'scan: while follow.change_cursor < latest && budget > 0 {
        let asked = budget.min(CHANGE_PAGE);
        let Ok(page) = machine.changes(room, follow.change_cursor, asked) else { return false };
        if page.is_empty() {
            break;
        }
        for (i, &(change, seq)) in page.iter().enumerate() {
            let again_later = page[i + 1..].iter().any(|&(_, s)| s == seq);
            if seq <= follow.cursor && !again_later {
                if space(queue) == 0 {
                    break 'scan;
                }
                let Some(entry) = entry_now(machine, user, room, seq) else { break 'scan };
                let numbered = follow.told.map(|_| change);
                queue.push_back(Delivery::Updated { room: room.clone(), change: numbered, entry });
                follow.told = numbered;
            }
            follow.change_cursor = change;
        }
        budget -= asked;
    }
    let moved = follow.told.is_some_and(|told| told != follow.change_cursor);
    if moved && follow.change_cursor >= latest {
        if space(queue) == 0 {
            return false;
        }
        let change = follow.change_cursor;
        queue.push_back(Delivery::ChangesSeen { room: room.clone(), change });
        follow.told = Some(change);
    }
    follow.change_cursor >= latest
}
