//! Requests from clients: decode, check the author against the connection,
//! verify (or recall) the signature, then submit, read, forward or answer.

use super::asker::{Asker, AskerId, AskerKind, OutboundId};
use super::output::ServiceOutput;
use super::ReplicaService;
use crate::ids::NodeId;
use crate::im::identity::UserId;
use crate::im::protocol::{CommandError, ImQuery, Operation, SignedCommand};
use crate::limits;
use crate::raft::SubmitError;
use crate::wire::client_protocol::{ClientRequest, ClientResponse, RequestFrame};
use crate::wire::replica_protocol::{self, PeerRequest};

/// Where a command came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// A client's connection, authenticated as this user.
    Client(UserId),
    /// A member replica (another, forwarding; or this one).
    Replica(NodeId),
}

impl ReplicaService {
    pub(super) fn on_client_request(&mut self, id: AskerId, user: Option<UserId>, frame: &[u8]) {
        let frame = match RequestFrame::decode(frame) {
            Ok(f) => f,
            Err(e) => {
                let asker = Asker { id, kind: AskerKind::Client { request_id: 0 } };
                return self.answer(asker, ClientResponse::BadRequest(e.to_string()));
            }
        };
        let asker = Asker { id, kind: AskerKind::Client { request_id: frame.request_id } };
        let Some(user) = user else {
            let why = "clients must connect with an ed25519 key".to_string();
            return self.answer(asker, ClientResponse::BadRequest(why));
        };
        let response = match frame.request {
            ClientRequest::Submit(command) => {
                return self.submit(command, asker, Origin::Client(user))
            }
            ClientRequest::Query(kind) => {
                match self.node.read(self.now, ImQuery { as_user: user, kind }) {
                    Ok(read) => {
                        self.reads.insert(read, asker);
                        return;
                    }
                    Err(e) => e.into(),
                }
            }
            ClientRequest::Presence(announcement) => self.take_presence(&announcement, Some(user)),
            ClientRequest::PresenceOf(users) => self.presence_of(&users, user),
            ClientRequest::Typing(notice) => self.take_typing(&notice, Some(user)),
            ClientRequest::StoreFile(file) => match self.store_file(file, user) {
                ClientResponse::FileStoring(file) => return self.wait_for_store(asker, file),
                other => other,
            },
        };
        self.answer(asker, response);
    }

    /// Verifies and proposes a command, or forwards it to the leader.
    pub(super) fn submit(&mut self, command: SignedCommand, asker: Asker, origin: Origin) {
        // A forwarding replica checked the author against its connection.
        let user = match origin {
            Origin::Client(user) => Some(user),
            Origin::Replica(_) => None,
        };
        // Before the signature check: a flood costs the replica little.
        if let Some(user) = user {
            let now_ms = self.now.as_micros() / 1000;
            if let Err(retry_after_ms) = self.command_rates.take(user, now_ms) {
                return self.answer(asker, ClientResponse::RateLimited { retry_after_ms });
            }
        }
        // A member forwards only what it verified and matched to its
        // client's connection, and replicas trust each other as Raft
        // requires (they apply without re-verifying): checking the
        // signature again would spend the leader's loop, the cluster's
        // serial stage, on work already done.
        let checked = match user {
            Some(user) => self.verified.verify(&command, Some(user)),
            None => command.decode_body(),
        };
        let body = match checked {
            Ok(body) => body,
            Err(e) => return self.answer(asker, ClientResponse::Refused(e)),
        };
        // Only a replica says what it holds, and only of itself: a client
        // could otherwise claim content is stored that is not.
        let replica_only = matches!(body.op, Operation::HoldFile { .. });
        let as_itself = matches!(origin, Origin::Replica(n) if n == command.author.node_id());
        if replica_only && !as_itself {
            return self.answer(asker, ClientResponse::Refused(CommandError::ReplicaOnly));
        }
        if let (Operation::SendFile { file, .. }, AskerKind::Client { .. }) = (&body.op, asker.kind)
        {
            if !self.note_file_send(asker.id, file.id) {
                return self.answer_now(asker, ClientResponse::Busy);
            }
        }
        match self.node.submit(self.now, &command) {
            Ok(proposal) => {
                self.proposals.insert(proposal, (asker, self.now));
            }
            Err(SubmitError::NotLeader { leader_hint: Some(leader) }) if asker.is_direct() => {
                self.forward(leader, command, asker)
            }
            Err(e) => self.answer(asker, e.into()),
        }
    }

    /// Hands a client's command to the leader, one hop only: a forwarded
    /// command that finds no leader at the receiver goes back as
    /// `NotLeader`, and the client decides where to go next.
    fn forward(&mut self, leader: crate::ids::NodeId, command: SignedCommand, asker: Asker) {
        if self.forwards_pending() >= limits::FORWARDS_PENDING_MAX {
            return self.answer(asker, ClientResponse::Busy);
        }
        let request = self.next_outbound();
        self.outbound.insert(request, super::peers::Pending::Forward(asker));
        let frame = replica_protocol::encode(&PeerRequest::Forward(command));
        self.outputs.push_back(ServiceOutput::SendPeerRequest { to: leader, request, frame });
    }

    pub(super) fn next_outbound(&mut self) -> OutboundId {
        self.next_outbound += 1;
        OutboundId(self.next_outbound)
    }

    /// Answers a client (a file send's success waits for its content to
    /// be stored on a majority: `file_sends`).
    pub(super) fn answer(&mut self, asker: Asker, response: ClientResponse) {
        if !self.hold_file_send(asker, &response) {
            self.answer_now(asker, response);
        }
    }

    pub(super) fn answer_now(&mut self, asker: Asker, response: ClientResponse) {
        if asker.kind == AskerKind::Itself {
            if !matches!(&response, ClientResponse::Applied(o) if o.result.is_ok()) {
                tracing::warn!(?response, "this replica's own command did not apply");
            }
            return;
        }
        let frame = asker.client_answer(response);
        self.outputs.push_back(ServiceOutput::Respond { asker: asker.id, frame });
    }
}
