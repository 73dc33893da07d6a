//! `kith init`, `kith node`, `kith cluster`.

use crate::cli::{Cli, ClusterCommand, InitArgs, NodeArgs};
use crate::session::connect_as;
use crate::settings;
use anyhow::{bail, Context, Result};
use kith_core::wire::replica_protocol::{
    AdminRequest, AdminResponse, ClusterStatus, ReplicaRecord,
};
use kith_io_tokio::key_file::KeyFile;
use kith_io_tokio::net::behaviour::SwarmOptions;
use kith_io_tokio::peer_ids::node_id_of;
use kith_io_tokio::replica::{self, ReplicaOptions, StartMode};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde_json::json;
use std::path::Path;

/// Creates a data directory with a fresh node key.
pub fn init(cli: &Cli, args: &InitArgs) -> Result<()> {
    let key = init_dir(&args.dir)?;
    let peer = key.peer_id();
    if cli.json {
        println!(
            "{}",
            json!({ "peer_id": peer.to_string(), "node_id": node_id_of(&peer).get(), "dir": args.dir })
        );
    } else {
        println!("{peer}");
        eprintln!("replica key written to {}", args.dir.join("node.key").display());
    }
    Ok(())
}

/// Creates `dir` and its key (refusing to overwrite one).
pub fn init_dir(dir: &Path) -> Result<KeyFile> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(KeyFile::create(&dir.join("node.key"))?)
}

fn parse_addr(text: &str) -> Result<Multiaddr> {
    text.parse()
        .with_context(|| format!("{text:?} is not a multiaddr (e.g. /ip4/127.0.0.1/tcp/7001)"))
}

/// Runs a replica until SIGINT or SIGTERM.
pub async fn node(args: NodeArgs, mdns: bool) -> Result<()> {
    let mut options = ReplicaOptions::new(args.dir.clone());
    options.listen = args.listen.iter().map(|a| parse_addr(a)).collect::<Result<_>>()?;
    options.mode = if args.bootstrap {
        StartMode::Bootstrap
    } else if !args.join.is_empty() {
        StartMode::Join(args.join.iter().map(|a| parse_addr(a)).collect::<Result<_>>()?)
    } else {
        StartMode::Resume
    };
    options.admins = args
        .admin
        .iter()
        .map(|p| p.parse::<PeerId>().with_context(|| format!("--admin {p:?} is not a PeerId")))
        .collect::<Result<_>>()?;
    options.metrics = args.metrics;
    options.swarm =
        SwarmOptions { relay_server: args.relay_server, mdns, ..SwarmOptions::default() };
    if args.snapshot_every == 0 {
        bail!("--snapshot-every must be at least 1");
    }
    options.snapshot_threshold_entries = args.snapshot_every;
    replica::run(options, shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `kith cluster ...`, as the selected user (who must be an admin to change membership).
pub async fn cluster(cli: &Cli, command: ClusterCommand) -> Result<()> {
    let home = settings::home(cli.home.as_deref());
    let config = settings::load_config(&home)?;
    let (_, key) = settings::user_key(&home, cli.user.as_deref(), &config)?;
    let request = match command {
        ClusterCommand::Status => AdminRequest::Status,
        ClusterCommand::Add { addr, learner } => {
            let addr = parse_addr(&addr)?;
            let Some(Protocol::P2p(peer)) = addr.iter().last() else {
                bail!("{addr} must end in /p2p/PEERID (the PeerId `kith init` printed)");
            };
            let dial: Multiaddr = addr.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect();
            AdminRequest::Add {
                replica: ReplicaRecord { peer: peer.to_bytes(), addrs: vec![dial.to_vec()] },
                learner,
            }
        }
        ClusterCommand::Remove { peer } => {
            let peer: PeerId = peer.parse().with_context(|| format!("{peer:?} is not a PeerId"))?;
            AdminRequest::Remove { peer: peer.to_bytes() }
        }
    };
    let mut client = connect_as(cli, &key).await?;
    match client.admin(request).await? {
        AdminResponse::Status(s) | AdminResponse::Changed(s) => print_status(cli, &s),
        AdminResponse::Refused(why) => bail!("refused: {why}"),
        AdminResponse::Retry(why) => bail!("not done, try again: {why}"),
        other => bail!("unexpected answer: {other:?}"),
    }
    Ok(())
}

fn print_status(cli: &Cli, s: &ClusterStatus) {
    if cli.json {
        let members: Vec<_> = s
            .members
            .iter()
            .map(|m| json!({ "node_id": m.id.get(), "peer_id": m.peer, "role": m.role, "connected": m.connected }))
            .collect();
        println!(
            "{}",
            json!({
                "node_id": s.id.get(), "role": s.role, "term": s.term.get(),
                "leader": s.leader.map(|l| l.get()), "commit": s.commit.get(),
                "applied": s.applied.get(), "snapshot_index": s.snapshot_index.get(),
                "members": members,
            })
        );
        return;
    }
    println!(
        "replica {} is {} in term {}; leader {}; commit {} applied {} snapshot {}",
        s.id,
        s.role,
        s.term,
        s.leader.map_or("unknown".into(), |l| l.to_string()),
        s.commit,
        s.applied,
        s.snapshot_index
    );
    for m in &s.members {
        println!(
            "  {:>16} {:<8} {} {}",
            m.id,
            m.role,
            if m.connected { "connected   " } else { "disconnected" },
            m.peer.as_deref().unwrap_or("(address unknown)")
        );
    }
}
