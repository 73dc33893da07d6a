//! Presence converges: once the network has healed and every client has
//! announced itself again, every running replica shows each client's
//! newest announcement (the table is ephemeral, so a replica that started
//! after the announcement is not asked). An older announcement arriving
//! late must not win, and one replica taking an announcement must pass it
//! on to the others.

use kith_core::testing::invariant::{Invariant, Observation};

/// Checks the presence views at the end of a run.
#[derive(Debug, Default)]
pub struct PresenceConverges;

impl Invariant for PresenceConverges {
    fn name(&self) -> &'static str {
        "presence converges"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        let Observation::PresenceSettled { announced, seen } = observation else { return Ok(()) };
        for (replica, user, shows) in seen.iter() {
            let newest = announced.iter().find(|(u, _)| u == user).map(|(_, ms)| *ms);
            if *shows != newest {
                return Err(format!(
                    "replica {replica} shows {user}'s presence as of {shows:?}, the newest \
                     announcement is of {newest:?}"
                ));
            }
        }
        Ok(())
    }
}
