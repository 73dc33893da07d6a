//! Who is waiting for an answer, and how to give it to them.

use crate::net::behaviour::Behaviour;
use kith_core::im::client_protocol::{ClientResponse, ResponseFrame};
use kith_core::im::replica_protocol::{self, AdminResponse, PeerResponse};
use libp2p::request_response::ResponseChannel;
use libp2p::Swarm;

/// Someone awaiting a [`ClientResponse`].
#[derive(Debug)]
pub enum Asker {
    /// A client on `/kith/client/1`.
    Client {
        /// Where the answer goes.
        channel: ResponseChannel<Vec<u8>>,
        /// The client's request id, echoed.
        request_id: u64,
    },
    /// A replica that forwarded its client's command to us.
    Replica(ResponseChannel<Vec<u8>>),
}

/// Someone awaiting an [`AdminResponse`].
#[derive(Debug)]
pub enum AdminAsker {
    /// An operator on `/kith/admin/1`.
    Operator(ResponseChannel<Vec<u8>>),
    /// A replica that forwarded its operator's request.
    Replica(ResponseChannel<Vec<u8>>),
}

/// Answers `asker`. A closed channel (the asker went away) is not an
/// error: the command's effect, if any, is in the log either way.
pub fn answer(swarm: &mut Swarm<Behaviour>, asker: Asker, response: ClientResponse) {
    let _ = match asker {
        Asker::Client { channel, request_id } => {
            let frame = ResponseFrame { request_id, response }.encode();
            swarm.behaviour_mut().client.send_response(channel, frame)
        }
        Asker::Replica(channel) => {
            let frame = replica_protocol::encode(&PeerResponse::Forwarded(response));
            swarm.behaviour_mut().peer.send_response(channel, frame)
        }
    };
}

/// Answers an operator.
pub fn answer_admin(swarm: &mut Swarm<Behaviour>, asker: AdminAsker, response: AdminResponse) {
    let _ = match asker {
        AdminAsker::Operator(channel) => {
            swarm.behaviour_mut().admin.send_response(channel, replica_protocol::encode(&response))
        }
        AdminAsker::Replica(channel) => swarm
            .behaviour_mut()
            .peer
            .send_response(channel, replica_protocol::encode(&PeerResponse::Admin(response))),
    };
}
