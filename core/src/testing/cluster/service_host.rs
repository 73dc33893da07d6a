//! The replica service as the harness runs it: the harness's own driver.
//! Like `kith-io-sim`'s it only moves frames (Raft, replica requests and
//! their answers, gossip), remembers who asked what, fails requests that
//! get no answer in time, and hands client answers and live streams to
//! the workload. Every decision is the service's.

use super::host::{Fact, Host, HostContext, HostOutput};
use crate::ids::{NodeId, PersistId, ProposalId};
use crate::im::identity::UserId;
use crate::im::ImMachine;
use crate::raft::{MembershipChange, Node, Role, SubmitError};
use crate::replica::subscriptions::SubscriptionId;
use crate::replica::{
    AskerId, OutboundId, ReplicaService, ServiceConfig, ServiceInput, ServiceOutput,
};
use crate::testing::network::{Channel, Packet};
use crate::time::Instant;
use crate::wire::client_protocol::LiveFrame;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a request to another replica may go unanswered (it or its
/// answer may be lost) before the service hears it failed.
const PEER_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// A request's correlation id carries its sender's incarnation above this
/// bit, so a restarted replica never takes an answer to its previous
/// life's request (madsim seed 315).
const INCARNATION_SHIFT: u32 = 40;

/// One replica: its service and the driver's bookkeeping.
#[derive(Debug)]
pub struct ServiceHost {
    service: ReplicaService,
    now: Instant,
    incarnation: u64,
    next_asker: u64,
    /// Requests from other replicas awaiting our answer: who, and their
    /// correlation id.
    peer_askers: BTreeMap<AskerId, (NodeId, u64)>,
    /// Our requests awaiting an answer, and when they fail.
    outbound: BTreeMap<OutboundId, Instant>,
}

impl ServiceHost {
    /// The service.
    pub fn service(&self) -> &ReplicaService {
        &self.service
    }

    /// A client authenticated as `user` sent a client-protocol `frame`;
    /// its answer comes back as an event `ServiceOutput::Respond` for the
    /// returned asker.
    pub fn client_request(&mut self, now: Instant, user: UserId, frame: Bytes) -> AskerId {
        let asker = self.asker();
        let input = ServiceInput::ClientRequested { asker, user: Some(user), frame };
        self.service.handle_input(now, input);
        asker
    }

    /// A client opened a live stream with its subscribe `frame`; the
    /// service answers with an event `Subscribed` or `LiveRefused`.
    pub fn subscribe(&mut self, now: Instant, user: UserId, frame: Bytes) -> AskerId {
        let asker = self.asker();
        let input = ServiceInput::SubscribeRequested { asker, user: Some(user), frame };
        self.service.handle_input(now, input);
        asker
    }

    /// A live stream closed.
    pub fn unsubscribe(&mut self, now: Instant, subscription: SubscriptionId) {
        self.service.handle_input(now, ServiceInput::SubscriberLeft { subscription });
    }

    /// The next frame for a live stream (its queue is never full here).
    pub fn poll_live(&mut self, subscription: SubscriptionId) -> Option<LiveFrame> {
        self.service.poll_live(subscription)
    }

    fn asker(&mut self) -> AskerId {
        self.next_asker += 1;
        AskerId(self.next_asker)
    }

    fn input(&mut self, now: Instant, input: ServiceInput) {
        self.now = now;
        self.service.handle_input(now, input);
    }
}

impl Host for ServiceHost {
    type Machine = ImMachine;
    type Event = ServiceOutput;

    fn start(node: Node<ImMachine>, now: Instant, context: HostContext<'_>) -> Self {
        #[allow(unused_mut)]
        let mut config = ServiceConfig::default();
        #[cfg(feature = "bug-switches")]
        {
            config.bugs = context.bugs;
        }
        let mut service = ReplicaService::new(node, config, now);
        // The operator's list of replicas is the directory, as in io-sim.
        for &id in context.replicas {
            let name = format!("n{id}");
            service.handle_input(now, ServiceInput::ReplicaVouched { id, name });
        }
        ServiceHost {
            service,
            now,
            incarnation: context.incarnation,
            next_asker: 0,
            peer_askers: BTreeMap::new(),
            outbound: BTreeMap::new(),
        }
    }

    fn node(&self) -> &Node<ImMachine> {
        self.service.node()
    }

    fn receive(&mut self, now: Instant, packet: Packet) {
        let Packet { from, channel, bytes: frame, .. } = packet;
        let input = match channel {
            Channel::Raft => ServiceInput::RaftFrameReceived { from, frame },
            Channel::Request(correlation) => {
                let asker = self.asker();
                self.peer_askers.insert(asker, (from, correlation));
                ServiceInput::PeerRequested { asker, from, frame }
            }
            Channel::Answer(correlation) => {
                if correlation >> INCARNATION_SHIFT != self.incarnation {
                    return;
                }
                let request = OutboundId(correlation & ((1 << INCARNATION_SHIFT) - 1));
                if self.outbound.remove(&request).is_none() {
                    return;
                }
                ServiceInput::PeerAnswered { request, frame }
            }
            Channel::Gossip(topic) => ServiceInput::GossipReceived { topic, data: frame },
        };
        self.input(now, input);
    }

    fn persisted(&mut self, now: Instant, up_to: PersistId) {
        self.input(now, ServiceInput::Persisted { up_to });
    }

    fn persist_failed(&mut self, now: Instant, id: PersistId, reason: String) {
        self.input(now, ServiceInput::PersistFailed { id, reason });
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        let expired: Vec<OutboundId> =
            self.outbound.iter().filter(|(_, at)| **at <= now).map(|(id, _)| *id).collect();
        for request in expired {
            self.outbound.remove(&request);
            self.input(now, ServiceInput::PeerRequestFailed { request, sent: true });
        }
        self.service.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let request = self.outbound.values().min().copied();
        [self.service.poll_timeout(), request].into_iter().flatten().min()
    }

    fn poll_output(&mut self) -> Option<HostOutput<ServiceOutput>> {
        let output = self.service.poll_output()?;
        Some(match output {
            ServiceOutput::Respond { asker, frame } => match self.peer_askers.remove(&asker) {
                Some((to, correlation)) => {
                    let channel = Channel::Answer(correlation);
                    HostOutput::Send { to, channel, bytes: frame.into() }
                }
                None => {
                    let event = ServiceOutput::Respond { asker, frame };
                    HostOutput::Event { event, fact: None }
                }
            },
            ServiceOutput::SendRaft { to, frame } => {
                HostOutput::Send { to, channel: Channel::Raft, bytes: frame }
            }
            ServiceOutput::SendPeerRequest { to, request, frame } => {
                self.outbound.insert(request, self.now + PEER_REQUEST_TIMEOUT);
                let correlation = (self.incarnation << INCARNATION_SHIFT) | request.0;
                HostOutput::Send { to, channel: Channel::Request(correlation), bytes: frame.into() }
            }
            ServiceOutput::Publish { topic, data } => {
                HostOutput::Publish { channel: Channel::Gossip(topic), bytes: data.into() }
            }
            ServiceOutput::Persist { id, new_segment, bytes } => {
                HostOutput::Persist { id, new_segment, bytes }
            }
            ServiceOutput::Halted { reason } => HostOutput::Halted { reason },
            event => {
                let fact = match &event {
                    ServiceOutput::Applied { index, term, position, .. } => {
                        Some(Fact::Applied { index: *index, term: *term, position: *position })
                    }
                    ServiceOutput::MembershipChanged { membership, .. } => {
                        Some(Fact::MembershipChanged(membership.clone()))
                    }
                    ServiceOutput::RoleChanged { role: Role::Leader, term, .. } => {
                        Some(Fact::BecameLeader(*term))
                    }
                    _ => None,
                };
                HostOutput::Event { event, fact }
            }
        })
    }

    fn change_membership(
        &mut self,
        now: Instant,
        change: &MembershipChange,
    ) -> Result<ProposalId, SubmitError> {
        self.handle_timeout(now);
        self.service.change_membership(change)
    }

    fn transfer_leadership(&mut self, now: Instant, to: NodeId) {
        self.handle_timeout(now);
        self.service.transfer_leadership(to);
    }
}
