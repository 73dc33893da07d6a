//! How the node's refusals read to a client: the service answers a command
//! or read it could not take with the client protocol's "not yet" answers.

use crate::raft::{DropOutcome, ReadError, SubmitError};
use crate::wire::client_protocol::ClientResponse;

impl From<SubmitError> for ClientResponse {
    /// The answer when the node refused a submission.
    fn from(e: SubmitError) -> ClientResponse {
        match e {
            SubmitError::NotLeader { leader_hint } => ClientResponse::NotLeader { leader_hint },
            _ => ClientResponse::Busy,
        }
    }
}

impl From<ReadError> for ClientResponse {
    /// The answer when the node refused a read.
    fn from(e: ReadError) -> ClientResponse {
        match e {
            ReadError::NotLeader { leader_hint } => ClientResponse::NotLeader { leader_hint },
            _ => ClientResponse::Busy,
        }
    }
}

impl ClientResponse {
    /// The answer when an accepted command will not be reported applied.
    pub fn dropped(outcome: DropOutcome) -> ClientResponse {
        ClientResponse::Retry { maybe_applied: outcome == DropOutcome::Unknown }
    }
}
