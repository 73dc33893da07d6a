//! The operator under madsim: a process of its own that sends membership
//! changes to replicas as admin-protocol requests, signed by an admin key
//! every replica is started with (`--admin` in the real node), so a seed
//! runs the service's admin path as production does: the admin check, a
//! follower forwarding to the leader, the answers. The controller decides
//! what to change; the operator only carries requests.
//!
//! Datagrams on `TAG_ADMIN`: `kind:u8, correlation:u64le` (the transport's
//! stand-in for a stream), then, to the replica, the operator's user id (the
//! sim's stand-in for an authenticated key) and the request frame; from
//! the replica, the answer frame.

use crate::datagram::{self, split};
use crate::world::{operator_ip, replica_addr, replica_peer, replica_slot, World, TAG_ADMIN};
use kith_core::ids::NodeId;
use kith_core::im::identity::{Identity, UserId};
use kith_core::raft::MembershipChange;
use kith_core::wire::replica_protocol::{self, AdminRequest, AdminResponse, ReplicaRecord};
use madsim::net::Endpoint;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The operator's port.
const OPERATOR_PORT: u16 = 7100;
/// How long the operator waits for one answer (a change is answered once
/// committed, which a partition can delay).
const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// Datagram kinds.
pub const ADMIN_REQUEST: u8 = 0;
/// An answer.
pub const ADMIN_ANSWER: u8 = 1;

pub mod handle;

use handle::Call;
pub use handle::Operator;

/// The operator's admin key (every simulated replica lists it as an admin).
pub fn operator_user() -> UserId {
    Identity::from_secret([0x0b; 32]).user()
}

/// The admin request that makes `change`, if the admin protocol has one
/// (an operator cannot ask for a joint change with several members, so a
/// joint removal of one voter is asked as a removal).
pub fn request_for(change: &MembershipChange) -> Option<AdminRequest> {
    let record = |id: NodeId| {
        let peer = replica_peer(replica_slot(id)?);
        Some(ReplicaRecord { peer, addrs: Vec::new() })
    };
    Some(match change {
        MembershipChange::AddLearner(id) => {
            AdminRequest::Add { replica: record(*id)?, learner: true }
        }
        MembershipChange::Promote(id) => {
            AdminRequest::Add { replica: record(*id)?, learner: false }
        }
        MembershipChange::Remove(id) => AdminRequest::Remove { peer: record(*id)?.peer },
        MembershipChange::Joint { add_voters, remove } if add_voters.is_empty() => {
            let [id] = remove.as_slice() else { return None };
            AdminRequest::Remove { peer: record(*id)?.peer }
        }
        _ => return None,
    })
}

/// Runs the operator's process: carries one request at a time.
pub async fn run_operator(world: World) {
    let Ok(endpoint) = Endpoint::bind(SocketAddr::new(operator_ip(), OPERATOR_PORT)).await else {
        return;
    };
    let endpoint = Arc::new(endpoint);
    let mut answers = crate::world::receive(endpoint.clone(), TAG_ADMIN);
    let (tx, mut calls) = mpsc::channel::<Call>(16);
    world.lock().operator = Some(Operator::new(tx));
    let user = operator_user();
    let mut correlation = 0u64;
    while let Some(call) = calls.recv().await {
        correlation += 1;
        let frame = replica_protocol::encode(&call.request);
        let request = datagram::datagram(ADMIN_REQUEST, correlation, &[&user.0, &frame]);
        let _ = endpoint.send_to(replica_addr(call.to), TAG_ADMIN, &request).await;
        let deadline = madsim::time::Instant::now() + ANSWER_WAIT;
        let mut answer = None;
        while answer.is_none() {
            let left = deadline.saturating_duration_since(madsim::time::Instant::now());
            let Ok(Some(bytes)) = madsim::time::timeout(left, answers.recv()).await else {
                break;
            };
            // An answer to an earlier request (one given up on) is dropped.
            answer = split(&bytes)
                .filter(|(kind, key, _)| *kind == ADMIN_ANSWER && *key == correlation)
                .and_then(|(_, _, frame)| replica_protocol::decode::<AdminResponse>(&frame).ok());
        }
        if let Some(AdminResponse::Changed(_)) = answer {
            world.lock().admin_changes += 1;
        }
        if let Some(reply) = call.answer {
            let _ = reply.send(answer);
        }
    }
}
