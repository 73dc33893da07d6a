//! Where the client commands find their node, their user and their keys:
//! flags first, then `KITH_NODE` / `KITH_USER` / `KITH_HOME`, then the
//! config file `kith dev` writes (`$KITH_HOME/config.json`).

use anyhow::{bail, Context, Result};
use kith_io_tokio::key_file::KeyFile;
use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The client config file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClientConfig {
    /// Replica addresses to try, in order.
    pub nodes: Vec<String>,
    /// The default user.
    #[serde(default)]
    pub user: Option<String>,
}

/// `$KITH_HOME`, else `~/.kith`.
pub fn home(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(h) = std::env::var_os("KITH_HOME") {
        return PathBuf::from(h);
    }
    std::env::var_os("HOME")
        .map_or_else(|| PathBuf::from(".kith"), |h| PathBuf::from(h).join(".kith"))
}

/// Reads the config file, if there is one.
pub fn load_config(home: &Path) -> Result<ClientConfig> {
    let path = home.join("config.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| {
            format!("{} is not a valid kith config; fix or delete it", path.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientConfig::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the config file.
pub fn save_config(home: &Path, config: &ClientConfig) -> Result<()> {
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    let path = home.join("config.json");
    let text = serde_json::to_string_pretty(config).expect("config encodes");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// The replica addresses to try: those `discovered` on the local network
/// first, then the flag's, `KITH_NODE`'s or the config's.
pub fn node_addrs(
    flag: Option<&str>,
    config: &ClientConfig,
    discovered: Vec<Multiaddr>,
) -> Result<Vec<Multiaddr>> {
    let listed: Vec<String> =
        match flag.map(str::to_string).or_else(|| std::env::var("KITH_NODE").ok()) {
            Some(one) => vec![one],
            None => config.nodes.clone(),
        };
    if listed.is_empty() && discovered.is_empty() {
        bail!("no node address: pass --node MULTIADDR, set KITH_NODE, start `kith dev` (it writes a config), or find a replica on the local network with --mdns");
    }
    let configured = listed.iter().map(|a| {
        a.parse::<Multiaddr>()
            .with_context(|| format!("{a:?} is not a multiaddr (e.g. /ip4/127.0.0.1/tcp/7001)"))
    });
    discovered.into_iter().map(Ok).chain(configured).collect()
}

/// Validates a local key name (also the file name).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && !name.starts_with('.');
    if !ok {
        bail!("{name:?} is not a valid name: use 1 to 32 of A-Z a-z 0-9 . - _");
    }
    Ok(())
}

/// The key file of local user `name`.
pub fn user_key_path(home: &Path, name: &str) -> PathBuf {
    home.join("users").join(format!("{name}.key"))
}

/// The user to act as, and their key.
pub fn user_key(
    home: &Path,
    flag: Option<&str>,
    config: &ClientConfig,
) -> Result<(String, KeyFile)> {
    let name = flag
        .map(str::to_string)
        .or_else(|| std::env::var("KITH_USER").ok())
        .or_else(|| config.user.clone())
        .context("no user: pass --as NAME or set KITH_USER (create one with `kith id new NAME`)")?;
    check_name(&name)?;
    let path = user_key_path(home, &name);
    if !path.exists() {
        bail!(
            "no key for user {name:?} at {}: create it with `kith id new {name}`",
            path.display()
        );
    }
    Ok((name, KeyFile::load(&path)?))
}
