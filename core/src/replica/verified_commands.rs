//! The signed commands a node verified lately. Clients retry a command with
//! the same signed bytes on every doubt (a timeout, a dropped reply, a
//! leader change), so under faults a node sees most commands several times;
//! checking an ed25519 signature costs tens of microseconds, remembering
//! that these exact bytes were good costs a hash.

use crate::im::identity::UserId;
use crate::im::protocol::{CommandBody, CommandError, SignedCommand};
use crate::limits;
use std::collections::{BTreeSet, VecDeque};

/// A bounded memory of verified commands, oldest forgotten first.
#[derive(Debug, Default)]
pub struct VerifiedCommands {
    known: BTreeSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl VerifiedCommands {
    /// Like [`SignedCommand::verify`], but skips the signature check for
    /// bytes that passed it before. The author is still matched against
    /// this `connection`, and the body decoded and its version checked.
    pub fn verify(
        &mut self,
        command: &SignedCommand,
        connection: Option<UserId>,
    ) -> Result<CommandBody, CommandError> {
        let fingerprint = command.fingerprint();
        if !self.known.contains(&fingerprint) {
            let body = command.verify(connection)?;
            self.remember(fingerprint);
            return Ok(body);
        }
        command.check_author(connection)?;
        command.decode_body()
    }

    fn remember(&mut self, fingerprint: [u8; 32]) {
        if self.order.len() == limits::VERIFIED_COMMANDS_MAX {
            let oldest = self.order.pop_front().expect("the memory is full");
            self.known.remove(&oldest);
        }
        self.known.insert(fingerprint);
        self.order.push_back(fingerprint);
        debug_assert_eq!(self.known.len(), self.order.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im::identity::{Identity, IdentityError};
    use crate::im::protocol::{Operation, IM_PROTOCOL_VERSION};
    use uuid::Uuid;

    fn command(who: &Identity, n: u128) -> SignedCommand {
        let body = CommandBody {
            version: IM_PROTOCOL_VERSION,
            command_id: Uuid::from_u128(n),
            issued_at_ms: 1,
            op: Operation::Register { name: format!("u{n}") },
        };
        SignedCommand::sign(who, &body)
    }

    #[test]
    fn a_retry_is_taken_and_a_forgery_of_a_known_command_is_not() {
        let (ann, bob) = (Identity::from_secret([1; 32]), Identity::from_secret([2; 32]));
        let mut verified = VerifiedCommands::default();
        let good = command(&ann, 1);
        let body = verified.verify(&good, Some(ann.user())).unwrap();
        assert_eq!(verified.verify(&good, Some(ann.user())), Ok(body));
        assert_eq!(verified.order.len(), 1);
        // The same bytes from another connection are still refused.
        let stolen = verified.verify(&good, Some(bob.user()));
        assert!(matches!(stolen, Err(CommandError::AuthorMismatch { .. })));
        // A known body with another signature is checked, and fails.
        let mut forged = good.clone();
        forged.signature = command(&ann, 2).signature;
        let refused = verified.verify(&forged, None);
        assert_eq!(refused, Err(CommandError::Identity(IdentityError::BadSignature)));
        // A known signature over another body too.
        let mut swapped = command(&ann, 3);
        swapped.signature = good.signature.clone();
        assert!(verified.verify(&swapped, None).is_err());
        assert_eq!(verified.order.len(), 1, "failures are not remembered");
    }

    #[test]
    fn the_memory_is_bounded_oldest_first() {
        let ann = Identity::from_secret([1; 32]);
        let mut verified = VerifiedCommands::default();
        let commands: Vec<_> =
            (0..limits::VERIFIED_COMMANDS_MAX as u128 + 1).map(|n| command(&ann, n)).collect();
        for c in &commands {
            verified.verify(c, None).unwrap();
        }
        assert_eq!(verified.order.len(), limits::VERIFIED_COMMANDS_MAX);
        assert!(!verified.known.contains(&commands[0].fingerprint()));
        assert!(verified.known.contains(&commands[1].fingerprint()));
    }
}
