//! Crashes and restarts.

use super::Cluster;
use super::SimMachine;
use crate::ids::NodeId;
use crate::raft::{Node, OnEmptyDisk};
use crate::testing::violation::Violation;

impl<S: SimMachine> Cluster<S> {
    /// kill -9: the node's memory is gone, unsynced writes are lost and the
    /// oldest may be torn.
    pub fn crash(&mut self, id: NodeId) {
        let Some(replica) = self.replicas.get_mut(&id) else { return };
        if replica.host.take().is_some() {
            replica.disk.crash(&mut self.rng);
            if let Some(history) = &replica.history {
                history.crash();
            }
            self.network.drop_to(id);
        }
    }

    /// Restarts a crashed node from its disk, through the real recovery code.
    pub fn restart(&mut self, id: NodeId) -> Result<(), Violation> {
        let config = self.node_config(id);
        let now = self.now;
        let Some(replica) = self.replicas.get_mut(&id) else { return Ok(()) };
        if replica.host.is_some() {
            return Ok(());
        }
        let log = replica.disk.recover().map_err(|e| Violation {
            invariant: "recoverable disk",
            detail: format!("node {id}: {e}"),
            at: now,
        })?;
        let machine = S::boot(replica.history.as_ref());
        let initial_voters: Vec<NodeId> = (1..=self.config.voters).map(NodeId).collect();
        // An initial voter starts over as it was started, as `kith dev`
        // restarts its first replica with --bootstrap; anyone else rejoins.
        let on_empty = if initial_voters.contains(&id) {
            OnEmptyDisk::Bootstrap(&initial_voters)
        } else {
            OnEmptyDisk::Join
        };
        let node = Node::resume(config, &log, machine, now, on_empty).map_err(|e| Violation {
            invariant: "restart",
            detail: format!("node {id}: {e}"),
            at: now,
        })?;
        let incarnation = replica.incarnation + 1;
        let host = self.host_of(node, incarnation);
        let replica = self.replicas.get_mut(&id).expect("listed");
        replica.host = Some(host);
        replica.incarnation = incarnation;
        self.drain(id)
    }

    /// Whether replica `id` is running.
    pub fn is_live(&self, id: NodeId) -> bool {
        self.node(id).is_some()
    }
}
