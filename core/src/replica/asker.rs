//! Who is waiting for an answer, and in which protocol it must be said.
//!
//! The driver names each request it hands the service with an opaque
//! [`AskerId`] (a response channel, a datagram address: the service never
//! looks inside). The service remembers what the asker expects and answers
//! with encoded bytes, so the driver only moves them.

use crate::wire::client_protocol::{ClientResponse, ResponseFrame};
use crate::wire::replica_protocol::{self, AdminResponse, PeerResponse};

/// The driver's name for one request awaiting an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AskerId(pub u64);

/// The service's name for one request it sent another replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutboundId(pub u64);

/// An asker and the protocol it asked in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Asker {
    pub id: AskerId,
    pub kind: AskerKind,
}

/// The protocol (and its correlation) an answer is owed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AskerKind {
    /// A client on the client protocol, with its request id.
    Client { request_id: u64 },
    /// A replica that forwarded its client's command.
    ForwardingReplica,
    /// An operator on the admin protocol.
    Operator,
    /// A replica that forwarded its operator's request.
    ForwardingOperator,
    /// This replica, about itself (`HoldFile`): the answer is dropped, as
    /// the log is what counts.
    Itself,
}

impl Asker {
    /// Whether the request came straight from its author (not forwarded):
    /// only those may be forwarded on, so a request travels one hop at most.
    pub fn is_direct(&self) -> bool {
        matches!(self.kind, AskerKind::Client { .. } | AskerKind::Operator | AskerKind::Itself)
    }

    /// Encodes a client answer for this asker.
    pub fn client_answer(&self, response: ClientResponse) -> Vec<u8> {
        match self.kind {
            AskerKind::Client { request_id } => ResponseFrame { request_id, response }.encode(),
            AskerKind::ForwardingReplica => {
                replica_protocol::encode(&PeerResponse::Forwarded(response))
            }
            AskerKind::Operator | AskerKind::ForwardingOperator | AskerKind::Itself => {
                unreachable!("client answers go to client askers only")
            }
        }
    }

    /// Encodes an admin answer for this asker.
    pub fn admin_answer(&self, response: AdminResponse) -> Vec<u8> {
        match self.kind {
            AskerKind::Operator => replica_protocol::encode(&response),
            AskerKind::ForwardingOperator => {
                replica_protocol::encode(&PeerResponse::Admin(response))
            }
            AskerKind::Client { .. } | AskerKind::ForwardingReplica | AskerKind::Itself => {
                unreachable!("admin answers go to admin askers only")
            }
        }
    }
}
