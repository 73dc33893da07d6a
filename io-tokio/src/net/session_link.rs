//! The asking end of a session stream (`/kith/session/1` from a client,
//! `/kith/peer-session/1` from a replica): one stream to a peer that
//! carries every request of this side, each under its own id
//! (`crate::net::session_frame`), instead of a request-response stream per
//! request.
//!
//! The stream is opened at the first request and again after it breaks.
//! A request whose stream broke, or that found too many unanswered, is
//! reported failed at once, and whoever asked resends it as after any lost
//! attempt (a command keeps its id, so a resend never doubles a message).
//! A peer that does not speak the protocol (one from before it) gets every
//! request of this link on `fallback`: its request-response protocol.

use crate::net::codec::{read_frame, GATHERED_BYTES_MAX};
use crate::net::session_frame::{self, SESSION_FRAME_BYTES_MAX};
use futures::AsyncWrite;
use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::OpenStreamError;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;

pub use crate::net::pending::Pending;

/// Attempts to open the stream for one request: libp2p-stream drops an
/// inbound stream that a busy replica's acceptor has not taken yet.
const OPEN_TRIES: u32 = 4;
/// How long writing one request may take before the stream is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A request frame and where its answer goes.
pub type Request = (Vec<u8>, Pending);

/// Where a link's requests go when its peer has no session streams: onto
/// the asker's own channel for its request-response protocol, each
/// wrapped as that channel wants.
pub struct Fallback<T> {
    /// The asker's channel.
    pub to: mpsc::Sender<T>,
    /// What one request becomes on it.
    pub wrap: Box<dyn Fn(Request) -> T + Send>,
}

/// A handle on the task that owns one session stream.
#[derive(Clone, Debug)]
pub struct SessionLink {
    requests: mpsc::Sender<Request>,
}

/// What a link is to.
#[derive(Clone, Debug)]
pub struct LinkTo {
    /// The peer asked.
    pub peer: PeerId,
    /// The session protocol.
    pub protocol: StreamProtocol,
    /// Requests unanswered at most (the peer's slots for the protocol).
    pub in_flight_max: usize,
}

impl SessionLink {
    /// Starts a link; requests beyond `queued` not yet written wait (or
    /// fail, with [`Self::try_send`]).
    pub fn start(
        control: libp2p_stream::Control,
        to: LinkTo,
        queued: usize,
        fallback: Fallback<impl Send + 'static>,
    ) -> SessionLink {
        let (requests, rx) = mpsc::channel(queued);
        tokio::spawn(run(control, to, rx, fallback));
        SessionLink { requests }
    }

    /// Hands one request frame to the link; `answer` hears the response
    /// frame or why there will be none.
    pub async fn send(&self, frame: Vec<u8>, answer: Pending) -> Result<(), String> {
        self.requests.send((frame, answer)).await.map_err(|_| "connection closed".to_string())
    }

    /// [`Self::send`] without waiting: with the link's queue full (or the
    /// link gone), `answer` hears a failed attempt at once.
    pub fn try_send(&self, frame: Vec<u8>, answer: Pending) {
        use mpsc::error::TrySendError;
        match self.requests.try_send((frame, answer)) {
            Ok(()) => {}
            Err(TrySendError::Full((_, answer))) => answer.send(Err("the link is full".into())),
            Err(TrySendError::Closed((_, answer))) => answer.send(Err("the link is gone".into())),
        }
    }
}

async fn run(
    mut control: libp2p_stream::Control,
    to: LinkTo,
    mut requests: mpsc::Receiver<Request>,
    fallback: Fallback<impl Send + 'static>,
) {
    while let Some(first) = requests.recv().await {
        match open(&mut control, &to).await {
            Ok(stream) => carry(stream, first, &mut requests, to.in_flight_max).await,
            Err(OpenStreamError::UnsupportedProtocol(_)) => {
                tracing::debug!(protocol = %to.protocol, "the peer has no session streams; one stream per request");
                let mut next = Some(first);
                while let Some(request) = match next.take() {
                    Some(request) => Some(request),
                    None => requests.recv().await,
                } {
                    if fallback.to.send((fallback.wrap)(request)).await.is_err() {
                        return;
                    }
                }
                return;
            }
            Err(e) => {
                first.1.send(Err(e.to_string()));
            }
        }
    }
}

async fn open(
    control: &mut libp2p_stream::Control,
    to: &LinkTo,
) -> Result<libp2p::Stream, OpenStreamError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match control.open_stream(to.peer, to.protocol.clone()).await {
            Err(OpenStreamError::Io(e)) if tries < OPEN_TRIES => {
                tracing::debug!(error = %e, tries, "session stream failed to open; again");
                tokio::time::sleep(Duration::from_millis(5 << tries)).await;
            }
            opened => return opened,
        }
    }
}

/// Writes requests and routes answers until the stream breaks or the
/// asker is gone; every request still unanswered is then failed.
async fn carry(
    stream: libp2p::Stream,
    first: Request,
    requests: &mut mpsc::Receiver<Request>,
    in_flight_max: usize,
) {
    let (mut reader, mut writer) = futures::AsyncReadExt::split(stream);
    let (answers_tx, mut answers) = mpsc::channel(in_flight_max);
    // Reading on a task of its own: a frame half read is never dropped by a
    // select, and answers are taken while requests are being written.
    let reading = tokio::spawn(async move {
        while let Ok(frame) = read_frame(&mut reader, SESSION_FRAME_BYTES_MAX).await {
            if answers_tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    let mut unanswered = Unanswered { pending: BTreeMap::new(), next_id: 0, in_flight_max };
    let mut batch = vec![first];
    loop {
        if !unanswered.write(&mut writer, &mut batch).await {
            break;
        }
        tokio::select! {
            next = requests.recv() => match next {
                Some(next) => take_queued(&mut batch, next, requests),
                None => break,
            },
            frame = answers.recv() => {
                let Some(frame) = frame else { break };
                let Ok((id, body)) = session_frame::decode(frame) else { break };
                if let Some(answer) = unanswered.pending.remove(&id) {
                    answer.send(Ok(body));
                }
            }
        }
    }
    reading.abort();
    for (_, answer) in unanswered.pending {
        answer.send(Err("the session stream closed".into()));
    }
}

/// The requests written on a stream and not answered yet, by id.
struct Unanswered {
    pending: BTreeMap<u64, Pending>,
    next_id: u64,
    in_flight_max: usize,
}

impl Unanswered {
    /// Writes `batch` (what queued up while the last write was under way)
    /// in one write; false when the stream broke.
    async fn write<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut W,
        batch: &mut Vec<Request>,
    ) -> bool {
        let mut wire = Vec::new();
        let mut written = Vec::with_capacity(batch.len());
        for (frame, answer) in batch.drain(..) {
            if self.pending.len() + written.len() >= self.in_flight_max {
                // Askers that gave up on their answer free their place.
                self.pending.retain(|_, waiting| !waiting.is_closed());
            }
            if self.pending.len() + written.len() >= self.in_flight_max {
                answer.send(Err("too many requests unanswered".into()));
                continue;
            }
            self.next_id += 1;
            match session_frame::append(&mut wire, self.next_id, &frame) {
                Ok(()) => written.push((self.next_id, answer)),
                Err(e) => answer.send(Err(e.to_string())),
            }
        }
        if wire.is_empty() {
            return true;
        }
        let write = crate::net::codec::write_frames(writer, &wire);
        if !matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(()))) {
            for (_, answer) in written {
                answer.send(Err("the session stream broke".into()));
            }
            return false;
        }
        self.pending.extend(written);
        true
    }
}

/// Adds `first` to `batch`, then what is already queued behind it while
/// the batch's frames stay under `GATHERED_BYTES_MAX` (as `codec::gather`
/// does for frames already framed: these are framed only once the
/// in-flight limit has been checked, in [`Unanswered::write`]).
fn take_queued(batch: &mut Vec<Request>, first: Request, requests: &mut mpsc::Receiver<Request>) {
    let mut bytes: usize = batch.iter().map(|(frame, _)| frame.len()).sum();
    let mut next = Some(first);
    while let Some(request) = next.take() {
        bytes += request.0.len();
        batch.push(request);
        if bytes < GATHERED_BYTES_MAX {
            next = requests.try_recv().ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::behaviour::{build_swarm, SwarmOptions, SESSION_PROTOCOL};
    use futures::StreamExt;
    use libp2p::swarm::SwarmEvent;

    const PATIENCE: Duration = Duration::from_secs(10);

    /// A swarm listening on loopback, run on a task: its control, id and
    /// address.
    async fn peer() -> (libp2p_stream::Control, PeerId, libp2p::Multiaddr) {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let mut swarm = build_swarm(key, &SwarmOptions::default()).unwrap();
        swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        let (control, id) = (swarm.behaviour().stream.new_control(), *swarm.local_peer_id());
        tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        (control, id, addr)
    }

    /// A link from a fresh peer to `to`, which it knows at `addr`.
    async fn link_to(
        to: PeerId,
        addr: libp2p::Multiaddr,
    ) -> (SessionLink, mpsc::Receiver<Request>) {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let mut swarm = build_swarm(key, &SwarmOptions::default()).unwrap();
        swarm.add_peer_address(to, addr);
        let control = swarm.behaviour().stream.new_control();
        tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        let (fallback, requests) = mpsc::channel(8);
        let to = LinkTo { peer: to, protocol: SESSION_PROTOCOL, in_flight_max: 4 };
        let fallback = Fallback { to: fallback, wrap: Box::new(|request| request) };
        (SessionLink::start(control, to, 8, fallback), requests)
    }

    async fn ask(
        link: &SessionLink,
        frame: &[u8],
    ) -> tokio::sync::oneshot::Receiver<crate::net::pending::Answer> {
        let (tx, rx) = Pending::waiter();
        link.send(frame.to_vec(), tx).await.unwrap();
        rx
    }

    #[tokio::test]
    async fn requests_are_answered_on_one_stream_under_their_ids() {
        let (mut control, id, addr) = peer().await;
        let mut incoming = control.accept(SESSION_PROTOCOL).unwrap();
        // The peer answers every request with its reverse, the last first.
        let peer_side = tokio::spawn(async move {
            let (_, mut stream) = incoming.next().await.unwrap();
            let mut got = Vec::new();
            for _ in 0..3 {
                let frame = read_frame(&mut stream, SESSION_FRAME_BYTES_MAX).await.unwrap();
                got.push(session_frame::decode(frame).unwrap());
            }
            for (id, mut body) in got.into_iter().rev() {
                body.reverse();
                session_frame::write(&mut stream, id, &body).await.unwrap();
            }
            // Whether a second stream came.
            tokio::time::timeout(Duration::from_millis(200), incoming.next()).await.is_ok()
        });
        let (link, mut fallback) = link_to(id, addr).await;
        let answers = [ask(&link, b"abc").await, ask(&link, b"de").await, ask(&link, b"f").await];
        let mut got = Vec::new();
        for answer in answers {
            got.push(tokio::time::timeout(PATIENCE, answer).await.unwrap().unwrap().unwrap());
        }
        assert_eq!(got, [b"cba".to_vec(), b"ed".to_vec(), b"f".to_vec()]);
        assert!(fallback.try_recv().is_err());
        assert!(!peer_side.await.unwrap(), "one stream carries them all");
    }

    #[tokio::test]
    async fn a_peer_without_the_protocol_gets_the_requests_on_the_fallback() {
        let (_control, id, addr) = peer().await;
        let (link, mut fallback) = link_to(id, addr).await;
        let _first = ask(&link, b"one").await;
        let _second = ask(&link, b"two").await;
        for expected in [&b"one"[..], b"two"] {
            let (frame, _) =
                tokio::time::timeout(PATIENCE, fallback.recv()).await.unwrap().unwrap();
            assert_eq!(frame, expected);
        }
    }

    #[tokio::test]
    async fn a_stream_that_breaks_fails_what_it_had_unanswered() {
        let (mut control, id, addr) = peer().await;
        let mut incoming = control.accept(SESSION_PROTOCOL).unwrap();
        tokio::spawn(async move {
            let (_, mut stream) = incoming.next().await.unwrap();
            let _ = read_frame(&mut stream, SESSION_FRAME_BYTES_MAX).await;
            // Read, never answered: the stream goes away.
        });
        let (link, _fallback) = link_to(id, addr).await;
        let answer = ask(&link, b"lost").await;
        let failed = tokio::time::timeout(PATIENCE, answer).await.unwrap().unwrap();
        assert!(failed.is_err(), "an answer from a stream that closed: {failed:?}");
    }
}
