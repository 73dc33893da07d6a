//! The controller's handle on the operator's process (kept in the world,
//! so the fault schedule and the rebuilds reach the same operator).

use kith_core::ids::NodeId;
use kith_core::wire::replica_protocol::{AdminRequest, AdminResponse};
use tokio::sync::{mpsc, oneshot};

/// One request for the operator to carry.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) to: NodeId,
    pub(super) request: AdminRequest,
    pub(super) answer: Option<oneshot::Sender<Option<AdminResponse>>>,
}

/// The controller's handle on the operator's process.
#[derive(Clone, Debug)]
pub struct Operator {
    calls: mpsc::Sender<Call>,
}

impl Operator {
    pub(super) fn new(calls: mpsc::Sender<Call>) -> Operator {
        Operator { calls }
    }

    /// Sends `request` to replica `to` and does not wait: the controller
    /// asks again on a later turn if the change has not happened (as an
    /// operator watching `kith cluster status` would). Dropped if the
    /// operator is still busy with earlier requests.
    pub fn send(&self, to: NodeId, request: AdminRequest) {
        let _ = self.calls.try_send(Call { to, request, answer: None });
    }

    /// Sends `request` to replica `to` and waits for its answer (None: no
    /// answer in time).
    pub async fn ask(&self, to: NodeId, request: AdminRequest) -> Option<AdminResponse> {
        let (tx, rx) = oneshot::channel();
        self.calls.send(Call { to, request, answer: Some(tx) }).await.ok()?;
        rx.await.ok().flatten()
    }
}
