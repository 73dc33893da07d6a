//! What a final answer means for the request it answers. Which answers fit
//! which request is decided here, once, so that no client (the real one,
//! the simulated ones, another language's written from the protocol) has
//! its own reading of the protocol's variants.

use crate::im::protocol::{CommandError, ImError, QueryResult};
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
    /// Where an upload stands (for `StoreFile`).
    Store(StoreReply),
}

/// Where an upload stands.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreReply {
    /// The log records the replica as holding the content: send the file
    /// message.
    Stored,
    /// The replica is fetching it from the client: keep serving, ask again.
    Storing,
    /// The replica will not store it (too large, over the quota).
    Refused(ImError),
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
        (ClientRequest::StoreFile(asked), ClientResponse::FileStored(file)) if *asked == file => {
            Ok(Reply::Store(StoreReply::Stored))
        }
        (ClientRequest::StoreFile(asked), ClientResponse::FileStoring(file)) if *asked == file => {
            Ok(Reply::Store(StoreReply::Storing))
        }
        (ClientRequest::StoreFile(_), ClientResponse::StoreRefused(e)) => {
            Ok(Reply::Store(StoreReply::Refused(e)))
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
    fn an_upload_takes_only_answers_about_its_own_file() {
        let file = crate::files::FileId::of(b"a");
        let store = ClientRequest::StoreFile(file);
        assert_eq!(
            reply_to(&store, ClientResponse::FileStored(file)),
            Ok(Reply::Store(StoreReply::Stored))
        );
        assert_eq!(
            reply_to(&store, ClientResponse::FileStoring(file)),
            Ok(Reply::Store(StoreReply::Storing))
        );
        let other = crate::files::FileId::of(b"b");
        assert!(matches!(
            reply_to(&store, ClientResponse::FileStored(other)),
            Err(CallError::Unexpected(_))
        ));
        let over = ImError::QuotaExceeded { used_bytes: 9, quota_bytes: 10, size_bytes: 2 };
        assert_eq!(
            reply_to(&store, ClientResponse::StoreRefused(over.clone())),
            Ok(Reply::Store(StoreReply::Refused(over)))
        );
    }

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
