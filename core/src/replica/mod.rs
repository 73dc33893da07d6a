//! The replica service: everything a replica decides around its Raft node,
//! as one sans-I/O state machine that every driver runs.
//!
//! It owns the [`Node`] replicating the [`ImMachine`], the memory of
//! verified commands, the presence table and typing guard, the live
//! subscriptions, who may send Raft traffic, admin requests and
//! membership changes, and forwarding a follower's client commands to the
//! leader. Drivers (`kith-io-tokio` over libp2p and files, `kith-io-sim`
//! under madsim) only move bytes, keep time and report completions, so a
//! seed exercises exactly the rules production follows.
//!
//! # The run loop a driver writes
//!
//! ```text
//! loop {
//!     // 1. Carry out every command, in order.
//!     while let Some(output) = service.poll_output() {
//!         match output {
//!             Respond { asker, frame }          => answer the asker with frame,
//!             SendRaft { to, frame }            => send to the replica (best effort),
//!             SendPeerRequest { to, request, frame } => send; later report
//!                                                  PeerAnswered or PeerRequestFailed,
//!             Publish { topic, data }           => gossip to the other replicas,
//!             Persist { id, new_segment, bytes } => append, fsync, report Persisted,
//!             Subscribed { asker, subscription } => pair the stream with it,
//!             LiveRefused { asker, frame }      => write frame, close the stream,
//!             Halted { .. }                     => stop,
//!             _                                 => metrics, logs, checkers,
//!         }
//!     }
//!     // 2. Fill each live stream's queue while it has room.
//!     for each open subscription s: while queue(s) has room { service.poll_live(s) }
//!     // 3. Wait for the next fact or service.poll_timeout(), and report it.
//!     match next_event() {
//!         fact  => service.handle_input(now, fact),
//!         timer => service.handle_timeout(now),
//!     }
//! }
//! ```
//!
//! `now` never moves backward: a driver that reports an earlier time than
//! before has a bug, and the service stops it loudly.

mod admin;
mod answers;
mod asker;
mod command_rates;
mod file_notes;
mod file_sends;
mod files;
mod gossip;
mod held_answers;
mod input;
mod intake;
mod live;
mod output;
mod peers;
pub mod presence;
mod store_waits;
pub mod subscriptions;
mod topic;
pub mod typing;
pub mod verified_commands;

pub use asker::{AskerId, OutboundId};
pub use input::ServiceInput;
pub use output::{BlobRemoval, FileSource, ServiceOutput};
pub use topic::GossipTopic;

use crate::ids::{NodeId, ProposalId, ReadId};
use crate::im::identity::UserId;
use crate::im::ImMachine;
use crate::limits;
use crate::raft::{Input, Node, NodeOutput, Output};
use crate::replica::presence::PresenceTable;
use crate::replica::typing::TypingGuard;
use crate::replica::verified_commands::VerifiedCommands;
use crate::time::Instant;
use crate::wire::client_protocol::ClientResponse;
use crate::wire::replica_protocol::AdminResponse;
use asker::Asker;
use peers::{Admission, Pending};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Who administers a replica and how it joins.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ServiceConfig {
    /// Users (operator keys) allowed to change membership.
    pub admins: Vec<UserId>,
    /// Replicas this one was told to join through (trusted for Raft
    /// traffic and their directory until it has a configuration).
    pub join_targets: Vec<NodeId>,
    /// The replica's own key (its libp2p identity), to say in the log
    /// which file content it holds. Without it the replica stores and
    /// serves nothing of its own.
    pub identity: Option<crate::im::identity::Identity>,
    /// Test-only rule breakers.
    #[cfg(feature = "bug-switches")]
    pub bugs: crate::bugs::BugSwitches,
}

/// Counters about what the service refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceMetrics {
    /// Raft frames refused from replicas outside the cluster.
    pub raft_frames_refused: u64,
    /// Gossip messages that did not decode, verify or apply.
    pub gossip_refused: u64,
}

/// One replica, sans I/O. See the module docs for the run loop.
pub struct ReplicaService {
    node: Node<ImMachine>,
    now: Instant,
    admins: BTreeSet<UserId>,
    verified: VerifiedCommands,
    /// Each user's command rate through this replica.
    command_rates: command_rates::CommandRates,
    presence: PresenceTable,
    typing: TypingGuard,
    live: live::Live,
    admission: Admission,
    /// Replicas' names for status answers, and which are connected.
    names: BTreeMap<NodeId, String>,
    connected: BTreeSet<NodeId>,
    proposals: BTreeMap<ProposalId, (Asker, Instant)>,
    reads: BTreeMap<ReadId, Asker>,
    admin_proposals: BTreeMap<ProposalId, Asker>,
    outbound: BTreeMap<OutboundId, Pending>,
    next_outbound: u64,
    outputs: VecDeque<ServiceOutput>,
    metrics: ServiceMetrics,
    identity: Option<crate::im::identity::Identity>,
    /// Contents the driver is fetching for this replica.
    fetching: BTreeSet<crate::files::FileId>,
    /// Of those, the ones a client is uploading, and who.
    uploading: BTreeMap<crate::files::FileId, UserId>,
    /// Contents stored here whose holder record the log has not applied
    /// yet (`HoldFile` in flight, or lost and sent again by the sweep).
    /// At most [`limits::FILE_SWEEP_FILES_MAX`]; the oldest is forgotten
    /// first (at worst it is fetched again).
    unrecorded: file_notes::FileNotes<()>,
    /// Uploads that failed recently, and why: the uploader's next
    /// `StoreFile` is told instead of starting over unawares.
    /// Kept [`limits::UPLOAD_FAILURE_REMEMBERED_MS`], at most
    /// [`limits::UPLOADS_MAX`].
    upload_failures: file_notes::FileNotes<String>,
    /// When to look again for referenced content this replica lacks, and
    /// where the last look stopped.
    file_sweep: files::Sweep,
    file_sends: file_sends::FileSends,
    store_waits: store_waits::StoreWaits,
    /// When this replica was last the leader or took a Raft frame from the
    /// leader it knows (or started): knowing a leader is not enough, a
    /// learner never campaigns, so one the cluster stopped talking to keeps
    /// naming its old leader for good.
    leader_heard_at: Instant,
    #[cfg(feature = "bug-switches")]
    bugs: crate::bugs::BugSwitches,
}

impl std::fmt::Debug for ReplicaService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaService").field("node", &self.node).finish_non_exhaustive()
    }
}

impl ReplicaService {
    /// Wraps a started node (see [`Node::resume`]).
    pub fn new(node: Node<ImMachine>, config: ServiceConfig, now: Instant) -> ReplicaService {
        let admission = Admission {
            vouched: BTreeSet::new(),
            join_targets: config.join_targets.iter().copied().collect(),
        };
        ReplicaService {
            node,
            now,
            admins: config.admins.iter().copied().collect(),
            verified: VerifiedCommands::default(),
            command_rates: command_rates::CommandRates::default(),
            presence: PresenceTable::default(),
            typing: TypingGuard::default(),
            live: live::Live::default(),
            admission,
            names: BTreeMap::new(),
            connected: BTreeSet::new(),
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            admin_proposals: BTreeMap::new(),
            outbound: BTreeMap::new(),
            next_outbound: 0,
            outputs: VecDeque::new(),
            metrics: ServiceMetrics::default(),
            identity: config.identity,
            fetching: BTreeSet::new(),
            uploading: BTreeMap::new(),
            upload_failures: file_notes::FileNotes::new(limits::UPLOADS_MAX),
            file_sweep: files::Sweep::starting(now),
            unrecorded: file_notes::FileNotes::new(limits::FILE_SWEEP_FILES_MAX),
            file_sends: file_sends::FileSends::default(),
            store_waits: store_waits::StoreWaits::default(),
            leader_heard_at: now,
            #[cfg(feature = "bug-switches")]
            bugs: config.bugs,
        }
    }

    /// Feeds one fact from the driver.
    pub fn handle_input(&mut self, now: Instant, input: ServiceInput) {
        self.advance(now);
        match input {
            ServiceInput::ClientRequested { asker, user, frame } => {
                self.on_client_request(asker, user, &frame)
            }
            ServiceInput::SubscribeRequested { asker, user, frame } => {
                self.subscribe(asker, user, &frame)
            }
            ServiceInput::SubscriberLeft { subscription } => self.unsubscribe(subscription),
            ServiceInput::PeerRequested { asker, from, frame } => {
                self.on_peer_request(asker, from, &frame)
            }
            ServiceInput::RaftFrameReceived { from, frame } => {
                self.take_raft_frame(from, frame);
            }
            ServiceInput::PeerAnswered { request, frame } => self.on_peer_answer(request, &frame),
            ServiceInput::PeerRequestFailed { request, sent } => {
                self.on_peer_failure(request, sent)
            }
            ServiceInput::AdminRequested { asker, operator, frame } => {
                self.on_admin_request(asker, operator, &frame)
            }
            ServiceInput::GossipReceived { topic, data } => {
                if !self.on_gossip(topic, &data) {
                    self.metrics.gossip_refused += 1;
                }
            }
            ServiceInput::Persisted { up_to } => {
                self.node.handle_input(now, Input::Persisted { up_to })
            }
            ServiceInput::PersistFailed { id, reason } => {
                self.node.handle_input(now, Input::PersistFailed { id, reason })
            }
            ServiceInput::JoinTargetReached { id } => {
                self.admission.join_targets.insert(id);
            }
            ServiceInput::PeerConnected { peer } => {
                self.connected.insert(peer);
            }
            ServiceInput::PeerDisconnected { peer } => {
                self.connected.remove(&peer);
                if self.node.membership().contains(peer) {
                    self.node.handle_input(now, Input::PeerUnreachable { peer });
                }
            }
            ServiceInput::ReplicaVouched { id, name } => {
                self.admission.vouched.insert(id);
                self.names.insert(id, name);
            }
            ServiceInput::ChunkRequested { asker, user, frame } => {
                self.on_chunk_request(asker, user, &frame)
            }
            ServiceInput::BlobStored { file } => self.on_blob_stored(file),
            ServiceInput::BlobDamaged { file } => self.on_blob_damaged(file),
            ServiceInput::FetchFailed { file, reason } => self.on_fetch_failed(file, reason),
            ServiceInput::BlobsListed { files } => self.on_blobs_listed(files),
        }
    }

    /// Advances time to `now`; call when [`Self::poll_timeout`] is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        if self.node.poll_timeout().is_some_and(|t| t <= now) {
            self.node.handle_timeout(now);
        }
        self.presence.expire(now);
        self.expire_file_sends();
        self.expire_store_waits();
        self.sweep_files(now);
    }

    /// The next command for the driver, if any.
    pub fn poll_output(&mut self) -> Option<ServiceOutput> {
        loop {
            if let Some(output) = self.outputs.pop_front() {
                return Some(output);
            }
            let output = self.node.poll_output()?;
            self.carry_out(output);
        }
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.node.poll_timeout(),
            self.presence.poll_timeout(),
            self.file_sends_timeout(),
            self.store_waits_timeout(),
            Some(self.file_sweep.due),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The Raft node (read-only: status, metrics, checkers).
    pub fn node(&self) -> &Node<ImMachine> {
        &self.node
    }

    /// A user's presence as this replica's table shows it.
    pub fn presence(&self, user: UserId) -> presence::PresenceView {
        self.presence.view(self.now, user)
    }

    /// Counters about what the service refused.
    pub fn metrics(&self) -> &ServiceMetrics {
        &self.metrics
    }

    /// Client commands forwarded to the leader and not yet answered.
    pub fn forwards_pending(&self) -> usize {
        self.outbound.values().filter(|p| matches!(p, Pending::Forward(_))).count()
    }

    fn advance(&mut self, now: Instant) {
        assert!(now >= self.now, "time moved backward: {now:?} after {:?}", self.now);
        if self.node.leader() == Some(self.node.id()) {
            self.leader_heard_at = now;
        }
        self.now = now;
    }

    /// Turns one node output into the service's commands and answers.
    fn carry_out(&mut self, output: NodeOutput<ImMachine>) {
        let out = match output {
            Output::Send { to, frame } => ServiceOutput::SendRaft { to, frame },
            Output::Persist { id, new_segment, bytes } => {
                ServiceOutput::Persist { id, new_segment, bytes }
            }
            Output::Applied { index, term, position, proposal, response } => {
                self.live.hub.on_events(self.node.state_machine(), &response.events);
                self.on_file_events(&response.events);
                let asked = proposal.and_then(|p| self.proposals.remove(&p));
                let waited = asked.map(|(_, since)| self.now.saturating_since(since));
                if let Some((asker, _)) = asked {
                    self.answer(asker, response.into());
                }
                ServiceOutput::Applied { index, term, position, waited }
            }
            Output::Dropped { proposal, outcome } => {
                if let Some((asker, _)) = self.proposals.remove(&proposal) {
                    self.answer(asker, ClientResponse::dropped(outcome));
                } else if let Some(asker) = self.admin_proposals.remove(&proposal) {
                    let retry = AdminResponse::Retry("the change was not committed".into());
                    self.answer_admin(asker, retry);
                }
                return;
            }
            Output::MembershipChanged { proposal, membership, index } => {
                if let Some(asker) = proposal.and_then(|p| self.admin_proposals.remove(&p)) {
                    let status = self.cluster_status();
                    self.answer_admin(asker, AdminResponse::Changed(status));
                }
                // Fewer voters may make a majority of holders.
                self.release_stored_sends();
                ServiceOutput::MembershipChanged { index, membership }
            }
            Output::ReadReady { read, result, .. } => {
                if let Some(asker) = self.reads.remove(&read) {
                    self.answer(asker, ClientResponse::Answer(result));
                }
                return;
            }
            Output::ReadFailed { read } => {
                if let Some(asker) = self.reads.remove(&read) {
                    self.answer(asker, ClientResponse::Retry { maybe_applied: false });
                }
                return;
            }
            Output::RoleChanged { role, term, leader } => {
                ServiceOutput::RoleChanged { role, term, leader }
            }
            Output::Halted { reason } => ServiceOutput::Halted { reason },
        };
        self.outputs.push_back(out);
    }
}

#[cfg(test)]
mod tests;
