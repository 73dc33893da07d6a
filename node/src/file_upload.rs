//! Drives the core's [`Upload`] for `kith file send`: the client's own
//! connection asks slot 0, one more connection per helper slot asks the
//! others, and the offer serves all of them. Which replicas, when to ask
//! again and when it is over are the core's rules (`files::upload`).

use crate::session::Session;
use crate::transfer_progress::TransferProgress;
use anyhow::{bail, Result};
use kith_core::files::upload::{Upload, UploadConfig, UploadInput, UploadOutput};
use kith_core::files::FileId;
use kith_core::limits;
use kith_core::session::StoreReply;
use kith_core::time::DriverClock;
use kith_io_tokio::client::{Client, ClientError, Companion};
use kith_io_tokio::files::local_files::LocalFile;
use std::time::Duration;
use tokio::sync::mpsc;

/// A slot's answer to one `StoreFile`.
type SlotAnswer = (usize, Result<StoreReply, ClientError>);

/// Uploads `local` (which the client offers) until a replica stores it.
/// The returned guard keeps the helpers' connections, and so their
/// replicas' fetches from this client, until it is dropped: once the file
/// message is answered.
pub async fn upload(json: bool, s: &mut Session, local: &LocalFile) -> Result<Helpers> {
    let file = local.id;
    let started = tokio::time::Instant::now();
    let clock = DriverClock::new(0, 0);
    let now = move || clock.at(started.elapsed());
    let files = s.client.local_files().clone();
    let config = UploadConfig::default();
    let upload = Upload::new(now(), file, s.client.addr_count(), files.served_bytes(), config);
    let (answered, answers) = mpsc::channel(upload.slots());
    let helpers = Helpers::start(&s.client, file, upload.slots(), answered.clone());
    let (ask_own, own_asked) = mpsc::channel(1);
    let progress = TransferProgress::new(json, "uploading", file.size_bytes);
    let drive = async {
        let mut answers = answers;
        let mut upload = upload;
        loop {
            while let Some(output) = upload.poll_output() {
                match output {
                    UploadOutput::Ask { slot: 0, .. } => {
                        let _ = ask_own.try_send(());
                    }
                    UploadOutput::Ask { slot, .. } => helpers.ask(slot),
                    UploadOutput::Stored => {
                        progress.finish(file.size_bytes);
                        return Ok(());
                    }
                    UploadOutput::Over(e) => bail!(
                        "{}: {e}; nothing was sent: run the command again to go on",
                        local.path.display()
                    ),
                    other => bail!("an upload step this version does not know: {other:?}"),
                }
            }
            let wake =
                upload.poll_timeout().map(|at| started + Duration::from_micros(at.as_micros()));
            let answer = tokio::select! {
                Some(answer) = answers.recv() => Some(answer),
                _ = sleep_until(wake) => None,
            };
            let at = now();
            upload.handle_input(at, UploadInput::Served { bytes_total: files.served_bytes() });
            match answer {
                Some((slot, reply)) => upload.handle_input(at, input(slot, reply)?),
                None => upload.handle_timeout(at),
            }
            progress.set(upload.progress_bytes());
        }
    };
    tokio::select! {
        done = drive => done.map(|()| helpers),
        () = ask_own_replica(&mut s.client, file, own_asked, answered) => {
            bail!("the upload stopped asking its replica")
        }
    }
}

/// Slot 0: the client's own connection, asked each time the upload says.
async fn ask_own_replica(
    client: &mut Client,
    file: FileId,
    mut asked: mpsc::Receiver<()>,
    answers: mpsc::Sender<SlotAnswer>,
) {
    while asked.recv().await.is_some() {
        let reply = client.store_file(file).await;
        if answers.send((0, reply)).await.is_err() {
            return;
        }
    }
}

/// What a slot's answer tells the upload. A call that failed (no answer,
/// a lost connection) is a fact for it; a replica that does not
/// understand the client's own request ends the command.
fn input(slot: usize, reply: Result<StoreReply, ClientError>) -> Result<UploadInput> {
    match reply {
        Ok(reply) => Ok(UploadInput::Answered { slot, reply }),
        Err(e @ (ClientError::Refused(_) | ClientError::Protocol(_))) if slot == 0 => {
            bail!("{e}")
        }
        Err(e) => {
            tracing::debug!(error = %e, slot, "asking a replica to store the upload failed");
            Ok(UploadInput::Failed { slot })
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The connections of the helper slots, each serving the same offer;
/// dropping this ends them.
pub struct Helpers {
    asks: Vec<mpsc::Sender<()>>,
}

impl Helpers {
    /// One task per helper slot (1 to `slots` - 1), each connecting to the
    /// replica that many places after the client's when first asked.
    fn start(
        client: &Client,
        file: FileId,
        slots: usize,
        answers: mpsc::Sender<SlotAnswer>,
    ) -> Helpers {
        let asks = (1..slots)
            .map(|slot| {
                let (ask, asked) = mpsc::channel(1);
                tokio::spawn(help(client.companion(slot), slot, file, asked, answers.clone()));
                ask
            })
            .collect();
        Helpers { asks }
    }

    fn ask(&self, slot: usize) {
        let sender = self.asks.get(slot - 1).expect("the upload asks only its slots");
        // Full only if asked before answering, which the upload never does.
        let _ = sender.try_send(());
    }
}

/// One helper slot: asks its replica each time it is told to, and keeps
/// its connection (and so the replica's fetch from this client) until the
/// [`Helpers`] are dropped.
async fn help(
    companion: Companion,
    slot: usize,
    file: FileId,
    mut asked: mpsc::Receiver<()>,
    answers: mpsc::Sender<SlotAnswer>,
) {
    let mut client: Option<Client> = None;
    while asked.recv().await.is_some() {
        let call = async {
            match client.as_mut() {
                Some(client) => client.store_file(file).await,
                None => match companion.connect().await {
                    Ok(mut connected) => {
                        connected.patience = Duration::from_millis(limits::UPLOAD_STALL_MS);
                        client.insert(connected).store_file(file).await
                    }
                    Err(e) => Err(e),
                },
            }
        };
        // The guard dropped stops a call at once: a request resent after
        // the file message (even deleted since) would be a new upload.
        let reply = tokio::select! {
            biased;
            None = asked.recv() => return,
            reply = call => reply,
        };
        // The upload may be over (its answers no longer read): the
        // connection is kept all the same until the guard is dropped.
        let _ = answers.send((slot, reply)).await;
    }
}
