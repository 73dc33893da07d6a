//! What a final answer means for the request it answers. Which answers fit
//! which request is decided here, once, so that no client (the real one,
//! the simulated ones, another language's written from the protocol) has
//! its own reading of the protocol's variants.

use crate::im::protocol::{CommandError, QueryResult};
use crate::wire::client_protocol::{ClientRequest, ClientResponse, CommandOutcome, UserPresence};

/// The answer that fits its request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// A command's outcome (for `Submit`).
    Applied(CommandOutcome),
    /// A query's result (for `Query`).
    Answer(QueryResult),
    /// The announcement or notice was taken (for `Presence` and `Typing`).
    Taken,
    /// The presence of each user asked about, in order (for `PresenceOf`).
    Presence(Vec<UserPresence>),
}

/// A final answer that is not the request's reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The command was refused before ordering (signature, author).
    #[error("refused: {0}")]
    Refused(CommandError),
    /// The replica did not accept the request as sent.
    #[error("{0}")]
    BadRequest(String),
    /// An answer that fits another request: the replica or the transport
    /// is broken.
    #[error("an answer that does not fit the request: {0:?}")]
    Unexpected(Box<ClientResponse>),
}

/// Reads a final `response` (not `NotLeader`, `Retry` or `Busy`) to `request`.
pub fn reply_to(request: &ClientRequest, response: ClientResponse) -> Result<Reply, CallError> {
    match (request, response) {
        (ClientRequest::Submit(_), ClientResponse::Applied(outcome)) => Ok(Reply::Applied(outcome)),
        (ClientRequest::Query(_), ClientResponse::Answer(result)) => Ok(Reply::Answer(result)),
        (ClientRequest::Presence(_), ClientResponse::PresenceTaken) => Ok(Reply::Taken),
        // Replicas from before `TypingTaken` answered a notice with `PresenceTaken`.
        (ClientRequest::Typing(_), ClientResponse::TypingTaken | ClientResponse::PresenceTaken) => {
            Ok(Reply::Taken)
        }
        (ClientRequest::PresenceOf(users), ClientResponse::Presence(views))
            if views.len() == users.len() =>
        {
            Ok(Reply::Presence(views))
        }
        (_, ClientResponse::Refused(e)) => Err(CallError::Refused(e)),
        (_, ClientResponse::BadRequest(why)) => Err(CallError::BadRequest(why)),
        (_, other) => Err(CallError::Unexpected(Box::new(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im::identity::UserId;

    #[test]
    fn each_request_takes_only_its_own_answers() {
        let presence_of = ClientRequest::PresenceOf(vec![UserId([1; 32])]);
        assert_eq!(
            reply_to(&presence_of, ClientResponse::Presence(Vec::new())),
            Err(CallError::Unexpected(Box::new(ClientResponse::Presence(Vec::new())))),
            "one view per user asked about"
        );
        assert!(matches!(
            reply_to(&presence_of, ClientResponse::PresenceTaken),
            Err(CallError::Unexpected(_))
        ));
        assert_eq!(
            reply_to(&presence_of, ClientResponse::BadRequest("no".into())),
            Err(CallError::BadRequest("no".into()))
        );
    }
}
