//! Crashes and restarts.

use super::Cluster;
use crate::ids::NodeId;
use crate::node::Node;
use crate::testing::sim_machine::SimMachine;
use crate::testing::violation::Violation;

impl<S: SimMachine> Cluster<S> {
    /// kill -9: the node's memory is gone, unsynced writes are lost and the
    /// oldest may be torn.
    pub fn crash(&mut self, id: NodeId) {
        let Some(replica) = self.replicas.get_mut(&id) else { return };
        if replica.node.take().is_some() {
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
        if replica.node.is_some() {
            return Ok(());
        }
        let log = replica.disk.recover().map_err(|e| Violation {
            invariant: "recoverable disk",
            detail: format!("node {id}: {e}"),
            at: now,
        })?;
        let machine = S::boot(replica.history.as_ref());
        let node = if log.snapshot.is_none() && log.entries.is_empty() {
            // Never received anything durable: it rejoins empty.
            Node::join(config, machine, now)
        } else {
            Node::recover(config, &log, machine, now)
        }
        .map_err(|e| Violation {
            invariant: "restart",
            detail: format!("node {id}: {e}"),
            at: now,
        })?;
        replica.node = Some(node);
        replica.incarnation += 1;
        self.drain(id)
    }

    /// Whether replica `id` is running.
    pub fn is_live(&self, id: NodeId) -> bool {
        self.node(id).is_some()
    }
}
