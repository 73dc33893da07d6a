//! A connected user: the client, who they are, and name lookups.

use crate::cli::Cli;
use crate::settings;
use anyhow::{anyhow, bail, Context, Result};
use kith_core::im::identity::UserId;
use kith_core::im::protocol::{Operation, QueryKind, QueryReply, Receipt, RoomId, Target};
use kith_core::wire::client_protocol::CommandOutcome;
use kith_io_tokio::client::Client;
use kith_io_tokio::key_file::KeyFile;
use kith_io_tokio::net::discovery::discover_clusters;
use libp2p::Multiaddr;
use std::collections::BTreeMap;
use std::time::Duration;

/// A user's connection to the cluster.
pub struct Session {
    pub client: Client,
    pub me: UserId,
    pub local_name: String,
    names: BTreeMap<UserId, String>,
}

/// How long `--mdns` listens for replicas before giving up.
const DISCOVERY_WAIT: Duration = Duration::from_secs(5);

/// Connects to the first reachable replica of those found (`--mdns`) and
/// configured.
pub async fn connect_as(cli: &Cli, key: &KeyFile) -> Result<Client> {
    let home = settings::home(cli.home.as_deref());
    let config = settings::load_config(&home)?;
    let discovered = if cli.mdns { discovered_replicas().await? } else { Vec::new() };
    let addrs = settings::node_addrs(cli.node.as_deref(), &config, discovered)?;
    Ok(Client::connect_any(key, addrs).await?)
}

/// The replicas of the one cluster found by mDNS (none found is not an
/// error while an address is configured; two clusters found is).
async fn discovered_replicas() -> Result<Vec<Multiaddr>> {
    let mut clusters = discover_clusters(DISCOVERY_WAIT).await?;
    if clusters.len() > 1 {
        let each: Vec<String> =
            clusters.iter().map(|c| format!("  --node {}", c.replicas[0])).collect();
        bail!(
            "{} kith clusters answered on this network; pick one with --node (or KITH_NODE):\n{}",
            clusters.len(),
            each.join("\n")
        );
    }
    let Some(cluster) = clusters.pop() else {
        tracing::warn!(
            "no replica answered mDNS within {DISCOVERY_WAIT:?}: is one running with `kith node --mdns` on this network, listening on a LAN address or 0.0.0.0?"
        );
        return Ok(Vec::new());
    };
    Ok(cluster.replicas)
}

impl Session {
    /// Opens a session as the selected user.
    pub async fn open(cli: &Cli) -> Result<Session> {
        let home = settings::home(cli.home.as_deref());
        let config = settings::load_config(&home)?;
        let (local_name, key) = settings::user_key(&home, cli.user.as_deref(), &config)?;
        let client = connect_as(cli, &key).await?;
        let me = key.identity().user();
        Ok(Session { client, me, local_name, names: BTreeMap::new() })
    }

    /// Submits and turns an IM refusal into an error.
    pub async fn submit(&mut self, op: Operation) -> Result<Receipt> {
        let CommandOutcome { result, .. } = self.client.submit(op).await?;
        result.map_err(|e| anyhow!("{e}"))
    }

    /// A query's reply, or the IM error as an error.
    pub async fn query(&mut self, kind: QueryKind) -> Result<QueryReply> {
        self.client.query(kind).await?.map_err(|e| anyhow!("{e}"))
    }

    /// A user by registered name or PeerId.
    pub async fn resolve_user(&mut self, text: &str) -> Result<UserId> {
        let text = text.trim_start_matches('@');
        if let Ok(user) = UserId::from_peer_id(text) {
            return Ok(user);
        }
        match self.query(QueryKind::UserByName { name: text.to_string() }).await? {
            QueryReply::User(Some(info)) => {
                self.names.insert(info.user, info.name);
                Ok(info.user)
            }
            _ => bail!("no user is registered as {text:?} (they run `kith --as NAME register`)"),
        }
    }

    /// A room: `#name` or `name` for a group, `@user` for the direct room
    /// with them, `@a+b` for the direct room of users `a` and `b`.
    ///
    /// The `@a+b` form names a direct room the caller may not belong to, so
    /// that "who can read it" is a question the replica answers (it refuses
    /// everyone but the two) rather than one the CLI cannot even ask. `+`
    /// appears in neither registered names nor PeerIds, so it is unambiguous.
    pub async fn resolve_room(&mut self, text: &str) -> Result<RoomId> {
        if let Some(users) = text.strip_prefix('@') {
            if let Some((a, b)) = users.split_once('+') {
                let a = self.resolve_user(a).await?;
                let b = self.resolve_user(b).await?;
                return Ok(RoomId::direct(a, b));
            }
            let other = self.resolve_user(users).await?;
            return Ok(RoomId::direct(self.me, other));
        }
        let name = text.trim_start_matches('#');
        if name.is_empty() {
            bail!("empty room name");
        }
        Ok(RoomId::Group(name.to_string()))
    }

    /// Where a message to `room` goes: the direct room with the other user
    /// is addressed to them (it is created on first use); any other room,
    /// including someone else's pair (`@a+b`, which the replica refuses),
    /// as itself.
    pub fn target_of(&self, room: RoomId) -> Target {
        match room {
            RoomId::Direct(a, b) if a == self.me || b == self.me => {
                Target::User(if a == self.me { b } else { a })
            }
            other => Target::Room(other),
        }
    }

    /// A user's display name (their PeerId's tail when unregistered).
    pub async fn name_of(&mut self, user: UserId) -> String {
        if let Some(n) = self.names.get(&user) {
            return n.clone();
        }
        let name = match self.client.query(QueryKind::User { user }).await {
            Ok(Ok(QueryReply::User(Some(info)))) => info.name,
            _ => {
                let s = user.to_string();
                format!("…{}", &s[s.len().saturating_sub(6)..])
            }
        };
        self.names.insert(user, name.clone());
        name
    }

    /// How to show a room to this user.
    pub async fn room_label(&mut self, room: &RoomId) -> String {
        match room {
            RoomId::Group(name) => format!("#{name}"),
            RoomId::Direct(a, b) if *a == self.me || *b == self.me => {
                let other = if *a == self.me { *b } else { *a };
                format!("@{}", self.name_of(other).await)
            }
            // Someone else's pair, in the form `resolve_room` reads back.
            RoomId::Direct(a, b) => {
                format!("@{}+{}", self.name_of(*a).await, self.name_of(*b).await)
            }
        }
    }
}

/// Parses `--since`: epoch milliseconds, or an age like 30s, 10m, 2h, 1d.
pub fn parse_since(text: &str, now_ms: u64) -> Result<u64> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let (num, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = num.parse().with_context(|| {
        format!(
            "--since {text:?}: use milliseconds since the epoch or an age like 30s, 10m, 2h, 1d"
        )
    })?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--since {text:?}: the unit must be s, m, h or d"),
    };
    Ok(now_ms.saturating_sub(secs * 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_ages_and_epoch_millis() {
        assert_eq!(parse_since("1700000000000", 0).unwrap(), 1_700_000_000_000);
        assert_eq!(parse_since("10m", 1_000_000).unwrap(), 400_000);
        assert!(parse_since("10y", 0).is_err());
        assert!(parse_since("", 0).is_err());
    }
}
