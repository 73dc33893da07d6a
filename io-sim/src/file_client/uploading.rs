//! A file client's upload: the core's `Upload` driven over simulated
//! connections, the client's own and one more per helper slot (each its
//! own endpoint and session, as the real CLI opens one connection per
//! replica it asks), while the offer serves every replica that fetches.

use super::{FileClient, STORE_STALL};
use crate::client::{call, session_config, ClientCtx, Conn, CLIENT_PORT, READ_PATIENCE};
use kith_core::files::upload::{Upload, UploadConfig, UploadError, UploadInput, UploadOutput};
use kith_core::files::FileId;
use kith_core::im::protocol::ImError;
use kith_core::session::{CallError, ClientSession, Reply};
use kith_core::wire::client_protocol::ClientRequest;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A call's outcome: None when its patience ran out.
type Answer = Option<Result<Reply, CallError>>;
/// A slot's answer to one `StoreFile`.
type SlotAnswer = (usize, Answer);

/// Ports for helper endpoints, after the client's own: each upload's
/// helpers take new ones, so a previous upload's (still closing) are never
/// in the way.
const HELPER_PORTS: u16 = 4096;

impl FileClient {
    /// Has replicas store `file` (which this client offers) until one holds
    /// it; false if the upload ended without a holder or the run's
    /// workload ended.
    pub(super) async fn store(&mut self, file: FileId) -> bool {
        let config = UploadConfig { stall: STORE_STALL, ..UploadConfig::default() };
        let served = self.served.clone();
        let replicas = self.ctx.replicas().len();
        let upload =
            Upload::new(self.ctx.now(), file, replicas, served.load(Ordering::Relaxed), config);
        self.uploads += 1;
        let (answered, answers) = mpsc::channel(upload.slots());
        let first = self.conn.session.target();
        let helpers = Helpers::start(&self.ctx, self.uploads, first, &upload, answered.clone());
        let (ask_own, own_asked) = mpsc::channel(1);
        let ctx = &self.ctx;
        let drive = async {
            let (mut upload, mut answers) = (upload, answers);
            while ctx.active.load(Ordering::Relaxed) {
                while let Some(output) = upload.poll_output() {
                    match output {
                        UploadOutput::Ask { slot: 0, .. } => {
                            let _ = ask_own.try_send(());
                        }
                        UploadOutput::Ask { slot, .. } => helpers.ask(slot),
                        UploadOutput::Stored => return Ok(true),
                        UploadOutput::Over(UploadError::Refused(e))
                            if !matches!(e, ImError::StoreFailed { .. }) =>
                        {
                            return Err(format!("storing {file}: refused: {e}"))
                        }
                        // Stalled (its replicas cut off), or failed to store
                        // again and again (disk faults): the sender gives up.
                        _ => return Ok(false),
                    }
                }
                let wake = upload.poll_timeout().map_or(Duration::from_secs(1), |at| {
                    Duration::from_micros(at.as_micros().saturating_sub(ctx.now().as_micros()))
                });
                let answer = madsim::time::timeout(wake, answers.recv()).await;
                let now = ctx.now();
                let bytes_total = served.load(Ordering::Relaxed);
                upload.handle_input(now, UploadInput::Served { bytes_total });
                match answer {
                    Ok(Some((slot, answer))) => upload.handle_input(now, input(slot, answer)?),
                    _ => upload.handle_timeout(now),
                }
            }
            Ok(false)
        };
        let outcome = tokio::select! {
            biased;
            outcome = drive => outcome,
            () = ask_own_replica(ctx, &mut self.conn, file, own_asked, answered) => Ok(false),
        };
        match outcome {
            Ok(stored) => stored,
            Err(detail) => {
                let detail = format!("client {}: {detail}", self.ctx.index);
                self.fail("uploads answered", detail);
                false
            }
        }
    }
}

/// Slot 0: the client's own connection, asked each time the upload says.
async fn ask_own_replica(
    ctx: &ClientCtx,
    conn: &mut Conn,
    file: FileId,
    mut asked: mpsc::Receiver<()>,
    answers: mpsc::Sender<SlotAnswer>,
) {
    while asked.recv().await.is_some() {
        let answer = call(ctx, conn, ClientRequest::StoreFile(file), Some(READ_PATIENCE)).await;
        if answers.send((0, answer)).await.is_err() {
            return;
        }
    }
}

/// What a slot's answer tells the upload; an answer that does not fit the
/// request is a violation (an honest client's upload is never refused
/// before ordering).
fn input(slot: usize, answer: Answer) -> Result<UploadInput, String> {
    match answer {
        Some(Ok(Reply::Store(reply))) => Ok(UploadInput::Answered { slot, reply }),
        None => Ok(UploadInput::Failed { slot }),
        other => Err(format!("slot {slot}: an answer that does not fit: {other:?}")),
    }
}

/// The helper slots' connections; dropping this ends them.
struct Helpers {
    asks: Vec<mpsc::Sender<()>>,
}

impl Helpers {
    /// One task per helper slot, each with its own endpoint and a session
    /// that starts at the replica that many places after `first`.
    fn start(
        ctx: &ClientCtx,
        upload_number: u64,
        first: usize,
        upload: &Upload,
        answers: mpsc::Sender<SlotAnswer>,
    ) -> Helpers {
        let slots = upload.slots();
        let asks = (1..slots)
            .map(|slot| {
                let (ask, asked) = mpsc::channel(1);
                let port_step = (upload_number * slots as u64 + slot as u64) % HELPER_PORTS as u64;
                let port = CLIENT_PORT + 1 + port_step as u16;
                let (ctx, answers, file) = (ctx.clone(), answers.clone(), upload.file());
                madsim::task::spawn(help(ctx, slot, port, first + slot, file, asked, answers));
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

/// One helper slot: asks its replica each time it is told to (the
/// replica fetches from the client's own endpoint, which serves the offer).
async fn help(
    ctx: ClientCtx,
    slot: usize,
    port: u16,
    start_at: usize,
    file: FileId,
    mut asked: mpsc::Receiver<()>,
    answers: mpsc::Sender<SlotAnswer>,
) {
    let addr = SocketAddr::new(crate::world::client_ip(ctx.index), port);
    let endpoint = madsim::net::Endpoint::bind(addr).await.ok().map(Arc::new);
    let mut conn = endpoint.map(|endpoint| {
        let targets = ctx.replicas();
        let known = targets.iter().map(|id| Some(*id)).collect();
        let first = start_at % targets.len().max(1);
        let seed = ctx.seed ^ 0x4e1f_0000 ^ port as u64;
        let session = ClientSession::new(known, first, seed, session_config());
        let responses = crate::world::receive(endpoint.clone(), crate::world::TAG_CLIENT);
        Conn { endpoint, responses, session, targets, pinned: false }
    });
    while asked.recv().await.is_some() {
        let Some(conn) = conn.as_mut() else {
            let _ = answers.send((slot, None)).await;
            continue;
        };
        // An upload that is over stops its calls at once: a request resent
        // after it (the file message sent, even deleted since) would be a
        // new upload of the content.
        let request = ClientRequest::StoreFile(file);
        let answer = tokio::select! {
            biased;
            None = asked.recv() => return,
            answer = call(&ctx, conn, request, Some(READ_PATIENCE)) => answer,
        };
        if answers.send((slot, answer)).await.is_err() {
            return;
        }
    }
}
