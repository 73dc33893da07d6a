//! Users are ed25519 key pairs, the same key type libp2p uses, so a client's
//! libp2p `PeerId` is its user id. The core verifies; clients sign with
//! key material they supply (the core never draws randomness).

use bytes::Bytes;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A user: their ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UserId(pub [u8; 32]);

/// The multihash prefix of a libp2p PeerId for an inline ed25519 key:
/// identity multihash (0x00), length 36, then the protobuf `PublicKey`
/// header (field 1 = Ed25519, field 2 = 32 bytes).
const PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

impl UserId {
    /// The libp2p PeerId bytes of this key.
    pub fn peer_id_bytes(&self) -> [u8; 38] {
        let mut out = [0u8; 38];
        out[..6].copy_from_slice(&PEER_ID_PREFIX);
        out[6..].copy_from_slice(&self.0);
        out
    }

    /// The Raft id this key has when it is a replica's.
    pub fn node_id(&self) -> crate::ids::NodeId {
        crate::ids::NodeId::of_peer(&self.peer_id_bytes())
    }

    /// Parses a base58 PeerId string (`12D3KooW...`) of an ed25519 key.
    pub fn from_peer_id(text: &str) -> Result<UserId, IdentityError> {
        let bytes = bs58::decode(text).into_vec().map_err(|_| IdentityError::NotBase58)?;
        UserId::from_peer_id_bytes(&bytes)
    }

    /// The user of a PeerId in its binary form (a multihash), if it holds
    /// an ed25519 key inline: what a driver has for every connection,
    /// without the round trip through base58 (whose encoding is quadratic
    /// in the length, and showed in a replica's profile).
    pub fn from_peer_id_bytes(bytes: &[u8]) -> Result<UserId, IdentityError> {
        let key = match bytes.split_first_chunk::<6>() {
            Some((prefix, key)) if *prefix == PEER_ID_PREFIX => key,
            _ => return Err(IdentityError::NotEd25519PeerId),
        };
        key.try_into().map(UserId).map_err(|_| IdentityError::NotEd25519PeerId)
    }

    /// Verifies `signature` over `message` by this user.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), IdentityError> {
        verify_with(&self.verifying_key()?, message, signature)
    }

    /// This user's key as a curve point, for [`verify_with`]: decompressing
    /// it costs about a third of a verification, worth keeping for a
    /// user who sends often.
    pub fn verifying_key(&self) -> Result<VerifyingKey, IdentityError> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| IdentityError::BadKey)
    }
}

/// Verifies `signature` over `message` by the holder of `key` (strictly:
/// no small-order key or nonce, no non-canonical encoding).
pub fn verify_with(
    key: &VerifyingKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), IdentityError> {
    let sig: [u8; 64] = signature.try_into().map_err(|_| IdentityError::BadSignature)?;
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig))
        .map_err(|_| IdentityError::BadSignature)
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.peer_id_bytes()).into_string())
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.to_string();
        write!(f, "UserId({}…)", &s[s.len().saturating_sub(8)..])
    }
}

/// A signing key, for clients and tests.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
}

impl Identity {
    /// An identity from 32 bytes of secret key material (from the OS RNG
    /// in a client, from a seed in tests).
    pub fn from_secret(secret: [u8; 32]) -> Identity {
        Identity { key: SigningKey::from_bytes(&secret) }
    }

    /// The secret key bytes (to store in a key file).
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// This identity's user id.
    pub fn user(&self) -> UserId {
        UserId(self.key.verifying_key().to_bytes())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Bytes {
        Bytes::copy_from_slice(&self.key.sign(message).to_bytes())
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({:?})", self.user())
    }
}

/// Why an identity or signature was refused.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum IdentityError {
    /// The text is not base58.
    #[error("not a base58 peer id")]
    NotBase58,
    /// A peer id, but not of an inline ed25519 key.
    #[error("not an ed25519 peer id")]
    NotEd25519PeerId,
    /// The 32 bytes are not a valid ed25519 point.
    #[error("invalid ed25519 public key")]
    BadKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_verifies_and_renders_as_a_libp2p_peer_id() {
        let id = Identity::from_secret([7; 32]);
        let user = id.user();
        let text = user.to_string();
        assert!(text.starts_with("12D3KooW"), "{text}");
        assert_eq!(UserId::from_peer_id(&text), Ok(user));
        let sig = id.sign(b"hello");
        assert_eq!(user.verify(b"hello", &sig), Ok(()));
        assert_eq!(user.verify(b"hellO", &sig), Err(IdentityError::BadSignature));
        assert_eq!(user.verify(b"hello", &sig[..63]), Err(IdentityError::BadSignature));
        let other = Identity::from_secret([8; 32]).user();
        assert_eq!(other.verify(b"hello", &sig), Err(IdentityError::BadSignature));
        assert!(UserId::from_peer_id("0OIl").is_err());
        assert!(UserId::from_peer_id("12D3").is_err());
    }

    #[test]
    fn a_peer_id_in_binary_names_its_user_only_with_an_inline_ed25519_key() {
        let user = Identity::from_secret([7; 32]).user();
        let bytes = user.peer_id_bytes();
        assert_eq!(UserId::from_peer_id_bytes(&bytes), Ok(user));
        for len in 0..bytes.len() {
            assert!(UserId::from_peer_id_bytes(&bytes[..len]).is_err(), "{len} bytes");
        }
        let longer = [&bytes[..], &[0]].concat();
        assert!(UserId::from_peer_id_bytes(&longer).is_err());
        for at in 0..6 {
            let mut other = bytes;
            other[at] ^= 1;
            assert!(UserId::from_peer_id_bytes(&other).is_err(), "prefix byte {at}");
        }
    }
}
