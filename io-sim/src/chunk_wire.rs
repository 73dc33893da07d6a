//! Chunk requests and answers (`/kith/chunks/1` frames) as datagrams:
//! `kind, correlation`, then for a request the asker's user id (the
//! simulated transport's authentication, as for client requests) and the
//! request frame, for an answer the answer frame. One request, one answer,
//! as on the real protocol's streams.
//!
//! The network loses and reorders datagrams (madsim); this file adds what
//! it does not: duplicates, and answers with a bit flipped on the way
//! (which the download's verification must refuse).

use crate::datagram;
use crate::world::{World, TAG_CHUNKS};
use bytes::Bytes;
use kith_core::im::identity::UserId;
use kith_core::wire::chunk_protocol::CHUNK_ANSWER_FRAME_BYTES_MAX;
use madsim::net::Endpoint;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

const REQUEST: u8 = 0;
const ANSWER: u8 = 1;

/// A chunk datagram, unframed.
#[derive(Debug)]
pub enum ChunkDatagram {
    /// A request for groups of a file.
    Request {
        /// Where to answer.
        from: SocketAddr,
        /// Names the request in the answer.
        correlation: u64,
        /// Who asks.
        user: UserId,
        /// The `ChunkRequest` frame.
        frame: Bytes,
    },
    /// The answer to this endpoint's request `correlation`.
    Answer {
        /// The request answered.
        correlation: u64,
        /// The `ChunkAnswer` frame.
        frame: Bytes,
    },
}

/// Receives every chunk datagram at `endpoint` in a task of its own (a
/// buffer as large as the largest answer; madsim's `recv_from` is not
/// cancellation safe). Malformed datagrams are dropped.
pub fn receive(endpoint: Arc<Endpoint>) -> mpsc::Receiver<ChunkDatagram> {
    let (tx, rx) = mpsc::channel(256);
    madsim::task::spawn(async move {
        let mut buf = vec![0u8; CHUNK_ANSWER_FRAME_BYTES_MAX + 64];
        while let Ok((len, from)) = endpoint.recv_from(TAG_CHUNKS, &mut buf).await {
            let bytes = Bytes::copy_from_slice(&buf[..len]);
            let Some(datagram) = unframe(from, &bytes) else { continue };
            if tx.send(datagram).await.is_err() {
                return;
            }
        }
    });
    rx
}

fn unframe(from: SocketAddr, bytes: &Bytes) -> Option<ChunkDatagram> {
    let (kind, correlation, payload) = datagram::split(bytes)?;
    match kind {
        REQUEST => {
            let (user, _) = payload.split_first_chunk::<32>()?;
            let user = UserId(*user);
            Some(ChunkDatagram::Request { from, correlation, user, frame: payload.slice(32..) })
        }
        ANSWER => Some(ChunkDatagram::Answer { correlation, frame: payload }),
        _ => None,
    }
}

/// Sends request `correlation` from `user` to `to`.
pub fn send_request(
    world: &World,
    endpoint: &Arc<Endpoint>,
    to: SocketAddr,
    correlation: u64,
    user: UserId,
    frame: &[u8],
) {
    let bytes = datagram::datagram(REQUEST, correlation, &[&user.0, frame]);
    send(world, endpoint, to, bytes, false);
}

/// Sends the answer to request `correlation` to `to`.
pub fn send_answer(
    world: &World,
    endpoint: &Arc<Endpoint>,
    to: SocketAddr,
    correlation: u64,
    frame: &[u8],
) {
    let bytes = datagram::datagram(ANSWER, correlation, &[frame]);
    send(world, endpoint, to, bytes, true);
}

/// Sends without waiting; now and then twice, and (answers only) now and
/// then with one bit of the frame flipped.
fn send(world: &World, endpoint: &Arc<Endpoint>, to: SocketAddr, mut bytes: Vec<u8>, answer: bool) {
    let twice = {
        let mut w = world.lock();
        let w = &mut *w;
        let faults = &mut w.files;
        let header = datagram::HEADER_BYTES;
        if answer && bytes.len() > header && faults.rng.chance(faults.corrupt) {
            let at = faults.rng.range(header as u64, bytes.len() as u64) as usize;
            bytes[at] ^= 1 << faults.rng.range(0, 8);
            faults.corrupted += 1;
        }
        faults.rng.chance(w.duplicate)
    };
    let endpoint = endpoint.clone();
    madsim::task::spawn(async move {
        let _ = endpoint.send_to(to, TAG_CHUNKS, &bytes).await;
        if twice {
            let _ = endpoint.send_to(to, TAG_CHUNKS, &bytes).await;
        }
    });
}
