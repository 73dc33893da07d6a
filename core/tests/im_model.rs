//! Model test: random command sequences run against the IM state machine
//! and against a small, obviously correct reference model
//! (`kith_core::testing::im_model`); every result and every visible history
//! must agree.

use kith_core::testing::im_model::{check, Act, Op, ROOMS, USERS};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    let u = 0..USERS;
    let r = 0..ROOMS.len();
    prop_oneof![
        Just(Op::Checkpoint),
        (u.clone(), r.clone(), any::<bool>()).prop_map(|(u, r, private)| Op::Create {
            u,
            r,
            private
        }),
        (u.clone(), r.clone()).prop_map(|(u, r)| Op::Join { u, r }),
        (u.clone(), r.clone()).prop_map(|(u, r)| Op::Leave { u, r }),
        (u.clone(), r.clone(), 0..USERS).prop_map(|(u, r, t)| Op::Invite { u, r, t }),
        (u.clone(), r.clone(), 0..USERS).prop_map(|(u, r, t)| Op::Kick { u, r, t }),
        (u.clone(), r.clone(), 0..USERS, 0u8..3).prop_map(|(u, r, t, role)| Op::SetRole {
            u,
            r,
            t,
            role
        }),
        (u.clone(), r.clone()).prop_map(|(u, r)| Op::Send { u, r }),
        (u.clone(), r.clone(), 0u64..12).prop_map(|(u, r, seq)| Op::MarkRead { u, r, seq }),
        (u.clone(), 0..USERS).prop_map(|(u, t)| Op::Dm { u, t }),
        (u.clone(), 0..USERS).prop_map(|(u, t)| Op::Dm { u, t }),
        (u.clone(), 0..USERS, prop::sample::select(&Act::ALL[..]))
            .prop_map(|(u, t, act)| Op::Contact { u, t, act }),
        (u.clone(), 0..USERS, prop::sample::select(&Act::ALL[..]))
            .prop_map(|(u, t, act)| Op::Contact { u, t, act }),
        (u.clone(), 0..USERS).prop_map(|(u, t)| Op::LeaveDm { u, t }),
        (u.clone(), r.clone()).prop_map(|(u, r)| Op::DeclineInvite { u, r }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]
    #[test]
    fn machine_agrees_with_the_model(ops in prop::collection::vec(op(), 1..80)) {
        check(&ops);
    }
}
