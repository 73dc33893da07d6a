//! The session's rules, one answer at a time.

use super::*;
use crate::wire::client_protocol::CommandOutcome;

const T0: Instant = Instant::from_millis(1_000);

fn session(patience: Option<Duration>) -> ClientSession {
    let targets = vec![Some(NodeId(1)), Some(NodeId(2)), Some(NodeId(3))];
    let config = SessionConfig { patience, ..SessionConfig::default() };
    ClientSession::new(targets, 0, 42, config)
}

/// Takes the one Send the session has, returning (target, request id, frame).
fn sent(s: &mut ClientSession) -> (usize, u64, Vec<u8>) {
    match s.poll_output() {
        Some(SessionOutput::Send { target, request_id, frame }) => (target, request_id, frame),
        other => panic!("expected a send, got {other:?}"),
    }
}

fn answer(s: &mut ClientSession, now: Instant, request_id: u64, response: ClientResponse) {
    let frame = ResponseFrame { request_id, response }.encode().into();
    s.handle_input(now, SessionInput::Answered { frame });
}

/// Runs out the backoff and returns the next send.
fn next_send(s: &mut ClientSession) -> (usize, u64, Vec<u8>) {
    let at = s.poll_timeout().expect("a backoff is running");
    s.handle_timeout(at);
    sent(s)
}

fn applied() -> ClientResponse {
    ClientResponse::Applied(CommandOutcome {
        command_id: uuid::Uuid::nil(),
        result: Err(crate::im::protocol::ImError::Malformed),
        duplicate: false,
    })
}

#[test]
fn the_same_request_is_resent_until_a_final_answer() {
    let mut s = session(None);
    let request = ClientRequest::PresenceOf(vec![]);
    s.begin(T0, request.clone());
    let (target, first, frame) = sent(&mut s);
    assert_eq!(target, 0);
    answer(&mut s, T0, first, ClientResponse::Retry { maybe_applied: true });
    let (target, second, again) = next_send(&mut s);
    assert_eq!(target, 0, "one 'not yet' stays with the replica");
    assert_ne!(first, second);
    let decode = |f: &[u8]| RequestFrame::decode(f).expect("a request frame").request;
    assert_eq!(decode(&frame), decode(&again));
    answer(&mut s, T0, second, ClientResponse::Presence(Vec::new()));
    let finished = SessionOutput::Finished(Ok(Reply::Presence(Vec::new())));
    assert_eq!(s.poll_output(), Some(finished));
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn leader_hints_are_followed_only_to_replicas_on_the_list() {
    let mut s = session(None);
    s.begin(T0, ClientRequest::PresenceOf(vec![]));
    let (_, id, _) = sent(&mut s);
    answer(&mut s, T0, id, ClientResponse::NotLeader { leader_hint: Some(NodeId(3)) });
    let (target, id, _) = next_send(&mut s);
    assert_eq!(target, 2, "followed the hint");
    // A hint naming a replica not on the list (replaced): move on, do not stay.
    answer(&mut s, T0, id, ClientResponse::NotLeader { leader_hint: Some(NodeId(9)) });
    let (target, id, _) = next_send(&mut s);
    assert_eq!(target, 0);
    answer(&mut s, T0, id, ClientResponse::NotLeader { leader_hint: None });
    assert_eq!(next_send(&mut s).0, 1, "a replica that knows no leader is left");
}

#[test]
fn repeated_not_yet_answers_move_to_another_replica() {
    let mut s = session(None);
    s.begin(T0, ClientRequest::PresenceOf(vec![]));
    let (mut target, mut id, _) = sent(&mut s);
    for _ in 0..SessionConfig::default().misses_before_fail_over - 1 {
        answer(&mut s, T0, id, ClientResponse::Busy);
        (target, id, _) = next_send(&mut s);
        assert_eq!(target, 0);
    }
    answer(&mut s, T0, id, ClientResponse::Retry { maybe_applied: false });
    assert_eq!(next_send(&mut s).0, 1);
    let _ = target;
}

#[test]
fn silence_and_broken_connections_move_on_and_stale_answers_are_ignored() {
    let mut s = session(None);
    s.begin(T0, ClientRequest::PresenceOf(vec![]));
    let (_, first, _) = sent(&mut s);
    let timeout = s.poll_timeout().expect("waiting");
    assert_eq!(timeout, T0 + SessionConfig::default().attempt_timeout);
    s.handle_timeout(timeout);
    let (target, second, _) = next_send(&mut s);
    assert_eq!(target, 1);
    // The first attempt's answer arrives late: not this attempt's.
    answer(&mut s, timeout, first, applied());
    assert_eq!(s.poll_output(), None);
    s.handle_input(timeout, SessionInput::Failed { request_id: second });
    assert_eq!(next_send(&mut s).0, 2);
}

#[test]
fn backoff_doubles_to_its_cap_and_patience_ends_the_call() {
    let mut s = session(Some(Duration::from_secs(5)));
    s.begin(T0, ClientRequest::PresenceOf(vec![]));
    let mut now = T0;
    let mut waits = Vec::new();
    loop {
        match s.poll_output() {
            Some(SessionOutput::Send { request_id, .. }) => {
                s.handle_input(now, SessionInput::Failed { request_id });
                if let Some(at) = s.poll_timeout() {
                    waits.push(at.saturating_since(now));
                    now = at;
                    s.handle_timeout(now);
                }
            }
            Some(SessionOutput::GaveUp { patience }) => {
                assert_eq!(patience, Duration::from_secs(5));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(now <= T0 + Duration::from_secs(5));
    assert!(waits.iter().all(|w| *w <= SessionConfig::default().backoff_max));
    assert!(waits.iter().rev().take(2).all(|w| *w >= SessionConfig::default().backoff_max / 2));
    assert!(waits[0] <= SessionConfig::default().backoff_min);
}

#[test]
fn garbage_answers_are_a_failed_attempt_not_a_panic() {
    let mut s = session(None);
    s.begin(T0, ClientRequest::PresenceOf(vec![]));
    let (_, id, _) = sent(&mut s);
    let _ = id;
    s.handle_input(T0, SessionInput::Answered { frame: Bytes::from_static(b"\x07") });
    assert_eq!(next_send(&mut s).0, 1);
}

#[test]
fn signed_commands_get_distinct_ids_from_the_seed() {
    let who = Identity::from_secret([3; 32]);
    let mut a = session(None);
    let mut b = session(None);
    let op = || Operation::Register { name: "x".into() };
    let (one, two) = (a.sign(&who, 5, op()), a.sign(&who, 5, op()));
    assert_ne!(
        one.decode_body().expect("body").command_id,
        two.decode_body().expect("body").command_id
    );
    assert_eq!(one, b.sign(&who, 5, op()), "the same seed signs the same ids");
}

#[test]
fn command_ids_grow_with_the_clock() {
    let who = Identity::from_secret([3; 32]);
    let mut s = session(None);
    let op = || Operation::Register { name: "x".into() };
    let id = |c: SignedCommand| c.decode_body().expect("body").command_id;
    let ids: Vec<uuid::Uuid> = [1_700_000_000_000u64, 1_700_000_000_001, 1_700_000_060_000]
        .into_iter()
        .map(|ms| id(s.sign(&who, ms, op())))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(ids[0].get_version_num(), 7);
    let (secs, _) = ids[0].get_timestamp().expect("a v7 id has a time").to_unix();
    assert_eq!(secs, 1_700_000_000);
    // Within one millisecond the random bits still keep ids apart.
    assert_ne!(id(s.sign(&who, 9, op())), id(s.sign(&who, 9, op())));
}

#[test]
fn the_list_can_change_during_a_call() {
    let mut s = session(None);
    s.begin(T0, ClientRequest::PresenceOf(vec![]));
    let (_, id, _) = sent(&mut s);
    // Every replica the call started with was replaced meanwhile.
    s.set_targets(vec![Some(NodeId(7)), Some(NodeId(8))], 0);
    s.handle_input(T0, SessionInput::Failed { request_id: id });
    let (target, id, _) = next_send(&mut s);
    assert_eq!(target, 1, "the next attempt goes to the new list");
    answer(&mut s, T0, id, ClientResponse::NotLeader { leader_hint: Some(NodeId(7)) });
    assert_eq!(next_send(&mut s).0, 0, "hints are followed within the new list");
}

#[test]
fn a_rate_limit_is_waited_out_at_the_same_replica_with_the_same_bytes() {
    let mut s = session(None);
    s.begin(T0, ClientRequest::PresenceOf(vec![]));
    let (target, mut id, first) = sent(&mut s);
    let body = |f: &[u8]| crate::wire::client_protocol::RequestFrame::decode(f).unwrap().request;
    // More often than misses move a session on: a rate limit never does.
    for _ in 0..SessionConfig::default().misses_before_fail_over + 1 {
        answer(&mut s, T0, id, ClientResponse::RateLimited { retry_after_ms: 1500 });
        assert_eq!(s.poll_timeout(), Some(T0 + Duration::from_millis(1500)), "the wait named");
        let (again, next_id, frame) = next_send(&mut s);
        assert_eq!(again, target, "no fail-over to dodge the limit");
        assert_eq!(body(&frame), body(&first));
        id = next_id;
    }
    answer(&mut s, T0, id, applied());
    assert!(matches!(s.poll_output(), Some(SessionOutput::Finished(_))));
}

#[test]
fn a_rate_limit_longer_than_the_patience_gives_up() {
    let mut s = session(Some(Duration::from_secs(1)));
    s.begin(T0, ClientRequest::PresenceOf(vec![]));
    let (_, id, _) = sent(&mut s);
    answer(&mut s, T0, id, ClientResponse::RateLimited { retry_after_ms: 5000 });
    assert!(matches!(s.poll_output(), Some(SessionOutput::GaveUp { .. })));
}

#[test]
fn an_abandoned_call_frees_the_session_and_its_late_answer_is_ignored() {
    let mut s = session(None);
    s.begin(T0, ClientRequest::PresenceOf(vec![]));
    let (_, abandoned, _) = sent(&mut s);
    s.abandon();
    assert_eq!(s.poll_timeout(), None, "no call left");
    s.begin(T0, ClientRequest::PresenceOf(vec![]));
    let (_, next, _) = sent(&mut s);
    answer(&mut s, T0, abandoned, ClientResponse::Presence(Vec::new()));
    assert_eq!(s.poll_output(), None, "the old call's answer is not this one's");
    answer(&mut s, T0, next, ClientResponse::Presence(Vec::new()));
    let finished = SessionOutput::Finished(Ok(Reply::Presence(Vec::new())));
    assert_eq!(s.poll_output(), Some(finished));
}
