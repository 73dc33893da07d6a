//! Key files: an ed25519 secret stored as 64 hex digits, readable only by
//! its owner. Replicas and users both use them; the key's libp2p PeerId is
//! the replica's or user's identity.

use kith_core::im::identity::Identity;
use libp2p::identity::{ed25519, Keypair};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The file is not 64 hex digits.
    #[error("{0} is not a kith key file (expected 64 hex digits)")]
    Malformed(PathBuf),
    /// `create` found a key already there.
    #[error("{0} already exists; refusing to overwrite a key")]
    Exists(PathBuf),
}

/// A secret key and where it lives.
#[derive(Clone)]
pub struct KeyFile {
    secret: [u8; 32],
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyFile({})", self.peer_id())
    }
}

impl KeyFile {
    /// Generates a fresh key from the operating system's randomness and
    /// writes it to `path` (which must not exist).
    pub fn create(path: &Path) -> Result<KeyFile, KeyFileError> {
        let secret: [u8; 32] = ed25519::SecretKey::generate()
            .as_ref()
            .try_into()
            .expect("ed25519 secrets are 32 bytes");
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let io = |source| KeyFileError::Io { path: path.to_path_buf(), source };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                KeyFileError::Exists(path.to_path_buf())
            } else {
                KeyFileError::Io { path: path.to_path_buf(), source: e }
            }
        })?;
        file.write_all(format!("{hex}\n").as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(KeyFile { secret })
    }

    /// Reads the key at `path`.
    pub fn load(path: &Path) -> Result<KeyFile, KeyFileError> {
        let text = fs::read_to_string(path)
            .map_err(|source| KeyFileError::Io { path: path.to_path_buf(), source })?;
        let hex = text.trim();
        let malformed = || KeyFileError::Malformed(path.to_path_buf());
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(malformed());
        }
        let mut secret = [0u8; 32];
        for (i, byte) in secret.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| malformed())?;
        }
        Ok(KeyFile { secret })
    }

    /// The libp2p key pair.
    pub fn keypair(&self) -> Keypair {
        let mut secret = self.secret;
        Keypair::ed25519_from_bytes(&mut secret).expect("32 bytes is a valid ed25519 secret")
    }

    /// The signing identity the core uses.
    pub fn identity(&self) -> Identity {
        Identity::from_secret(self.secret)
    }

    /// The PeerId.
    pub fn peer_id(&self) -> libp2p::PeerId {
        self.keypair().public().to_peer_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_is_the_core_user_id() {
        let dir = std::env::temp_dir().join(format!("kith-key-{}", std::process::id()));
        let path = dir.join("k.key");
        let _ = fs::remove_file(&path);
        let key = KeyFile::create(&path).unwrap();
        assert!(matches!(KeyFile::create(&path), Err(KeyFileError::Exists(_))));
        let again = KeyFile::load(&path).unwrap();
        assert_eq!(again.peer_id(), key.peer_id());
        assert_eq!(key.identity().user().to_string(), key.peer_id().to_string());
        fs::write(&path, "zz").unwrap();
        assert!(matches!(KeyFile::load(&path), Err(KeyFileError::Malformed(_))));
        let _ = fs::remove_dir_all(&dir);
    }
}
