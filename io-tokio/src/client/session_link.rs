//! The client's end of `/kith/session/1`: one stream to the replica that
//! carries every client request of this connection, each under its own id
//! (`crate::net::session_frame`), instead of a request-response stream per
//! request.
//!
//! The stream is opened at the first request and again after it breaks.
//! A request whose stream broke, or that found too many unanswered, is
//! reported failed at once, and the core's client session resends it (a
//! command keeps its id, so a resend never doubles a message). A replica
//! that does not speak `/kith/session/1` (one from before it) gets every
//! request of this connection on `/kith/client/1` instead.

use super::{Call, Pending};
use crate::net::behaviour::SESSION_PROTOCOL;
use crate::net::codec::read_frame;
use crate::net::session_frame::{self, SESSION_FRAME_BYTES_MAX};
use kith_core::limits::SESSION_REQUESTS_IN_FLIGHT_MAX;
use libp2p::PeerId;
use libp2p_stream::OpenStreamError;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// Attempts to open the stream for one request: libp2p-stream drops an
/// inbound stream that a busy replica's acceptor has not taken yet.
const OPEN_TRIES: u32 = 4;
/// How long writing one request may take before the stream is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests handed to the link and not yet written.
const REQUESTS_QUEUED: usize = 64;

/// A handle on the task that owns the session stream.
#[derive(Clone, Debug)]
pub(super) struct SessionLink {
    requests: mpsc::Sender<(Vec<u8>, Pending)>,
}

impl SessionLink {
    /// Starts the link to `replica`; `fallback` is the connection task,
    /// which sends requests on `/kith/client/1`.
    pub(super) fn start(
        control: libp2p_stream::Control,
        replica: PeerId,
        fallback: mpsc::Sender<Call>,
    ) -> SessionLink {
        let (requests, rx) = mpsc::channel(REQUESTS_QUEUED);
        tokio::spawn(run(control, replica, rx, fallback));
        SessionLink { requests }
    }

    /// Hands one request frame to the link; `answer` hears the response
    /// frame or why there will be none.
    pub(super) async fn send(&self, frame: Vec<u8>, answer: Pending) -> Result<(), String> {
        self.requests.send((frame, answer)).await.map_err(|_| "connection closed".to_string())
    }
}

async fn run(
    mut control: libp2p_stream::Control,
    replica: PeerId,
    mut requests: mpsc::Receiver<(Vec<u8>, Pending)>,
    fallback: mpsc::Sender<Call>,
) {
    while let Some(first) = requests.recv().await {
        match open(&mut control, replica).await {
            Ok(stream) => carry(stream, first, &mut requests).await,
            Err(OpenStreamError::UnsupportedProtocol(_)) => {
                tracing::debug!("the replica has no session streams; one stream per request");
                let mut next = Some(first);
                while let Some((frame, answer)) = match next.take() {
                    Some(request) => Some(request),
                    None => requests.recv().await,
                } {
                    if fallback.send(Call::Client(frame, answer)).await.is_err() {
                        return;
                    }
                }
                return;
            }
            Err(e) => {
                let _ = first.1.send(Err(e.to_string()));
            }
        }
    }
}

async fn open(
    control: &mut libp2p_stream::Control,
    replica: PeerId,
) -> Result<libp2p::Stream, OpenStreamError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match control.open_stream(replica, SESSION_PROTOCOL).await {
            Err(OpenStreamError::Io(e)) if tries < OPEN_TRIES => {
                tracing::debug!(error = %e, tries, "session stream failed to open; again");
                tokio::time::sleep(Duration::from_millis(5 << tries)).await;
            }
            opened => return opened,
        }
    }
}

/// Writes requests and routes answers until the stream breaks or the
/// client is gone; every request still unanswered is then failed.
async fn carry(
    stream: libp2p::Stream,
    first: (Vec<u8>, Pending),
    requests: &mut mpsc::Receiver<(Vec<u8>, Pending)>,
) {
    let (mut reader, mut writer) = futures::AsyncReadExt::split(stream);
    let (answers_tx, mut answers) = mpsc::channel(SESSION_REQUESTS_IN_FLIGHT_MAX);
    // Reading on a task of its own: a frame half read is never dropped by a
    // select, and answers are taken while a request is being written.
    let reading = tokio::spawn(async move {
        while let Ok(frame) = read_frame(&mut reader, SESSION_FRAME_BYTES_MAX).await {
            if answers_tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut next_id = 0u64;
    let mut request = Some(first);
    loop {
        if let Some((frame, answer)) = request.take() {
            // Callers that gave up on their answer free their place.
            pending.retain(|_, waiting| !waiting.is_closed());
            if pending.len() >= SESSION_REQUESTS_IN_FLIGHT_MAX {
                let _ = answer.send(Err("too many requests unanswered".into()));
            } else {
                next_id += 1;
                let write = session_frame::write(&mut writer, next_id, &frame);
                if !matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(()))) {
                    let _ = answer.send(Err("the session stream broke".into()));
                    break;
                }
                pending.insert(next_id, answer);
            }
        }
        tokio::select! {
            next = requests.recv() => match next {
                Some(next) => request = Some(next),
                None => break,
            },
            frame = answers.recv() => {
                let Some(frame) = frame else { break };
                let Ok((id, body)) = session_frame::decode(frame) else { break };
                if let Some(answer) = pending.remove(&id) {
                    let _ = answer.send(Ok(body));
                }
            }
        }
    }
    reading.abort();
    for (_, answer) in pending {
        let _ = answer.send(Err("the session stream closed".into()));
    }
}
