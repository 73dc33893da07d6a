//! Running the cluster: deliver frames, land disk writes, fire timers, and
//! route every output, checking invariants after each step.

use super::host::{Fact, Host, HostOutput};
use super::SimMachine;
use super::{Cluster, Event};
use crate::ids::NodeId;
use crate::testing::network::Channel;
use crate::testing::violation::Violation;
use crate::time::Instant;

impl<S: SimMachine> Cluster<S> {
    /// Runs until `deadline` (simulated), stopping at the first violation.
    pub fn run_until(&mut self, deadline: Instant) -> Result<(), Violation> {
        if let Some(v) = self.pending_violation.take() {
            return Err(v);
        }
        loop {
            let Some(next) = self.next_event_time().filter(|&t| t <= deadline) else {
                self.now = self.now.max(deadline);
                return Ok(());
            };
            self.now = self.now.max(next);
            self.checker.set_now(self.now);
            self.step()?;
        }
    }

    /// Runs for `duration` of simulated time.
    pub fn run_for(&mut self, duration: std::time::Duration) -> Result<(), Violation> {
        self.run_until(self.now + duration)
    }

    fn next_event_time(&self) -> Option<Instant> {
        let timers = self.replicas.values().filter_map(|r| {
            let node_timer = r.host.as_ref().and_then(|h| h.poll_timeout());
            let disk = r.disk.next_completion();
            [node_timer, disk].into_iter().flatten().min()
        });
        timers.chain(self.network.next_delivery()).min()
    }

    fn step(&mut self) -> Result<(), Violation> {
        let now = self.now;
        while let Some(packet) = self.network.pop_due(now) {
            let to = packet.to;
            if let Some(host) = self.live_mut(to) {
                host.receive(now, packet);
                self.drain(to)?;
            }
        }
        for id in self.ids() {
            let replica = self.replicas.get_mut(&id).expect("listed");
            let Some(up_to) = replica.disk.complete_due(now) else { continue };
            if let Some(host) = replica.host.as_mut() {
                host.persisted(now, up_to);
                self.drain(id)?;
            }
        }
        for id in self.ids() {
            let Some(host) = self.live_mut(id) else { continue };
            if host.poll_timeout().is_some_and(|t| t <= now) {
                host.handle_timeout(now);
                self.drain(id)?;
            }
        }
        Ok(())
    }

    /// Carries out every output of `id`, then checks its status.
    pub(super) fn drain(&mut self, id: NodeId) -> Result<(), Violation> {
        let now = self.now;
        let others: Vec<NodeId> = self.ids().into_iter().filter(|o| *o != id).collect();
        let replica = self.replicas.get_mut(&id).expect("known replica");
        let incarnation = replica.incarnation;
        let Some(host) = replica.host.as_mut() else { return Ok(()) };
        while let Some(output) = host.poll_output() {
            self.trace.update(&now.as_micros().to_le_bytes());
            self.trace.update(&id.get().to_le_bytes());
            match output {
                HostOutput::Send { to, channel, bytes } => {
                    self.trace.update(&bytes);
                    if channel == Channel::Raft {
                        self.checker.on_send(id, incarnation, to, &bytes)?;
                    }
                    self.network.send_on(now, id, to, channel, bytes);
                }
                HostOutput::Publish { channel, bytes } => {
                    self.trace.update(&bytes);
                    for to in &others {
                        self.network.send_on(now, id, *to, channel, bytes.clone());
                    }
                }
                HostOutput::Persist { id: batch, new_segment, bytes } => {
                    self.trace.update(&bytes);
                    self.checker.on_persist(id, &bytes)?;
                    if let Err(full) =
                        replica.disk.write(now, &mut self.rng, batch, new_segment, bytes)
                    {
                        host.persist_failed(now, batch, full.to_string());
                    }
                }
                HostOutput::Halted { reason } => {
                    return Err(Violation {
                        invariant: "no halt",
                        detail: format!("node {id} halted: {reason}"),
                        at: now,
                    })
                }
                HostOutput::Event { event, fact } => {
                    match fact {
                        Some(Fact::Applied { index, term, position }) => {
                            self.trace.update(&index.get().to_le_bytes());
                            self.checker.on_applied(id, incarnation, index, term, position)?;
                        }
                        Some(Fact::MembershipChanged(membership)) => {
                            self.checker.on_membership(id, incarnation, &membership)?;
                        }
                        Some(Fact::BecameLeader(term)) => {
                            self.checker.on_leader(host.node(), term)?
                        }
                        None => {}
                    }
                    self.events.push(Event { node: id, incarnation, output: event });
                }
            }
        }
        self.checker.on_status(host.node(), incarnation)
    }
}
