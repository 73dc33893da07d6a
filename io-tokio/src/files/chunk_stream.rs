//! Inbound `/kith/chunks/1` streams: one request frame in, one answer
//! frame out, then the stream closes.
//!
//! Bounded: at most [`CHUNK_STREAMS_SERVED_MAX`] streams are being
//! answered at once (each holds at most one answer, 271 KiB); a stream
//! past that is answered `Busy` at once, which tells the asker to try
//! another source. A request must arrive within [`REQUEST_READ_TIMEOUT`]
//! and an answer is given up after [`ANSWER_TIMEOUT`].

use crate::net::behaviour::CHUNKS_PROTOCOL;
use crate::net::codec::{read_frame, write_frame};
use bytes::Bytes;
use futures::{AsyncWriteExt, StreamExt};
use kith_core::wire::chunk_protocol::{ChunkAnswer, CHUNK_REQUEST_FRAME_BYTES_MAX};
use libp2p::PeerId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Streams being answered at once.
pub const CHUNK_STREAMS_SERVED_MAX: usize = 32;
/// How long an asker has to send its request.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an answer may take (the asker gives up after 10 s anyway).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// One chunk request, waiting for its answer.
#[derive(Debug)]
pub struct ChunkStream {
    /// Who asks (the connection's key).
    pub peer: PeerId,
    /// The request frame, untrusted.
    pub frame: Vec<u8>,
    /// Where the answer goes.
    pub reply: ChunkReply,
}

/// The way to answer one chunk request.
#[derive(Debug)]
pub struct ChunkReply(oneshot::Sender<Bytes>);

impl ChunkReply {
    /// Sends an encoded `ChunkAnswer` and closes the stream. An asker that
    /// went away is not an error.
    pub fn answer(self, frame: impl Into<Bytes>) {
        let _ = self.0.send(frame.into());
    }
}

/// Accepts chunk streams on `control`; each request arrives on the
/// returned receiver.
pub fn accept(mut control: libp2p_stream::Control) -> mpsc::Receiver<ChunkStream> {
    let (tx, rx) = mpsc::channel(CHUNK_STREAMS_SERVED_MAX);
    let Some(mut incoming) = crate::net::incoming::incoming(&mut control, CHUNKS_PROTOCOL) else {
        return rx;
    };
    let serving = Arc::new(Semaphore::new(CHUNK_STREAMS_SERVED_MAX));
    tokio::spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            let permit = serving.clone().try_acquire_owned().ok();
            let tx = tx.clone();
            tokio::spawn(async move {
                match permit {
                    Some(_permit) => serve_stream(peer, stream, tx).await,
                    None => finish(stream, &ChunkAnswer::Busy.encode()).await,
                }
            });
        }
    });
    rx
}

async fn serve_stream(
    peer: PeerId,
    mut stream: libp2p::Stream,
    requests: mpsc::Sender<ChunkStream>,
) {
    let read = read_frame(&mut stream, CHUNK_REQUEST_FRAME_BYTES_MAX);
    let frame = match tokio::time::timeout(REQUEST_READ_TIMEOUT, read).await {
        Ok(Ok(frame)) => frame,
        Ok(Err(e)) => {
            let refused = ChunkAnswer::Refused(e.to_string());
            return finish(stream, &refused.encode()).await;
        }
        Err(_) => return,
    };
    let (tx, rx) = oneshot::channel();
    if requests.try_send(ChunkStream { peer, frame, reply: ChunkReply(tx) }).is_err() {
        return finish(stream, &ChunkAnswer::Busy.encode()).await;
    }
    if let Ok(Ok(answer)) = tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
        finish(stream, &answer).await;
    }
}

/// Writes `frame` and closes the stream; a peer that went away is fine.
async fn finish(mut stream: libp2p::Stream, frame: &[u8]) {
    if write_frame(&mut stream, frame).await.is_ok() {
        let _ = stream.close().await;
    }
}
