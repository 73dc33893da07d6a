//! What the file workload shares through the world, and what it did.

use kith_core::files::FileId;
use kith_core::im::identity::UserId;
use kith_core::im::protocol::{FileInfo, RoomId};
use kith_core::rng::SeededRng;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The room the file clients share.
pub fn files_room() -> RoomId {
    RoomId::Group("files".into())
}

/// What the file workload shares through the world.
#[derive(Debug)]
pub struct FileWorld {
    /// Draws the chunk wire's faults and the blob stores' latencies (a
    /// stream of its own, so seeds without files replay as before).
    pub rng: SeededRng,
    /// Probability that a chunk answer has a bit flipped on the way.
    pub corrupt: f64,
    /// Answers corrupted so far.
    pub corrupted: u64,
    /// Where each file client listens, for replicas fetching an upload.
    pub client_addrs: BTreeMap<UserId, SocketAddr>,
    /// Every acknowledged file message.
    pub sent: Vec<SentFile>,
    /// What the owner fetched after the heal, once it has.
    pub retrieved: Option<Vec<(FileId, Result<(), String>)>>,
    /// File clients whose workload has ended (their last send answered).
    pub finished: usize,
    /// Downloads clients completed, verified.
    pub fetched: u64,
    /// Stored copies a fault rotted.
    pub rotted: u64,
    /// The outsider's user, once it runs: the chat clients' stranger.
    pub outsider: Option<UserId>,
}

/// What the file workload did in one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileCounts {
    /// File messages acknowledged.
    pub sent: u64,
    /// Downloads clients completed, verified.
    pub fetched: u64,
    /// Chunk answers corrupted on the wire.
    pub corrupted: u64,
    /// Stored copies rotted on a replica's disk.
    pub rotted: u64,
}

impl std::fmt::Display for FileCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "files {} sent {} fetched {} answers corrupted {} copies rotted",
            self.sent, self.fetched, self.corrupted, self.rotted
        )
    }
}

impl FileWorld {
    /// No files yet.
    pub fn new(seed: u64) -> FileWorld {
        FileWorld {
            rng: SeededRng::new(seed ^ 0x6669_6c65_7321),
            corrupt: 0.0,
            corrupted: 0,
            client_addrs: BTreeMap::new(),
            sent: Vec::new(),
            retrieved: None,
            finished: 0,
            fetched: 0,
            rotted: 0,
            outsider: None,
        }
    }

    /// What the workload did so far.
    pub fn counts(&self) -> FileCounts {
        FileCounts {
            sent: self.sent.len() as u64,
            fetched: self.fetched,
            corrupted: self.corrupted,
            rotted: self.rotted,
        }
    }

    /// Contents some acknowledged message refers to whose deletion nobody
    /// asked for, each once.
    pub(super) fn standing(&self) -> Vec<FileId> {
        let mut files: Vec<FileId> =
            self.sent.iter().filter(|s| !s.deleting).map(|s| s.info.id).collect();
        files.sort();
        files.dedup();
        files
    }
}

/// An acknowledged file message.
#[derive(Clone, Debug)]
pub struct SentFile {
    /// What it carries.
    pub info: FileInfo,
    /// Its room and position.
    pub room: RoomId,
    /// Its position.
    pub seq: u64,
    /// The client that sent it.
    pub by: usize,
    /// Its deletion was submitted.
    pub deleting: bool,
}
