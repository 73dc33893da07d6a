//! The command line (clap). The forms here are the contract the README
//! documents; change them only together.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// kith: chat whose every acknowledged message survives crashes and partitions.
#[derive(Clone, Debug, Parser)]
#[command(name = "kith", version)]
pub struct Cli {
    /// Act as this local user (else KITH_USER, else the config's user).
    #[arg(id = "as_user", long = "as", global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// Talk to the replica at this multiaddr (else KITH_NODE, else the config).
    #[arg(long, global = true, value_name = "MULTIADDR")]
    pub node: Option<String>,
    /// Where keys and the client config live (else KITH_HOME, else ~/.kith).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Print one JSON object per line, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    /// Multicast DNS on the local network: a client finds replicas run with
    /// `kith node --mdns` (tried before any configured address; no config
    /// needed); a replica answers such clients and learns peers' addresses.
    #[arg(long, global = true)]
    pub mdns: bool,
    /// Log format on stderr (RUST_LOG sets the level).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What to do.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Start a local cluster on 127.0.0.1 and write a client config.
    Dev(DevArgs),
    /// Create a replica's data directory and key; prints its PeerId.
    Init(InitArgs),
    /// Run a replica.
    Node(NodeArgs),
    /// Cluster membership.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Local user keys.
    #[command(subcommand)]
    Id(IdCommand),
    /// Register the user's display name (defaults to the local key name).
    Register {
        /// The display name.
        name: Option<String>,
    },
    /// Rooms.
    #[command(subcommand)]
    Room(RoomCommand),
    /// Send a message to a room.
    Send {
        /// The room.
        room: String,
        /// The text.
        text: String,
    },
    /// Send a direct message to a user (by name or PeerId).
    Dm {
        /// The user.
        user: String,
        /// The text.
        text: String,
    },
    /// Replace the text of one of your messages.
    Edit {
        /// The room (or @user).
        room: String,
        /// The message's sequence number (as `history` shows it).
        seq: u64,
        /// The new text.
        text: String,
    },
    /// Delete a message: your own, or any as a room admin.
    Delete {
        /// The room (or @user).
        room: String,
        /// The message's sequence number.
        seq: u64,
    },
    /// React to a message (or take your reaction back with --remove).
    React {
        /// The room (or @user).
        room: String,
        /// The message's sequence number.
        seq: u64,
        /// The reaction: an emoji or a short word (at most 32 bytes).
        reaction: String,
        /// Take the reaction back.
        #[arg(long)]
        remove: bool,
    },
    /// A room's history, oldest first.
    History {
        /// The room (or @user for a direct room, @a+b for the direct room of a and b).
        room: String,
        /// At most this many entries: the newest, or with --since the
        /// oldest from that time (fetched in pages, so any number).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only entries before this sequence number.
        #[arg(long)]
        before: Option<u64>,
        /// Only entries since this time: milliseconds since the UNIX epoch,
        /// or an age such as 30s, 10m, 2h, 1d.
        #[arg(long)]
        since: Option<String>,
    },
    /// Follow a room live.
    Tail {
        /// The room (or @user).
        room: String,
        /// Start after this sequence number (default: the latest 10 entries).
        #[arg(long)]
        from: Option<u64>,
    },
    /// Everything unread since the last read, across rooms; then marks it read.
    Inbox,
    /// Announce presence (online, away, offline), or show others' with --of.
    Presence {
        /// Status to announce.
        #[arg(value_enum)]
        status: Option<StatusArg>,
        /// Show these users' presence instead (names or PeerIds).
        #[arg(long, num_args = 1..)]
        of: Vec<String>,
    },
    /// Tell the room you are typing (notices lapse after 6 s; --stop ends one).
    Typing {
        /// The room (or @user).
        room: String,
        /// Say you stopped typing.
        #[arg(long)]
        stop: bool,
    },
    /// Files: send one into a room, fetch one, list a room's files.
    #[command(subcommand)]
    File(FileCommand),
    /// Interactive chat: live messages, presence, send by typing.
    Chat {
        /// The room to open.
        room: Option<String>,
    },
    /// Contacts and requests: list them (no subcommand), ask, answer, end.
    Contacts {
        #[command(subcommand)]
        command: Option<ContactCommand>,
    },
    /// Block a user: no requests, invitations, presence or typing from
    /// them reach you, and their messages are hidden. They are not told.
    Block {
        /// The user (name or PeerId).
        user: String,
    },
    /// Lift a block: what was hidden shows again.
    Unblock {
        /// The user (name or PeerId).
        user: String,
    },
    /// Who has read how far in a room; or, with --share/--private,
    /// whether others see how far you have read.
    Reads {
        /// The room (or @user).
        room: Option<String>,
        /// Show others how far you have read (the default).
        #[arg(long, conflicts_with = "private")]
        share: bool,
        /// Keep how far you have read to yourself.
        #[arg(long)]
        private: bool,
    },
}

/// `kith contacts ...`.
#[derive(Clone, Debug, Subcommand)]
pub enum ContactCommand {
    /// Ask a user to become a contact (accepts their request, if any).
    Add {
        /// The user (name or PeerId).
        user: String,
    },
    /// Accept a user's contact or message request.
    Accept {
        /// The user.
        user: String,
    },
    /// Decline a user's request (they are not told).
    Decline {
        /// The user.
        user: String,
    },
    /// Withdraw your request to a user.
    Cancel {
        /// The user.
        user: String,
    },
    /// End a contact (both ways).
    Remove {
        /// The user.
        user: String,
    },
}

/// `kith file`.
#[derive(Clone, Debug, Subcommand)]
pub enum FileCommand {
    /// Send a file into a room: stored on a majority of replicas before it
    /// is announced. Run it again after an interruption to go on.
    Send {
        /// The room (or @user for a direct room).
        room: String,
        /// The file.
        path: PathBuf,
        /// A caption sent with it.
        #[arg(long)]
        caption: Option<String>,
        /// Its media type (default: guessed from the name).
        #[arg(long, value_name = "TYPE/SUBTYPE")]
        media_type: Option<String>,
    },
    /// Fetch a file, verified, from any replica. Run it again after an
    /// interruption to fetch only what is missing.
    Get {
        /// The room (or @user).
        room: String,
        /// The file message's sequence number, or the file id (HEX-SIZE).
        file: String,
        /// Where to save it (default: its name, in this directory).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// List the files in a room, oldest first.
    Ls {
        /// The room (or @user).
        room: String,
        /// At most this many (the newest).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// Roles in a room.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    /// Reads and writes.
    Member,
    /// Also invites, kicks, bans, renames, sets the topic, deletes messages.
    Admin,
    /// Also grants and revokes admin.
    Owner,
}

/// Presence statuses.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StatusArg {
    /// Active.
    Online,
    /// Idle.
    Away,
    /// Gone.
    Offline,
}

/// `kith dev`.
#[derive(Clone, Debug, Args)]
pub struct DevArgs {
    /// Number of replicas.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Where the replicas keep their data (default $KITH_HOME/dev).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// First TCP port (replica i listens on base + i - 1).
    #[arg(long, default_value_t = 7101)]
    pub base_port: u16,
}

/// `kith init`.
#[derive(Clone, Debug, Args)]
pub struct InitArgs {
    /// The data directory to create.
    #[arg(long)]
    pub dir: PathBuf,
}

/// `kith node`.
#[derive(Clone, Debug, Args)]
pub struct NodeArgs {
    /// The data directory (from `kith init`).
    #[arg(long)]
    pub dir: PathBuf,
    /// Listen addresses, e.g. /ip4/0.0.0.0/tcp/7001 or /ip4/0.0.0.0/udp/7001/quic-v1.
    #[arg(long, required = true, num_args = 1..)]
    pub listen: Vec<String>,
    /// Start a new cluster with this replica as its first voter (empty disk only).
    #[arg(long, conflicts_with = "join")]
    pub bootstrap: bool,
    /// Join the cluster at this address; an admin then runs `kith cluster add`.
    #[arg(long, num_args = 1..)]
    pub join: Vec<String>,
    /// PeerIds allowed to change membership (`kith cluster add/remove`).
    #[arg(long, num_args = 1..)]
    pub admin: Vec<String>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9101).
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// Also run a relay server for peers behind NAT.
    #[arg(long)]
    pub relay_server: bool,
    /// Applied entries between snapshots (log compaction).
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_every: u64,
}

/// `kith cluster ...`.
#[derive(Clone, Debug, Subcommand)]
pub enum ClusterCommand {
    /// Members, roles and indexes as one replica sees them.
    Status,
    /// Add the replica at MULTIADDR (must end in /p2p/PEERID).
    Add {
        /// Its address.
        addr: String,
        /// Add as a non-voting learner.
        #[arg(long)]
        learner: bool,
    },
    /// Remove a replica by PeerId.
    Remove {
        /// Its PeerId.
        peer: String,
    },
}

/// `kith id ...`.
#[derive(Clone, Debug, Subcommand)]
pub enum IdCommand {
    /// Create a user key under $KITH_HOME/users.
    New {
        /// The local name of the key.
        name: String,
    },
    /// Print a local user's PeerId.
    Show {
        /// The local name.
        name: String,
    },
    /// List local users.
    List,
}

/// `kith room ...`.
#[derive(Clone, Debug, Subcommand)]
pub enum RoomCommand {
    /// Create a group room (public unless --private).
    Create {
        /// Its name.
        room: String,
        /// Only invited users may join.
        #[arg(long)]
        private: bool,
    },
    /// Invite a user.
    Invite {
        /// The room.
        room: String,
        /// The user (name or PeerId).
        user: String,
    },
    /// Join a room.
    Join {
        /// The room.
        room: String,
    },
    /// Leave a room.
    Leave {
        /// The room.
        room: String,
    },
    /// Remove a member.
    Kick {
        /// The room.
        room: String,
        /// The member (name or PeerId).
        user: String,
    },
    /// Ban a user.
    Ban {
        /// The room.
        room: String,
        /// The user (name or PeerId).
        user: String,
    },
    /// Lift a ban.
    Unban {
        /// The room.
        room: String,
        /// The user (name or PeerId).
        user: String,
    },
    /// Set a member's role (owners grant and revoke admin).
    Role {
        /// The room.
        room: String,
        /// The member (name or PeerId).
        user: String,
        /// The role.
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Rename a room (its title; the room's name in commands stays).
    Rename {
        /// The room.
        room: String,
        /// The new title.
        title: String,
    },
    /// The rooms you belong to.
    List,
    /// Your pending invitations (`room join` accepts one).
    Invites,
    /// Turn down an invitation.
    Decline {
        /// The room.
        room: String,
    },
    /// A room's details and members.
    Info {
        /// The room.
        room: String,
    },
    /// Set a room's topic.
    Topic {
        /// The room.
        room: String,
        /// The topic.
        topic: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_global_user_flag_is_not_confused_with_a_user_argument() {
        // A regression: `--as` once shared its id with `dm USER`, so
        // `kith --as alice dm bob hi` acted as bob.
        let cli = Cli::parse_from(["kith", "--as", "alice", "dm", "bob", "hi"]);
        assert_eq!(cli.user.as_deref(), Some("alice"));
        let Command::Dm { user, text } = cli.command else { panic!("parsed as {:?}", cli.command) };
        assert_eq!((user.as_str(), text.as_str()), ("bob", "hi"));
        let cli = Cli::parse_from(["kith", "room", "invite", "general", "bob", "--as", "ann"]);
        assert_eq!(cli.user.as_deref(), Some("ann"));
    }
}
