//! The signed commands a node verified lately. Clients retry a command with
//! the same signed bytes on every doubt (a timeout, a dropped reply, a
//! leader change), so under faults a node sees most commands several times;
//! checking an ed25519 signature costs tens of microseconds, remembering
//! that these exact bytes were good costs a hash. It also keeps the
//! recent authors' keys decompressed: in a profile of the cluster
//! benchmark, decompressing the author's key on every command was about a
//! third of verification, itself the largest part of a replica's run loop.

use crate::im::identity::{self, UserId};
use crate::im::protocol::{CommandBody, CommandError, SignedCommand};
use crate::limits;
use ed25519_dalek::VerifyingKey;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A bounded memory of verified commands, oldest forgotten first, and of
/// their authors' keys.
#[derive(Debug, Default)]
pub struct VerifiedCommands {
    known: BTreeSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
    keys: BTreeMap<UserId, VerifyingKey>,
    keys_order: VecDeque<UserId>,
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
        command.check_author(connection)?;
        if !self.known.contains(&fingerprint) {
            let key = match self.keys.get(&command.author) {
                Some(key) => *key,
                None => command.author.verifying_key().map_err(CommandError::Identity)?,
            };
            identity::verify_with(&key, &command.body, &command.signature)
                .map_err(CommandError::Identity)?;
            let body = command.decode_body()?;
            self.remember(fingerprint);
            self.keep_key(command.author, key);
            return Ok(body);
        }
        command.decode_body()
    }

    /// Keeps `author`'s key, which just verified a command of theirs (a
    /// key that verified nothing is not kept: forgeries cannot push the
    /// senders' keys out).
    fn keep_key(&mut self, author: UserId, key: VerifyingKey) {
        if self.keys.contains_key(&author) {
            return;
        }
        if self.keys_order.len() == limits::VERIFYING_KEYS_MAX {
            let oldest = self.keys_order.pop_front().expect("the memory is full");
            self.keys.remove(&oldest);
        }
        self.keys.insert(author, key);
        self.keys_order.push_back(author);
        debug_assert_eq!(self.keys.len(), self.keys_order.len());
    }

    /// How many commands' signatures it remembers checking.
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.order.len()
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
    fn keys_are_kept_for_the_most_recent_authors_and_bad_keys_refused() {
        let mut verified = VerifiedCommands::default();
        let authors: Vec<Identity> = (0..limits::VERIFYING_KEYS_MAX as u32 + 1)
            .map(|n| {
                let mut secret = [0u8; 32];
                secret[..4].copy_from_slice(&n.to_le_bytes());
                Identity::from_secret(secret)
            })
            .collect();
        for (n, who) in authors.iter().enumerate() {
            verified.verify(&command(who, n as u128), Some(who.user())).unwrap();
        }
        assert_eq!(verified.keys.len(), limits::VERIFYING_KEYS_MAX);
        assert!(!verified.keys.contains_key(&authors[0].user()));
        assert!(verified.keys.contains_key(&authors[1].user()));
        // A kept key still refuses a signature it did not make.
        let mut forged = command(&authors[1], 10_000);
        forged.signature = command(&authors[2], 10_000).signature;
        let refused = verified.verify(&forged, None);
        assert_eq!(refused, Err(CommandError::Identity(IdentityError::BadSignature)));
        // A key that verified nothing is not kept.
        let mut stranger = command(&authors[1], 10_001);
        stranger.author = authors[0].user();
        assert!(verified.verify(&stranger, None).is_err());
        assert!(!verified.keys.contains_key(&authors[0].user()));
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
