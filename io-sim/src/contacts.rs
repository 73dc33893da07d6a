//! Contacts in the madsim workload. The chat clients ask each other to be
//! contacts, answer, withdraw and end contacts (so direct messages take
//! both roads: a message request, or a room opened at once), and block and
//! unblock the stranger (the file workload's outsider), who keeps writing
//! to them and asking them all the same. The stranger never joins a lobby,
//! so blocking it hides nothing the lobby checkers read; what a block must
//! do is checked after the heal (`blocks hold`).

use crate::client::{client_secret, ClientCtx};
use kith_core::im::identity::{Identity, UserId};
use kith_core::im::protocol::Operation;
use kith_core::rng::SeededRng;

/// A contact command of chat client `ctx` about another chat client, or
/// about the stranger when there is one.
pub(crate) fn contact_op(ctx: &ClientCtx, rng: &mut SeededRng) -> Operation {
    let (seed, stranger) = {
        let w = ctx.world.lock();
        (w.seed, w.files.outsider)
    };
    if let Some(user) = stranger.filter(|_| rng.chance(0.4)) {
        return if rng.chance(0.7) {
            Operation::Block { user }
        } else {
            Operation::Unblock { user }
        };
    }
    let other =
        (ctx.index + 1 + rng.range(0, ctx.clients.max(2) as u64 - 1) as usize) % ctx.clients;
    let user = Identity::from_secret(client_secret(seed, other)).user();
    match rng.range(0, 10) {
        0..=3 => Operation::RequestContact { user },
        4..=6 => Operation::AcceptRequest { user },
        7 => Operation::DeclineRequest { user },
        8 => Operation::CancelRequest { user },
        _ => Operation::RemoveContact { user },
    }
}

/// What the stranger does to chat client `target`: writes, or asks.
pub(crate) fn stranger_op(rng: &mut SeededRng, seed: u64, target: usize) -> Operation {
    let user: UserId = Identity::from_secret(client_secret(seed, target)).user();
    if rng.chance(0.6) {
        let text = format!("buy now {}", rng.next_u64() % 1000);
        Operation::Send { to: kith_core::im::protocol::Target::User(user), text }
    } else {
        Operation::RequestContact { user }
    }
}
