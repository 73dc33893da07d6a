//! The service's rules, driven by a tiny in-memory driver: two replicas
//! wired by function calls, disks that are durable at once.

use super::*;
use crate::config::Config;
use crate::im::identity::Identity;
use crate::im::presence::{PresenceBody, PresenceStatus, SignedPresence};
use crate::im::protocol::{CommandBody, Operation, SignedCommand, IM_PROTOCOL_VERSION};
use crate::im::typing::{SignedTyping, TypingBody, TYPING_TTL_MS};
use crate::limits;
use crate::raft::{OnEmptyDisk, Role};
use crate::replica::subscriptions::SubscriptionId;
use crate::wire::client_protocol::{ClientRequest, RequestFrame, ResponseFrame};
use crate::wire::replica_protocol::{self, AdminRequest, PeerRequest, PeerResponse, ReplicaRecord};
use bytes::Bytes;
use std::time::Duration;

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);
const START_MS: u64 = 1_000_000;

/// Two replicas and what they answered their askers.
struct Pair {
    now: Instant,
    services: BTreeMap<NodeId, ReplicaService>,
    answers: Vec<(NodeId, AskerId, Vec<u8>)>,
    published: Vec<(NodeId, GossipTopic)>,
    /// Forwards in flight: (to, their asker) -> (from, our request).
    relayed: BTreeMap<(NodeId, AskerId), (NodeId, OutboundId)>,
    /// Drop replica-protocol requests instead of delivering them.
    cut: bool,
    /// A replica whose Raft frames (both ways) are lost.
    isolated: Option<NodeId>,
    /// Subscriptions opened: (replica, asker, subscription).
    subscribed: Vec<(NodeId, AskerId, SubscriptionId)>,
    next_asker: u64,
    /// The two replicas' ids (A and B unless keyed).
    ids: [NodeId; 2],
    /// File commands the replicas gave: (replica, command).
    file_outputs: Vec<(NodeId, ServiceOutput)>,
}

impl Pair {
    fn new(admins: Vec<UserId>) -> Pair {
        Pair::build(admins, [A, B], [None, None])
    }

    /// A pair whose ids are derived from their keys, as real replicas'
    /// are, so they can say in the log what they hold.
    fn keyed(keys: [Identity; 2]) -> Pair {
        let ids = [keys[0].user().node_id(), keys[1].user().node_id()];
        let [ka, kb] = keys;
        Pair::build(Vec::new(), ids, [Some(ka), Some(kb)])
    }

    fn build(admins: Vec<UserId>, ids: [NodeId; 2], keys: [Option<Identity>; 2]) -> Pair {
        let now = Instant::from_millis(START_MS);
        let services = ids
            .into_iter()
            .zip(keys)
            .map(|(id, identity)| {
                let node = Node::resume(
                    Config::new(id, id.get()),
                    &Default::default(),
                    ImMachine::default(),
                    now,
                    OnEmptyDisk::Bootstrap(&ids),
                )
                .expect("starts");
                let config =
                    ServiceConfig { admins: admins.clone(), identity, ..ServiceConfig::default() };
                (id, ReplicaService::new(node, config, now))
            })
            .collect();
        let mut pair = Pair {
            now,
            services,
            answers: Vec::new(),
            published: Vec::new(),
            relayed: BTreeMap::new(),
            cut: false,
            isolated: None,
            subscribed: Vec::new(),
            next_asker: 1000,
            ids,
            file_outputs: Vec::new(),
        };
        pair.services.get_mut(&ids[0]).expect("first").node.campaign(now);
        pair.settle();
        assert_eq!(pair.services[&ids[0]].node().status().role, Role::Leader);
        pair
    }

    fn asker(&mut self) -> AskerId {
        self.next_asker += 1;
        AskerId(self.next_asker)
    }

    fn input(&mut self, at: NodeId, input: ServiceInput) {
        let now = self.now;
        self.services.get_mut(&at).expect("replica").handle_input(now, input);
        self.settle();
    }

    /// Carries out every output until nothing moves.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for id in self.ids {
                while let Some(out) = self.services.get_mut(&id).expect("replica").poll_output() {
                    moved = true;
                    self.carry_out(id, out);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the pair never settled");
    }

    fn carry_out(&mut self, from: NodeId, out: ServiceOutput) {
        let other = if from == self.ids[0] { self.ids[1] } else { self.ids[0] };
        let now = self.now;
        fn service(p: &mut Pair, id: NodeId) -> &mut ReplicaService {
            p.services.get_mut(&id).expect("replica")
        }
        match out {
            ServiceOutput::SendRaft { to, .. }
                if self.isolated.is_some_and(|i| i == to || i == from) => {}
            // A replica not in the pair (one just added) is unreachable.
            ServiceOutput::SendRaft { to, frame } if self.services.contains_key(&to) => {
                service(self, to).handle_input(now, ServiceInput::RaftFrameReceived { from, frame })
            }
            ServiceOutput::Persist { id, .. } => {
                service(self, from).handle_input(now, ServiceInput::Persisted { up_to: id })
            }
            ServiceOutput::SendPeerRequest { to, request, frame } => {
                if self.cut {
                    return;
                }
                self.next_asker += 1;
                let asker = AskerId(self.next_asker);
                self.relayed.insert((to, asker), (from, request));
                let input = ServiceInput::PeerRequested { asker, from, frame: Bytes::from(frame) };
                service(self, to).handle_input(now, input)
            }
            ServiceOutput::Respond { asker, frame } => match self.relayed.remove(&(from, asker)) {
                Some((back, request)) => {
                    let input = ServiceInput::PeerAnswered { request, frame: Bytes::from(frame) };
                    service(self, back).handle_input(now, input)
                }
                None => self.answers.push((from, asker, frame)),
            },
            ServiceOutput::Subscribed { asker, subscription } => {
                self.subscribed.push((from, asker, subscription))
            }
            ServiceOutput::LiveRefused { asker, frame } => self.answers.push((from, asker, frame)),
            ServiceOutput::Publish { topic, .. } => {
                assert_ne!(from, other);
                self.published.push((from, topic))
            }
            out @ (ServiceOutput::ServeChunks { .. }
            | ServiceOutput::FetchFile { .. }
            | ServiceOutput::ListBlobs { .. }
            | ServiceOutput::RemoveBlob { .. }) => self.file_outputs.push((from, out)),
            _ => {}
        }
    }

    fn client_answer(&self, asker: AskerId) -> ClientResponse {
        let (_, _, frame) = self.answers.iter().find(|(_, a, _)| *a == asker).expect("answered");
        ResponseFrame::decode(frame).expect("a response frame").response
    }

    fn admin_answer(&self, asker: AskerId) -> AdminResponse {
        let (_, _, frame) = self.answers.iter().find(|(_, a, _)| *a == asker).expect("answered");
        replica_protocol::decode(frame).expect("an admin response")
    }

    fn ask(&mut self, at: NodeId, who: &Identity, request: ClientRequest) -> ClientResponse {
        let asker = self.asker();
        let frame = Bytes::from(RequestFrame { request_id: 7, request }.encode());
        self.input(at, ServiceInput::ClientRequested { asker, user: Some(who.user()), frame });
        self.client_answer(asker)
    }
}

/// `who` signs `op` as command `n`.
fn signed(who: &Identity, n: u128, op: Operation) -> SignedCommand {
    let body = CommandBody {
        version: IM_PROTOCOL_VERSION,
        command_id: uuid::Uuid::from_u128(n),
        issued_at_ms: START_MS,
        op,
    };
    SignedCommand::sign(who, &body)
}

fn register(who: &Identity, name: &str) -> SignedCommand {
    let n = u128::from(name.len() as u64) << 64 | 1;
    signed(who, n, Operation::Register { name: name.into() })
}

fn applied_ok(response: &ClientResponse) -> bool {
    matches!(response, ClientResponse::Applied(o) if o.result.is_ok())
}

#[test]
fn a_follower_forwards_a_command_and_relays_the_leaders_answer() {
    let mut pair = Pair::new(Vec::new());
    let alice = Identity::from_secret([1; 32]);
    let command = register(&alice, "alice");
    let first = pair.ask(B, &alice, ClientRequest::Submit(command.clone()));
    assert!(applied_ok(&first), "{first:?}");
    // The same signed command again, through the leader: applied once.
    let again = pair.ask(A, &alice, ClientRequest::Submit(command));
    assert!(matches!(&again, ClientResponse::Applied(o) if o.duplicate), "{again:?}");
    assert_eq!(pair.services[&B].forwards_pending(), 0);
}

#[test]
fn the_leader_takes_a_members_check_of_what_it_forwards() {
    let mut pair = Pair::new(Vec::new());
    let alice = Identity::from_secret([1; 32]);
    let first = pair.ask(B, &alice, ClientRequest::Submit(register(&alice, "alice")));
    assert!(applied_ok(&first), "{first:?}");
    // B checked the signature when it took the command in; A, the leader,
    // proposed it on B's word.
    assert_eq!(pair.services[&B].verified.remembered(), 1);
    assert_eq!(pair.services[&A].verified.remembered(), 0);
    // A still decodes what it proposes: a body of another version is refused.
    let body = CommandBody {
        version: IM_PROTOCOL_VERSION + 1,
        command_id: uuid::Uuid::from_u128(7),
        issued_at_ms: START_MS,
        op: Operation::Register { name: "alice".into() },
    };
    let future = SignedCommand::sign(&alice, &body);
    let asker = pair.asker();
    let frame = replica_protocol::encode(&PeerRequest::Forward(future));
    pair.input(A, ServiceInput::PeerRequested { asker, from: B, frame: frame.into() });
    let (_, _, answer) = pair.answers.iter().find(|(_, a, _)| *a == asker).expect("answered");
    let answer: PeerResponse = replica_protocol::decode(answer).expect("decodes");
    let refused = crate::im::protocol::CommandError::Version {
        found: IM_PROTOCOL_VERSION + 1,
        supported: IM_PROTOCOL_VERSION,
    };
    assert_eq!(answer, PeerResponse::Forwarded(ClientResponse::Refused(refused)));
}

#[test]
fn a_forwarded_command_travels_one_hop_only() {
    let mut pair = Pair::new(Vec::new());
    let alice = Identity::from_secret([1; 32]);
    let asker = pair.asker();
    let frame = replica_protocol::encode(&PeerRequest::Forward(register(&alice, "alice")));
    // B is not the leader: a command forwarded to it goes back as NotLeader.
    pair.input(B, ServiceInput::PeerRequested { asker, from: A, frame: frame.into() });
    let (_, _, answer) = pair.answers.iter().find(|(_, a, _)| *a == asker).expect("answered");
    let answer: PeerResponse = replica_protocol::decode(answer).expect("decodes");
    assert!(
        matches!(answer, PeerResponse::Forwarded(ClientResponse::NotLeader { .. })),
        "{answer:?}"
    );
}

#[test]
fn a_lost_forward_tells_the_client_whether_it_may_have_been_applied() {
    for sent in [false, true] {
        let mut pair = Pair::new(Vec::new());
        pair.cut = true;
        let alice = Identity::from_secret([1; 32]);
        let asker = pair.asker();
        let frame =
            RequestFrame { request_id: 3, request: ClientRequest::Submit(register(&alice, "a")) };
        let input = ServiceInput::ClientRequested {
            asker,
            user: Some(alice.user()),
            frame: frame.encode().into(),
        };
        pair.input(B, input);
        assert_eq!(pair.services[&B].forwards_pending(), 1);
        let request = OutboundId(1);
        pair.input(B, ServiceInput::PeerRequestFailed { request, sent });
        assert_eq!(pair.client_answer(asker), ClientResponse::Retry { maybe_applied: sent });
        assert_eq!(pair.services[&B].forwards_pending(), 0);
    }
}

#[test]
fn a_command_signed_by_another_user_is_refused_at_intake() {
    let mut pair = Pair::new(Vec::new());
    let (alice, mallory) = (Identity::from_secret([1; 32]), Identity::from_secret([2; 32]));
    let answer = pair.ask(B, &mallory, ClientRequest::Submit(register(&alice, "alice")));
    assert!(matches!(answer, ClientResponse::Refused(_)), "{answer:?}");
    assert_eq!(pair.services[&B].forwards_pending(), 0);
}

#[test]
fn raft_traffic_is_taken_from_members_and_vouched_replicas_only() {
    let mut pair = Pair::new(Vec::new());
    let stranger = NodeId(99);
    let b = &pair.services[&B];
    assert!(b.admits_raft_from(A));
    assert!(!b.admits_raft_from(stranger));
    pair.input(
        B,
        ServiceInput::RaftFrameReceived { from: stranger, frame: Bytes::from_static(b"x") },
    );
    assert_eq!(pair.services[&B].metrics().raft_frames_refused, 1);
    pair.input(B, ServiceInput::ReplicaVouched { id: stranger, name: "n99".into() });
    assert!(pair.services[&B].admits_raft_from(stranger));
}

#[test]
fn typing_notices_are_taken_once_and_never_replayed_late() {
    let mut pair = Pair::new(Vec::new());
    let alice = Identity::from_secret([1; 32]);
    assert!(applied_ok(&pair.ask(A, &alice, ClientRequest::Submit(register(&alice, "alice")))));
    let body = CommandBody {
        version: IM_PROTOCOL_VERSION,
        command_id: uuid::Uuid::from_u128(77),
        issued_at_ms: START_MS,
        op: Operation::CreateRoom {
            name: "r".into(),
            visibility: crate::im::protocol::Visibility::Public,
        },
    };
    assert!(applied_ok(&pair.ask(
        A,
        &alice,
        ClientRequest::Submit(SignedCommand::sign(&alice, &body))
    )));
    let room = crate::im::protocol::RoomId::Group("r".into());
    let notice = SignedTyping::sign(
        &alice,
        &TypingBody { room: room.clone(), active: true, issued_at_ms: START_MS },
    );
    assert_eq!(
        pair.ask(A, &alice, ClientRequest::Typing(notice.clone())),
        ClientResponse::TypingTaken
    );
    let published = pair.published.len();
    // The same notice again is no news: taken, not passed on again.
    assert_eq!(
        pair.ask(A, &alice, ClientRequest::Typing(notice.clone())),
        ClientResponse::TypingTaken
    );
    assert_eq!(pair.published.len(), published);
    // Replayed once it has lapsed (here at the other replica, which saw it
    // over gossip in production): refused.
    pair.now = pair.now
        + Duration::from_millis(TYPING_TTL_MS + crate::limits::TYPING_CLOCK_SKEW_MAX_MS + 1);
    let late = pair.ask(B, &alice, ClientRequest::Typing(notice));
    assert!(matches!(&late, ClientResponse::BadRequest(why) if why.contains("lapsed")), "{late:?}");
}

#[test]
fn presence_from_a_client_is_gossiped_and_junk_gossip_is_counted() {
    let mut pair = Pair::new(Vec::new());
    let alice = Identity::from_secret([1; 32]);
    let body =
        PresenceBody { status: PresenceStatus::Online, issued_at_ms: START_MS, ttl_ms: 60_000 };
    let announcement = SignedPresence::sign(&alice, &body);
    assert_eq!(
        pair.ask(A, &alice, ClientRequest::Presence(announcement.clone())),
        ClientResponse::PresenceTaken
    );
    assert_eq!(pair.published, vec![(A, GossipTopic::Presence)]);
    let data = Bytes::from(replica_protocol::encode(&announcement));
    pair.input(B, ServiceInput::GossipReceived { topic: GossipTopic::Presence, data });
    let seen = pair.ask(B, &alice, ClientRequest::PresenceOf(vec![alice.user()]));
    assert!(
        matches!(&seen, ClientResponse::Presence(v) if v[0].status == PresenceStatus::Online),
        "{seen:?}"
    );
    // Gossip is never re-published by the replica that received it.
    assert_eq!(pair.published.len(), 1);
    let junk = Bytes::from_static(b"\x01\x00junk");
    pair.input(B, ServiceInput::GossipReceived { topic: GossipTopic::Typing, data: junk });
    assert_eq!(pair.services[&B].metrics().gossip_refused, 1);
}

#[test]
fn membership_changes_are_for_admins_and_forwarded_to_the_leader() {
    let operator = Identity::from_secret([9; 32]);
    let mut pair = Pair::new(vec![operator.user()]);
    let stranger = Identity::from_secret([8; 32]);
    // A PeerId of an ed25519 key: identity multihash of its protobuf key.
    let mut peer = vec![0x00, 36, 0x08, 0x01, 0x12, 0x20];
    peer.extend_from_slice(&[5; 32]);
    let add = AdminRequest::Add {
        replica: ReplicaRecord { peer: peer.clone(), addrs: Vec::new() },
        learner: true,
    };
    let frame = Bytes::from(replica_protocol::encode(&add));
    let asker = pair.asker();
    pair.input(
        B,
        ServiceInput::AdminRequested {
            asker,
            operator: Some(stranger.user()),
            frame: frame.clone(),
        },
    );
    assert!(matches!(pair.admin_answer(asker), AdminResponse::Refused(_)));
    let asker = pair.asker();
    pair.input(B, ServiceInput::AdminRequested { asker, operator: Some(operator.user()), frame });
    let changed = pair.admin_answer(asker);
    let AdminResponse::Changed(status) = changed else { panic!("{changed:?}") };
    assert!(status.members.iter().any(|m| m.id == NodeId::of_peer(&peer) && m.role == "learner"));
    // Status is for anyone.
    let asker = pair.asker();
    let frame = Bytes::from(replica_protocol::encode(&AdminRequest::Status));
    pair.input(A, ServiceInput::AdminRequested { asker, operator: None, frame });
    assert!(matches!(pair.admin_answer(asker), AdminResponse::Status(_)));
}

#[test]
fn a_replica_long_unheard_from_a_leader_sends_its_subscribers_elsewhere() {
    use crate::wire::client_protocol::{LiveFrame, SubscribeFrame};
    let mut pair = Pair::new(Vec::new());
    let ann = Identity::from_secret([1; 32]);
    let frame = Bytes::from(SubscribeFrame { rooms: Vec::new() }.encode());
    let subscribe = |pair: &mut Pair| {
        let asker = pair.asker();
        let user = Some(ann.user());
        pair.input(B, ServiceInput::SubscribeRequested { asker, user, frame: frame.clone() });
        asker
    };
    let asker = subscribe(&mut pair);
    let (_, _, subscription) = *pair.subscribed.iter().find(|s| s.1 == asker).expect("opened");
    let poll = |pair: &mut Pair| pair.services.get_mut(&B).expect("B").poll_live(subscription);
    assert_eq!(poll(&mut pair), None);
    // Cut off from the leader: elections fail, and subscribers stay while
    // they may be short (what counts is the last frame heard from the
    // leader, not whether one is known: a learner never campaigns)...
    pair.isolated = Some(B);
    let cut_at = pair.now;
    let tick = Duration::from_millis(50);
    while pair.now.saturating_since(cut_at).as_millis() <= limits::LEADER_UNHEARD_MS_MAX.into() {
        assert_eq!(
            poll(&mut pair),
            None,
            "sent away {:?} after the cut",
            pair.now.saturating_since(cut_at)
        );
        pair.now = pair.now + tick;
        for id in [A, B] {
            let now = pair.now;
            pair.services.get_mut(&id).expect("replica").handle_timeout(now);
        }
        pair.settle();
    }
    // ...then they are sent to another replica, once, and newcomers too.
    pair.now = pair.now + tick;
    let now = pair.now;
    pair.services.get_mut(&B).expect("B").handle_timeout(now);
    assert!(matches!(poll(&mut pair), Some(LiveFrame::Refused(why)) if why.contains("no leader")));
    assert_eq!(poll(&mut pair), None);
    let refused = subscribe(&mut pair);
    let (_, _, frame) = pair.answers.iter().find(|(_, a, _)| *a == refused).expect("refused");
    assert!(matches!(LiveFrame::decode(frame), Ok(LiveFrame::Refused(_))));
}

#[test]
fn garbage_from_anyone_gets_an_answer_not_a_panic() {
    let mut pair = Pair::new(Vec::new());
    for bytes in [&b""[..], b"\x01", b"\x01\x00\xff\xff\xff", &[0xff; 64]] {
        let frame = Bytes::copy_from_slice(bytes);
        let (a, b, c, d) = (pair.asker(), pair.asker(), pair.asker(), pair.asker());
        pair.input(A, ServiceInput::ClientRequested { asker: a, user: None, frame: frame.clone() });
        pair.input(
            A,
            ServiceInput::PeerRequested { asker: b, from: NodeId(77), frame: frame.clone() },
        );
        pair.input(
            A,
            ServiceInput::AdminRequested { asker: c, operator: None, frame: frame.clone() },
        );
        pair.input(
            A,
            ServiceInput::SubscribeRequested { asker: d, user: None, frame: frame.clone() },
        );
        pair.input(A, ServiceInput::PeerAnswered { request: OutboundId(5), frame });
        for asker in [a, b, c] {
            assert!(pair.answers.iter().any(|(_, x, _)| *x == asker), "{bytes:?} unanswered");
        }
    }
}

#[test]
#[should_panic(expected = "time moved backward")]
fn a_driver_that_turns_time_back_is_stopped_loudly() {
    let mut pair = Pair::new(Vec::new());
    let earlier = pair.now - Duration::from_millis(1);
    pair.services.get_mut(&A).expect("A").handle_timeout(earlier);
}

#[test]
fn only_a_replica_says_what_it_holds_and_only_of_itself() {
    let mut pair = Pair::new(Vec::new());
    let mallory = Identity::from_secret([2; 32]);
    let body = CommandBody {
        version: IM_PROTOCOL_VERSION,
        command_id: uuid::Uuid::from_u128(9),
        issued_at_ms: START_MS,
        op: Operation::HoldFile { file: crate::files::FileId::of(b"not stored") },
    };
    let hold = SignedCommand::sign(&mallory, &body);
    // From a client, at the leader and at a follower.
    for at in [A, B] {
        let answer = pair.ask(at, &mallory, ClientRequest::Submit(hold.clone()));
        assert_eq!(answer, ClientResponse::Refused(crate::im::protocol::CommandError::ReplicaOnly));
    }
    // Forwarded by a member, but signed by a key that is not that member's.
    let asker = pair.asker();
    let frame = replica_protocol::encode(&PeerRequest::Forward(hold));
    pair.input(A, ServiceInput::PeerRequested { asker, from: B, frame: frame.into() });
    let (_, _, answer) = pair.answers.iter().find(|(_, a, _)| *a == asker).expect("answered");
    let answer: PeerResponse = replica_protocol::decode(answer).expect("decodes");
    assert_eq!(
        answer,
        PeerResponse::Forwarded(ClientResponse::Refused(
            crate::im::protocol::CommandError::ReplicaOnly
        ))
    );
}

mod files;

#[test]
fn a_user_past_the_command_rate_is_told_when_to_resend_and_others_are_not_held_up() {
    let mut pair = Pair::new(Vec::new());
    let (alice, bob) = (Identity::from_secret([1; 32]), Identity::from_secret([2; 32]));
    let command = register(&alice, "alice");
    for n in 0..limits::COMMAND_RATE.burst {
        let answer = pair.ask(A, &alice, ClientRequest::Submit(command.clone()));
        assert!(matches!(answer, ClientResponse::Applied(_)), "command {n}: {answer:?}");
    }
    let limited = pair.ask(A, &alice, ClientRequest::Submit(command.clone()));
    let ClientResponse::RateLimited { retry_after_ms } = limited else { panic!("{limited:?}") };
    assert_eq!(retry_after_ms, limits::COMMAND_RATE.interval_ms);
    assert!(applied_ok(&pair.ask(A, &bob, ClientRequest::Submit(register(&bob, "bob")))));
    // Resent after the wait, the same command gets its first outcome.
    pair.now = pair.now + std::time::Duration::from_millis(retry_after_ms);
    let again = pair.ask(A, &alice, ClientRequest::Submit(command));
    assert!(matches!(&again, ClientResponse::Applied(o) if o.duplicate && o.result.is_ok()));
}

#[test]
fn a_user_who_blocks_another_looks_never_seen_to_them() {
    let mut pair = Pair::new(Vec::new());
    let (alice, bob, cat) = (
        Identity::from_secret([1; 32]),
        Identity::from_secret([2; 32]),
        Identity::from_secret([3; 32]),
    );
    for (n, (who, name)) in
        [(&alice, "alice"), (&bob, "bob"), (&cat, "cat")].into_iter().enumerate()
    {
        let command = signed(who, 100 + n as u128, Operation::Register { name: name.into() });
        assert!(applied_ok(&pair.ask(A, who, ClientRequest::Submit(command))));
    }
    let body =
        PresenceBody { status: PresenceStatus::Online, issued_at_ms: START_MS, ttl_ms: 60_000 };
    let announced =
        pair.ask(A, &alice, ClientRequest::Presence(SignedPresence::sign(&alice, &body)));
    assert_eq!(announced, ClientResponse::PresenceTaken);
    let block = signed(&alice, 200, Operation::Block { user: bob.user() });
    assert!(applied_ok(&pair.ask(A, &alice, ClientRequest::Submit(block))));
    let seen_by = |pair: &mut Pair, who: &Identity| match pair.ask(
        A,
        who,
        ClientRequest::PresenceOf(vec![alice.user()]),
    ) {
        ClientResponse::Presence(v) => (v[0].status, v[0].last_seen_ms),
        other => panic!("{other:?}"),
    };
    assert_eq!(seen_by(&mut pair, &bob), (PresenceStatus::Offline, None));
    assert_eq!(seen_by(&mut pair, &cat), (PresenceStatus::Online, Some(START_MS)));
}

#[test]
fn typing_does_not_reach_users_the_typist_blocks() {
    use crate::im::protocol::{RoomId, Visibility};
    use crate::wire::client_protocol::{LiveFrame, RoomFrom, SubscribeFrame};
    let mut pair = Pair::new(Vec::new());
    let (ann, bob, cat) = (
        Identity::from_secret([1; 32]),
        Identity::from_secret([2; 32]),
        Identity::from_secret([3; 32]),
    );
    let room = RoomId::Group("r".into());
    let mut n = 300;
    let mut submit = |pair: &mut Pair, who: &Identity, op: Operation| {
        n += 1;
        assert!(applied_ok(&pair.ask(A, who, ClientRequest::Submit(signed(who, n, op)))));
    };
    for (who, name) in [(&ann, "ann"), (&bob, "bob"), (&cat, "cat")] {
        submit(&mut pair, who, Operation::Register { name: name.into() });
    }
    let create = Operation::CreateRoom { name: "r".into(), visibility: Visibility::Public };
    submit(&mut pair, &ann, create);
    for who in [&bob, &cat] {
        submit(&mut pair, who, Operation::Join { room: room.clone() });
    }
    submit(&mut pair, &ann, Operation::Block { user: bob.user() });
    // Bob and cat follow the room from its end.
    let follow = |pair: &mut Pair, who: &Identity| {
        let rooms = vec![RoomFrom::new(room.clone(), 99, u64::MAX)];
        let frame = Bytes::from(SubscribeFrame { rooms }.encode());
        let asker = pair.asker();
        let input = ServiceInput::SubscribeRequested { asker, user: Some(who.user()), frame };
        pair.input(A, input);
        pair.subscribed.iter().find(|s| s.1 == asker).expect("opened").2
    };
    let (bobs, cats) = (follow(&mut pair, &bob), follow(&mut pair, &cat));
    let notice = SignedTyping::sign(
        &ann,
        &TypingBody { room: room.clone(), active: true, issued_at_ms: START_MS },
    );
    assert_eq!(pair.ask(A, &ann, ClientRequest::Typing(notice)), ClientResponse::TypingTaken);
    let typing = |pair: &mut Pair, subscription| {
        let service = pair.services.get_mut(&A).expect("A");
        std::iter::from_fn(|| service.poll_live(subscription))
            .any(|f| matches!(f, LiveFrame::Typing { .. }))
    };
    assert!(typing(&mut pair, cats), "cat sees ann typing");
    assert!(!typing(&mut pair, bobs), "bob, whom ann blocks, does not");
}
