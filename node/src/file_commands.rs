//! `kith file`: send a file into a room, fetch one, list a room's files.
//!
//! Sending hashes the file (its id and hash tree), serves it on
//! `/kith/chunks/1` while replicas store it (`StoreFile`, driven by
//! `file_upload`), then sends
//! the file message, which is answered once a majority of replicas hold
//! the content. The signed message is kept on disk until it is answered:
//! running the same command again after an interruption resends that very
//! command (never a second message), and the replica's fetch goes on from
//! what it already has.
//!
//! Fetching asks every replica the client knows, verifies each chunk group
//! against the file's root as it arrives, and keeps a resumable partial
//! copy under `$KITH_HOME/blobs`: running it again fetches only what is
//! missing. The file appears at its path whole, or not at all.

use crate::cli::{Cli, FileCommand};
use crate::render::{self, human_bytes};
use crate::session::Session;
use crate::settings;
use crate::transfer_progress::TransferProgress;
use anyhow::{anyhow, bail, Context, Result};
use kith_core::files::download::DownloadError;
use kith_core::files::FileId;
use kith_core::im::protocol::{
    EntryKind, FileInfo, Operation, QueryKind, QueryReply, RoomEntry, RoomId, SignedCommand,
};
use kith_core::limits;
use kith_io_tokio::client::now_ms;
use kith_io_tokio::files::fetch::FetchError;
use kith_io_tokio::files::local_files::LocalFile;
use kith_io_tokio::storage::BlobStore;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a file message may wait for its answer (the replica answers
/// once a majority holds the content, asking to retry every minute).
const SEND_PATIENCE: Duration = Duration::from_secs(30 * 60);
/// Entries `file ls` and the resend check look through at most.
const SCAN_ENTRIES_MAX: usize = 10_000;

/// Runs one `kith file` command.
pub async fn run(cli: &Cli, command: FileCommand) -> Result<()> {
    let mut s = Session::open(cli).await?;
    match command {
        FileCommand::Send { room, path, caption, media_type } => {
            send(cli, &mut s, &room, &path, caption.unwrap_or_default(), media_type).await
        }
        FileCommand::Get { room, file, output } => get(cli, &mut s, &room, &file, output).await,
        FileCommand::Ls { room, limit } => ls(cli, &mut s, &room, limit).await,
    }
}

async fn send(
    cli: &Cli,
    s: &mut Session,
    room: &str,
    path: &Path,
    caption: String,
    media_type: Option<String>,
) -> Result<()> {
    let room = s.resolve_room(room).await?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("{} does not name a file", path.display()))?;
    let media_type = media_type.unwrap_or_else(|| {
        mime_guess::from_path(path).first_or_octet_stream().essence_str().to_string()
    });
    let local = hash(cli, path).await?;
    let file = local.id;
    s.client.local_files().offer(local.clone())?;
    let helpers = crate::file_upload::upload(cli.json, s, &local).await?;

    let info = FileInfo { id: file, name, media_type };
    let pending = PendingSend::new(cli, s, &room, &info, &caption);
    let fresh = |c: &SignedCommand| {
        let issued_at_ms = c.decode_body().map_or(0, |b| b.issued_at_ms);
        now_ms() < issued_at_ms + limits::COMMAND_AGE_MAX_MS / 2
    };
    let command = match pending.load() {
        Some(command) if fresh(&command) => command,
        stale => {
            if stale.is_some() {
                if let Some(seq) = already_sent(s, &room, file).await? {
                    pending.remove();
                    return report_sent(cli, s, &room, seq).await;
                }
            }
            let to = s.target_of(room.clone());
            let command = s.client.sign(Operation::SendFile { to, file: info, caption });
            pending.save(&command)?;
            command
        }
    };
    s.client.patience = SEND_PATIENCE;
    let outcome = s.client.submit_signed(&command).await?;
    pending.remove();
    drop(helpers);
    s.client.local_files().withdraw(file);
    let receipt = outcome.result.map_err(|e| anyhow!("the file message was refused: {e}"))?;
    render::receipt(cli, s, &receipt).await;
    Ok(())
}

/// Reads the file once for its id and hash tree.
async fn hash(cli: &Cli, path: &Path) -> Result<Arc<LocalFile>> {
    let size =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    let progress = TransferProgress::new(cli.json, "hashing", size);
    let (owned, shown) = (path.to_path_buf(), progress.clone());
    let local = tokio::task::spawn_blocking(move || LocalFile::open(&owned, |n| shown.set(n)))
        .await
        .context("hashing stopped")??;
    progress.finish(size);
    Ok(Arc::new(local))
}

/// A file message signed and not yet answered, kept so that a rerun sends
/// the same command. Named by everything the message says, so a rerun
/// with another caption or room is a new message.
struct PendingSend {
    path: PathBuf,
}

impl PendingSend {
    fn new(cli: &Cli, s: &Session, room: &RoomId, info: &FileInfo, caption: &str) -> PendingSend {
        let mut key = blake3::Hasher::new();
        let what = (s.me, room, info, caption);
        key.update(&postcard::to_allocvec(&what).expect("encodes"));
        let home = settings::home(cli.home.as_deref());
        let name = format!("{}-{}", s.local_name, &key.finalize().to_hex()[..32]);
        PendingSend { path: home.join("pending").join(name) }
    }

    fn load(&self) -> Option<SignedCommand> {
        let bytes = std::fs::read(&self.path).ok()?;
        postcard::from_bytes(&bytes).ok()
    }

    fn save(&self, command: &SignedCommand) -> Result<()> {
        let dir = self.path.parent().expect("inside the home");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let bytes = postcard::to_allocvec(command).expect("encodes");
        std::fs::write(&self.path, bytes)
            .with_context(|| format!("writing {}", self.path.display()))
    }

    fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The newest entry of this user's in `room` that sends `file`, if any
/// (for a kept command too old to resend: it may have been applied).
async fn already_sent(s: &mut Session, room: &RoomId, file: FileId) -> Result<Option<u64>> {
    let me = s.me;
    let found = scan_files(s, room, SCAN_ENTRIES_MAX, |e| {
        e.author == me && matches!(&e.kind, EntryKind::File(f) if f.file.id == file)
    })
    .await?;
    Ok(found.last().map(|e| e.seq))
}

async fn report_sent(cli: &Cli, s: &mut Session, room: &RoomId, seq: u64) -> Result<()> {
    let receipt = kith_core::im::protocol::Receipt::Appended { room: room.clone(), seq };
    render::receipt(cli, s, &receipt).await;
    Ok(())
}

/// Entries of `room` that `keep` takes, oldest first, looking back through
/// at most `scan` entries from the newest. A room this user may not read
/// is the replica's refusal, as an error.
async fn scan_files(
    s: &mut Session,
    room: &RoomId,
    scan: usize,
    keep: impl Fn(&RoomEntry) -> bool,
) -> Result<Vec<RoomEntry>> {
    let (mut kept, mut seen, mut before) = (Vec::new(), 0, None);
    while seen < scan {
        let limit = (scan - seen).min(limits::PAGE_ENTRIES_MAX) as u32;
        let kind = QueryKind::History { room: room.clone(), after: None, before, limit };
        let QueryReply::Page(page) = s.query(kind).await? else {
            bail!("unexpected answer to a history query");
        };
        seen += page.entries.len();
        let first = page.entries.first().map(|e| e.seq);
        kept.extend(page.entries.into_iter().rev().filter(|e| keep(e)));
        match (page.next, first) {
            (Some(_), Some(first)) if first > 1 => before = Some(first),
            _ => break,
        }
    }
    kept.reverse();
    Ok(kept)
}

async fn get(
    cli: &Cli,
    s: &mut Session,
    room: &str,
    which: &str,
    output: Option<PathBuf>,
) -> Result<()> {
    let room = s.resolve_room(room).await?;
    let (file, name) = find_file(s, &room, which).await?;
    let output = output.unwrap_or_else(|| PathBuf::from(&name));
    if output.exists() {
        bail!("{} already exists; pass -o PATH to save it elsewhere", output.display());
    }
    let home = settings::home(cli.home.as_deref());
    let store = BlobStore::open(home.join("blobs"))
        .with_context(|| format!("opening the file store in {}", home.display()))?;
    let progress = TransferProgress::new(cli.json, "fetching", file.size_bytes);
    let shown = progress.clone();
    let fetched = if store.has(file) {
        None
    } else {
        match s.client.fetch_file(&store, file, |p| shown.set(p.verified_bytes)).await {
            Ok(fetched) => Some(fetched),
            Err(FetchError::Download(DownloadError::NoSources { dropped: 0, refused }))
                if refused > 0 =>
            {
                bail!(
                    "the replicas refused {name}: it is not shown in a room you can read (a file \
                     id must be one `kith file ls` lists), or its message was deleted"
                )
            }
            Err(FetchError::Download(DownloadError::NoSources { .. })) => bail!(
                "no replica would serve {name}: it is not shown in a room you can read (a file \
                 id must be one `kith file ls` lists), its message was deleted, or no replica \
                 reachable from here holds it; what was fetched is kept for a rerun"
            ),
            Err(e) => return Err(e).with_context(|| format!("fetching {name}")),
        }
    };
    progress.finish(file.size_bytes);
    store.export(file, &output).with_context(|| format!("saving {}", output.display()))?;
    let (resumed, received) =
        fetched.map_or((file.size_bytes, 0), |f| (f.resumed_bytes, f.received_bytes));
    if cli.json {
        let done = json!({
            "ok": "fetched",
            "file": file.to_string(),
            "path": output.display().to_string(),
            "size_bytes": file.size_bytes,
            "resumed_bytes": resumed,
            "received_bytes": received,
        });
        println!("{done}");
    } else {
        let size = human_bytes(file.size_bytes);
        let resumed =
            if resumed > 0 { format!(", {} resumed", human_bytes(resumed)) } else { String::new() };
        println!("saved {} ({size}, verified{resumed})", output.display());
    }
    Ok(())
}

/// The file `which` names in `room`: a sequence number (its entry must be
/// a file) or a file id. Either way the room must be readable by this user.
async fn find_file(s: &mut Session, room: &RoomId, which: &str) -> Result<(FileId, String)> {
    if let Ok(file) = which.parse::<FileId>() {
        // Refused here, clearly, if the user may not read the room.
        scan_files(s, room, 1, |_| false).await?;
        return Ok((file, file.to_string()));
    }
    let seq: u64 = which
        .parse()
        .map_err(|_| anyhow!("{which:?} is neither a sequence number nor a file id (HEX-SIZE)"))?;
    let kind = QueryKind::History {
        room: room.clone(),
        after: Some(seq.saturating_sub(1)),
        before: Some(seq.saturating_add(1)),
        limit: 1,
    };
    let QueryReply::Page(page) = s.query(kind).await? else {
        bail!("unexpected answer to a history query");
    };
    match page.entries.into_iter().next().map(|e| e.kind) {
        Some(EntryKind::File(f)) if f.message.deleted => {
            bail!("entry {seq} was a file, now deleted")
        }
        Some(EntryKind::File(f)) => Ok((f.file.id, f.file.name)),
        Some(_) => bail!("entry {seq} is not a file (`kith file ls` lists the room's files)"),
        None => bail!("the room has no entry {seq}"),
    }
}

async fn ls(cli: &Cli, s: &mut Session, room: &str, limit: u32) -> Result<()> {
    let room = s.resolve_room(room).await?;
    let is_file = |e: &RoomEntry| matches!(&e.kind, EntryKind::File(f) if !f.message.deleted);
    let mut files = scan_files(s, &room, SCAN_ENTRIES_MAX, is_file).await?;
    let skip = files.len().saturating_sub(limit as usize);
    files.drain(..skip);
    if files.is_empty() && !cli.json {
        println!("no files in {}", s.room_label(&room).await);
    }
    for entry in &files {
        let EntryKind::File(f) = &entry.kind else { continue };
        let author = s.name_of(entry.author).await;
        if cli.json {
            let line = json!({
                "seq": entry.seq,
                "name": f.file.name,
                "media_type": f.file.media_type,
                "size_bytes": f.file.id.size_bytes,
                "file": f.file.id.to_string(),
                "author_name": author,
                "caption": f.message.text,
            });
            println!("{line}");
        } else {
            let size = human_bytes(f.file.id.size_bytes);
            println!("{:>6}  {:<32} {:>10}  {author}  {}", entry.seq, f.file.name, size, f.file.id);
        }
    }
    Ok(())
}
