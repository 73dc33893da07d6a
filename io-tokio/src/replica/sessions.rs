//! Session streams: `/kith/session/1`, one stream per client carrying its
//! requests, each handed to the service exactly as a `/kith/client/1`
//! request is, and `/kith/peer-session/1`, the same for another replica's
//! `/kith/peer/1` requests (forwarded commands); each answer is written
//! back on the stream under its request's id.
//!
//! Bounded: a stream has at most [`SessionKind::slots`] requests between
//! being read and their answer being written (the next
//! request is not read before one is), so its queue of answers never grows
//! past that; each request is read against the process's read budget,
//! charged to the stream's peer, and holds it until the service took it. At
//! most [`SESSION_STREAMS_MAX`] streams are served at once; one past that is
//! closed at once (the client falls back on its session's retries). An
//! answer the client does not take within [`ANSWER_WRITE_TIMEOUT`] ends
//! the stream: a client that stops reading cannot park answers here.

use crate::net::behaviour::{PEER_SESSION_PROTOCOL, SESSION_PROTOCOL};
use crate::net::codec::{gather, read_frame_within, GATHERED_BYTES_MAX};
use crate::net::read_budget::{HeldFrame, EVICTED, READ_BUDGET};
use crate::net::session_frame::{self, SESSION_FRAME_BYTES_MAX};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use kith_core::limits::{PEER_SESSION_REQUESTS_IN_FLIGHT_MAX, SESSION_REQUESTS_IN_FLIGHT_MAX};
use libp2p::PeerId;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Session streams served at once.
pub const SESSION_STREAMS_MAX: usize = 4096;
/// Requests read from all streams and not yet taken by the run loop.
pub const SESSION_REQUESTS_QUEUED: usize = 256;
/// How long writing one answer may take before the stream is dropped.
const ANSWER_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whose requests a session stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// A client's (`/kith/session/1`).
    Client,
    /// Another replica's (`/kith/peer-session/1`).
    Peer,
}

impl SessionKind {
    /// Requests a stream may have between being read and answered.
    pub fn slots(self) -> usize {
        match self {
            SessionKind::Client => SESSION_REQUESTS_IN_FLIGHT_MAX,
            SessionKind::Peer => PEER_SESSION_REQUESTS_IN_FLIGHT_MAX,
        }
    }
}

/// One request read from a session stream.
#[derive(Debug)]
pub struct SessionRequest {
    /// Whose request it is.
    pub kind: SessionKind,
    /// Who asks (the connection's key).
    pub peer: PeerId,
    /// The request frame, untrusted, with its hold on the read budget.
    pub frame: HeldFrame,
    /// Where its answer goes.
    pub reply: SessionReply,
}

/// The way to answer one session request.
#[derive(Debug)]
pub struct SessionReply {
    id: u64,
    answers: mpsc::Sender<Answer>,
    /// The stream's slot this request takes until its answer is written.
    permit: OwnedSemaphorePermit,
}

#[derive(Debug)]
struct Answer {
    id: u64,
    frame: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

impl SessionReply {
    /// Queues the encoded response for the stream. A client that went away
    /// is not an error: a command's effect, if any, is in the log either way.
    pub fn answer(self, frame: Vec<u8>) {
        let answer = Answer { id: self.id, frame, _permit: self.permit };
        match self.answers.try_send(answer) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            // A slot is taken before a request is read and freed after its
            // answer is written, and the queue has a place per slot.
            Err(mpsc::error::TrySendError::Full(_)) => {
                unreachable!("more answers than the stream's slots")
            }
        }
    }
}

/// Accepts session streams of both kinds on `control`; every request read
/// from them arrives on the returned receiver.
pub fn accept(mut control: libp2p_stream::Control) -> mpsc::Receiver<SessionRequest> {
    let (tx, rx) = mpsc::channel(SESSION_REQUESTS_QUEUED);
    let serving = Arc::new(Semaphore::new(SESSION_STREAMS_MAX));
    for (protocol, kind) in
        [(SESSION_PROTOCOL, SessionKind::Client), (PEER_SESSION_PROTOCOL, SessionKind::Peer)]
    {
        let Some(mut incoming) = crate::net::incoming::incoming(&mut control, protocol) else {
            continue;
        };
        let (serving, tx) = (serving.clone(), tx.clone());
        tokio::spawn(async move {
            while let Some((peer, mut stream)) = incoming.next().await {
                let Ok(permit) = serving.clone().try_acquire_owned() else {
                    tokio::spawn(async move { stream.close().await });
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    serve(kind, peer, stream, tx).await;
                    drop(permit);
                });
            }
        });
    }
    rx
}

/// Reads requests and writes answers until the asker goes away.
async fn serve<S>(
    kind: SessionKind,
    peer: PeerId,
    stream: S,
    requests: mpsc::Sender<SessionRequest>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (reader, mut writer) = stream.split();
    let (answers, mut to_write) = mpsc::channel::<Answer>(kind.slots());
    let read = read_requests(kind, peer, reader, answers, requests);
    let write = async move {
        while let Some(first) = to_write.recv().await {
            // The answers ready together go in one write; their slots are
            // freed once it is written.
            let (mut wire, mut slots) = (Vec::new(), Vec::new());
            gather(&mut wire, first, &mut to_write, GATHERED_BYTES_MAX, |wire, answer| {
                let Answer { id, frame, _permit: slot } = answer;
                if let Err(e) = session_frame::append(wire, id, &frame) {
                    tracing::error!(error = %e, "an answer that cannot be framed; dropped");
                }
                slots.push(slot);
                true
            });
            let write = crate::net::codec::write_frames(&mut writer, &wire);
            match tokio::time::timeout(ANSWER_WRITE_TIMEOUT, write).await {
                Ok(Ok(())) => drop(slots),
                _ => return,
            }
        }
    };
    // The writer goes on after the client closed its side, until every
    // request read has its answer; it ends when the stream fails.
    tokio::pin!(write);
    tokio::select! {
        () = read => write.await,
        () = &mut write => {}
    }
}

async fn read_requests<R: AsyncRead + Unpin>(
    kind: SessionKind,
    peer: PeerId,
    mut reader: R,
    answers: mpsc::Sender<Answer>,
    requests: mpsc::Sender<SessionRequest>,
) {
    let account = READ_BUDGET.open_account_of(Some(peer));
    let slots = Arc::new(Semaphore::new(kind.slots()));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let read = read_frame_within(
            &mut reader,
            SESSION_FRAME_BYTES_MAX,
            &READ_BUDGET,
            Some(account.clone()),
        );
        let refused = |e: &io::Error| {
            // A stream closed between frames is how a session ends.
            if e.kind() != io::ErrorKind::UnexpectedEof {
                READ_BUDGET.note_unreadable(Some(&account), e.kind() == EVICTED);
            }
        };
        let (bytes, hold) = match read.await {
            Ok(read) => read,
            Err(e) => return refused(&e),
        };
        let (id, body) = match session_frame::decode(bytes) {
            Ok(frame) => frame,
            Err(e) => return refused(&io::Error::new(io::ErrorKind::InvalidData, e)),
        };
        let reply = SessionReply { id, answers: answers.clone(), permit };
        let request = SessionRequest { kind, peer, frame: HeldFrame::held(body, hold), reply };
        if requests.send(request).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::codec::read_frame;
    use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

    const PATIENCE: Duration = Duration::from_secs(5);

    /// A served session and the client's end of it.
    fn session() -> (Compat<tokio::io::DuplexStream>, mpsc::Receiver<SessionRequest>) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (tx, rx) = mpsc::channel(SESSION_REQUESTS_QUEUED);
        tokio::spawn(serve(SessionKind::Client, PeerId::random(), server.compat(), tx));
        (client.compat(), rx)
    }

    async fn next(requests: &mut mpsc::Receiver<SessionRequest>) -> SessionRequest {
        tokio::time::timeout(PATIENCE, requests.recv()).await.unwrap().unwrap()
    }

    async fn answer_of(client: &mut Compat<tokio::io::DuplexStream>) -> (u64, Vec<u8>) {
        let frame = tokio::time::timeout(PATIENCE, read_frame(client, SESSION_FRAME_BYTES_MAX));
        session_frame::decode(frame.await.unwrap().unwrap()).unwrap()
    }

    #[tokio::test]
    async fn answers_come_back_under_their_ids_in_the_order_they_are_ready() {
        let (mut client, mut requests) = session();
        for id in [7, 8, 9] {
            session_frame::write(&mut client, id, format!("request {id}").as_bytes())
                .await
                .unwrap();
        }
        let mut read = Vec::new();
        for _ in 0..3 {
            read.push(next(&mut requests).await);
        }
        let bodies: Vec<_> = read.iter().map(|r| r.frame.bytes().to_vec()).collect();
        assert_eq!(bodies, [&b"request 7"[..], b"request 8", b"request 9"]);
        for request in read.into_iter().rev() {
            let body = request.frame.bytes().to_vec();
            request.reply.answer([b"answer to ".as_slice(), &body].concat());
        }
        for id in [9, 8, 7] {
            assert_eq!(
                answer_of(&mut client).await,
                (id, format!("answer to request {id}").into())
            );
        }
    }

    #[tokio::test]
    async fn no_request_is_read_past_the_slots_until_one_is_answered() {
        let (mut client, mut requests) = session();
        for id in 0..=SessionKind::Client.slots() as u64 {
            session_frame::write(&mut client, id, b"x").await.unwrap();
        }
        let mut read = Vec::new();
        for _ in 0..SessionKind::Client.slots() {
            read.push(next(&mut requests).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(requests.try_recv().is_err(), "a request was read past the stream's slots");
        read.pop().expect("read").reply.answer(b"done".to_vec());
        let last = next(&mut requests).await;
        assert_eq!(last.reply.id, SessionKind::Client.slots() as u64);
    }

    #[tokio::test]
    async fn a_frame_too_short_for_its_id_ends_the_stream() {
        let (mut client, mut requests) = session();
        session_frame::write(&mut client, 1, b"fine").await.unwrap();
        crate::net::codec::write_frame(&mut client, &[1, 2, 3]).await.unwrap();
        let fine = next(&mut requests).await;
        // The writer still answers what was read before the bad frame...
        fine.reply.answer(b"answer".to_vec());
        assert_eq!(answer_of(&mut client).await, (1, b"answer".to_vec()));
        // ...and then the stream ends, with nothing more taken from it.
        let end = tokio::time::timeout(PATIENCE, read_frame(&mut client, 64)).await.unwrap();
        assert_eq!(end.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert!(requests.try_recv().is_err());
    }
}
