//! How the harness gives each incarnation of a replica its state machine,
//! and what it runs the machine in.

use super::{Host, ServiceHost};
use crate::im::ImMachine;
use crate::raft::Node;
use crate::state_machine::StateMachine;
use crate::testing::list_machine::ListMachine;
use crate::testing::sim_history::SimHistory;

/// A state machine the harness can run.
pub trait SimMachine: StateMachine + Default {
    /// What runs it at each replica: the bare node, or the replica service.
    type Host: Host<Machine = Self>;

    /// A machine for a new incarnation of a replica. `history` is the
    /// replica's durable history disk when the run keeps history on one
    /// (it survives crashes; what it had not committed does not).
    fn boot(history: Option<&SimHistory>) -> Self {
        let _ = history;
        Self::default()
    }
}

impl SimMachine for ListMachine {
    type Host = Node<ListMachine>;
}

impl SimMachine for ImMachine {
    type Host = ServiceHost;

    fn boot(history: Option<&SimHistory>) -> Self {
        match history {
            Some(disk) => ImMachine::with_history(Box::new(disk.clone())),
            None => ImMachine::default(),
        }
    }
}
