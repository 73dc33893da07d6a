//! Who is waiting for an answer: the service names each request with an
//! opaque `AskerId`; this maps the id to the libp2p channel it came on.

use super::sessions::SessionReply;
use crate::files::chunk_stream::ChunkReply;
use crate::net::behaviour::Behaviour;
use kith_core::replica::AskerId;
use kith_core::wire::client_protocol::LiveFrame;
use libp2p::request_response::ResponseChannel;
use libp2p::Swarm;
use std::collections::BTreeMap;
use tokio::sync::{mpsc, oneshot};

/// Where an answer goes.
#[derive(Debug)]
pub enum Channel {
    /// A client on `/kith/client/1`.
    Client(ResponseChannel<Vec<u8>>),
    /// A client's request on its `/kith/session/1` stream.
    Session(SessionReply),
    /// A replica on `/kith/peer/1`.
    Peer(ResponseChannel<Vec<u8>>),
    /// An operator on `/kith/admin/1`.
    Admin(ResponseChannel<Vec<u8>>),
    /// A live stream waiting to hear whether its subscription opened.
    Live(PendingStream),
    /// A chunk request on `/kith/chunks/1`.
    Chunks(ChunkReply),
}

/// The channels awaiting answers.
#[derive(Debug, Default)]
pub struct Askers {
    next: u64,
    waiting: BTreeMap<AskerId, Channel>,
}

impl Askers {
    /// Names a channel for the service.
    pub fn name(&mut self, channel: Channel) -> AskerId {
        self.next += 1;
        let id = AskerId(self.next);
        self.waiting.insert(id, channel);
        id
    }

    /// The channel named `id`, now answered.
    pub fn take(&mut self, id: AskerId) -> Option<Channel> {
        self.waiting.remove(&id)
    }

    /// Channels still waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }
}

/// Sends `frame` on a request-response channel. A closed channel (the asker
/// went away) is not an error: the command's effect, if any, is in the log
/// either way.
pub fn answer(swarm: &mut Swarm<Behaviour>, channel: Channel, frame: Vec<u8>) {
    let behaviour = swarm.behaviour_mut();
    let _ = match channel {
        Channel::Client(c) => behaviour.client.send_response(c, frame),
        Channel::Peer(c) => behaviour.peer.send_response(c, frame),
        Channel::Admin(c) => behaviour.admin.send_response(c, frame),
        Channel::Live(stream) => {
            stream.refuse(frame);
            Ok(())
        }
        Channel::Chunks(reply) => {
            reply.answer(frame);
            Ok(())
        }
        Channel::Session(reply) => {
            reply.answer(frame);
            Ok(())
        }
    };
}

/// A stream's queue and the way to refuse it, until the service decides.
#[derive(Debug)]
pub struct PendingStream {
    pub(super) queue: mpsc::Sender<LiveFrame>,
    pub(super) refused: oneshot::Sender<Vec<u8>>,
}

impl PendingStream {
    /// Writes `frame` (an encoded refusal) and closes the stream.
    pub fn refuse(self, frame: Vec<u8>) {
        let _ = self.refused.send(frame);
    }
}
