//! Carrying out the node's outputs.

use super::askers::{answer, answer_admin};
use super::{Outbound, Replica, RAFT_IN_FLIGHT_PER_PEER_MAX};
use kith_core::im::client_protocol::ClientResponse;
use kith_core::im::replica_protocol::{AdminResponse, PeerRequest};
use kith_core::im::ImMachine;
use kith_core::node::{NodeOutput, Output};
use kith_core::wire::PeerFrame;

impl Replica {
    /// Carries out every output the node has.
    pub(super) fn flush_outputs(&mut self) {
        while let Some(output) = self.node.poll_output() {
            self.carry_out(output);
        }
    }

    fn carry_out(&mut self, output: NodeOutput<ImMachine>) {
        match output {
            Output::Send { to, frame } => self.send_raft(to, frame),
            Output::Persist { id, new_segment, bytes } => self.persist(id, new_segment, bytes),
            Output::Applied { proposal, response, .. } => {
                self.hub.on_events(self.node.state_machine(), &response.events);
                if let Some((asker, since)) = proposal.and_then(|p| self.proposals.remove(&p)) {
                    self.metrics.observe_commit(self.now().saturating_since(since));
                    answer(&mut self.swarm, asker, response.into());
                }
            }
            Output::Dropped { proposal, outcome } => {
                if let Some((asker, _)) = self.proposals.remove(&proposal) {
                    answer(&mut self.swarm, asker, ClientResponse::dropped(outcome));
                } else if let Some(asker) = self.admin_proposals.remove(&proposal) {
                    let retry = AdminResponse::Retry("the change was not committed".into());
                    answer_admin(&mut self.swarm, asker, retry);
                }
            }
            Output::MembershipChanged { proposal, membership, index } => {
                tracing::info!(%index, ?membership, "membership changed");
                if let Some(asker) = proposal.and_then(|p| self.admin_proposals.remove(&p)) {
                    let status = self.cluster_status();
                    answer_admin(&mut self.swarm, asker, AdminResponse::Changed(status));
                }
                self.snapshots.retain(|p| membership.contains(crate::peer_ids::node_id_of(p)));
                self.send_hellos();
            }
            Output::ReadReady { read, result, .. } => {
                if let Some(asker) = self.reads.remove(&read) {
                    answer(&mut self.swarm, asker, ClientResponse::Answer(result));
                }
            }
            Output::ReadFailed { read } => {
                if let Some(asker) = self.reads.remove(&read) {
                    answer(&mut self.swarm, asker, ClientResponse::Retry { maybe_applied: false });
                }
            }
            Output::RoleChanged { role, term, leader } => {
                tracing::info!(?role, %term, ?leader, "role changed");
            }
            Output::Halted { reason } => tracing::error!(%reason, "the replica halted"),
            _ => {}
        }
    }

    fn persist(&mut self, id: kith_core::ids::PersistId, new_segment: bool, bytes: bytes::Bytes) {
        // A stopped writer has already reported the failure that stops the node.
        if !self.disk.write(id, new_segment, bytes) {
            tracing::error!("the disk writer has stopped");
        }
    }

    fn send_raft(&mut self, to: kith_core::ids::NodeId, frame: bytes::Bytes) {
        let Some(peer) = self.directory.peer(to) else {
            tracing::debug!(%to, "no address known for replica; frame dropped");
            return;
        };
        if PeerFrame::is_snapshot_chunk(&frame) {
            if !self.snapshots.send(peer, frame) {
                self.metrics.snapshot_chunks_dropped += 1;
            }
            return;
        }
        let in_flight = self.raft_in_flight.entry(peer).or_default();
        if *in_flight >= RAFT_IN_FLIGHT_PER_PEER_MAX {
            self.metrics.raft_frames_shed += 1;
            return;
        }
        *in_flight += 1;
        self.send_peer(peer, &PeerRequest::Raft(frame), Outbound::Raft(peer));
    }
}
