//! The uploading side of a file client: it serves what it offers to the
//! replicas that ask, and passes answers to its own requests on.

use crate::chunk_wire::{self, ChunkDatagram};
use crate::world::World;
use bytes::Bytes;
use kith_core::files::{ChunkResponse, Geometry, Offer, OfferDecision};
use kith_core::ids::LogIndex;
use kith_core::testing::file_observation::FileObservation;
use kith_core::wire::chunk_protocol::{ChunkAnswer, ChunkRequest};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// A content a client offers while uploading it.
pub(super) struct Content {
    pub(super) data: Vec<u8>,
    pub(super) outboard: Vec<u8>,
}

pub(super) type Offered = Arc<Mutex<Offer<Arc<Content>>>>;

/// Answers replicas' chunk requests from the offer, and passes answers to
/// this client's own requests on.
pub(super) async fn serve_offer(
    world: World,
    endpoint: Arc<madsim::net::Endpoint>,
    (offer, served_bytes): (Offered, Arc<AtomicU64>),
    mut chunks: mpsc::Receiver<ChunkDatagram>,
    answers: mpsc::Sender<(u64, Bytes)>,
) {
    while let Some(datagram) = chunks.recv().await {
        let (from, correlation, user, frame) = match datagram {
            ChunkDatagram::Answer { correlation, frame } => {
                // Full: the loop is busy elsewhere; the request times out.
                let _ = answers.try_send((correlation, frame));
                continue;
            }
            ChunkDatagram::Request { from, correlation, user, frame } => {
                (from, correlation, user, frame)
            }
        };
        let answer = match offer.lock().expect("single-threaded").answer(&frame) {
            OfferDecision::Answer(answer) => answer,
            OfferDecision::Serve { local, groups } => {
                let file = ChunkRequest::decode(&frame).map(|r| r.file);
                match (file, encode(local, &frame, groups)) {
                    (Ok(file), Ok(response)) => {
                        let mut w = world.lock();
                        let applied = LogIndex(0);
                        let served = FileObservation::Served {
                            node: None,
                            applied,
                            to: user,
                            file,
                            response: &response,
                        };
                        if let Err(v) = w.checker.on_file(served) {
                            w.fail(v);
                        }
                        ChunkAnswer::Groups(response)
                    }
                    _ => ChunkAnswer::NotHere,
                }
            }
        };
        let frame = answer.encode();
        if matches!(answer, ChunkAnswer::Groups(_)) {
            served_bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        }
        chunk_wire::send_answer(&world, &endpoint, from, correlation, &frame);
    }
}

/// Encodes `groups` of an offered content.
fn encode(local: &Content, frame: &[u8], groups: Range<u64>) -> Result<ChunkResponse, String> {
    let file = ChunkRequest::decode(frame).map_err(|e| e.to_string())?.file;
    let geometry = Geometry::new(file).map_err(|e| e.to_string())?;
    ChunkResponse::encode(&geometry, groups, &local.data[..], &local.outboard[..])
        .map_err(|e| e.to_string())
}
