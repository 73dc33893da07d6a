//! How the harness gives each incarnation of a replica its state machine.

use crate::im::ImMachine;
use crate::state_machine::StateMachine;
use crate::testing::list_machine::ListMachine;
use crate::testing::sim_history::SimHistory;

/// A state machine the harness can run.
pub trait SimMachine: StateMachine + Default {
    /// A machine for a new incarnation of a replica. `history` is the
    /// replica's durable history disk when the run keeps history on one
    /// (it survives crashes; what it had not committed does not).
    fn boot(history: Option<&SimHistory>) -> Self {
        let _ = history;
        Self::default()
    }
}

impl SimMachine for ListMachine {}

impl SimMachine for ImMachine {
    fn boot(history: Option<&SimHistory>) -> Self {
        match history {
            Some(disk) => ImMachine::with_history(Box::new(disk.clone())),
            None => ImMachine::default(),
        }
    }
}
