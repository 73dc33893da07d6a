//! Carrying out the service's commands.

use super::askers::{answer, Channel};
use super::Replica;
use crate::peer_ids::node_id_of;
use kith_core::replica::{OutboundId, ServiceInput, ServiceOutput};
use kith_core::wire::replica_protocol::{self, PeerResponse};
use kith_core::wire::PeerFrame;

impl Replica {
    /// Carries out every command the service has.
    pub(super) fn flush_outputs(&mut self) {
        loop {
            // Taking an output may run the node (apply, snapshot): timed;
            // carrying it out is the driver's own work.
            let started = std::time::Instant::now();
            let output = self.service.poll_output();
            self.metrics.observe_service_call(started.elapsed(), "taking outputs");
            let Some(output) = output else { return };
            self.carry_out(output);
        }
    }

    fn carry_out(&mut self, output: ServiceOutput) {
        match output {
            ServiceOutput::Respond { asker, frame } => {
                if let Some(channel) = self.askers.take(asker) {
                    answer(&mut self.swarm, channel, frame);
                }
            }
            ServiceOutput::SendRaft { to, frame } => self.send_raft(to, frame),
            ServiceOutput::SendPeerRequest { to, request, frame } => {
                self.send_service_request(to, request, frame)
            }
            ServiceOutput::Publish { topic, data } => self.publish(topic, data),
            ServiceOutput::Persist { id, new_segment, bytes } => {
                self.persist(id, new_segment, bytes)
            }
            ServiceOutput::Subscribed { asker, subscription } => {
                if let Some(Channel::Live(stream)) = self.askers.take(asker) {
                    self.live.open(subscription, stream);
                }
            }
            ServiceOutput::LiveRefused { asker, frame } => {
                if let Some(channel) = self.askers.take(asker) {
                    answer(&mut self.swarm, channel, frame);
                }
            }
            ServiceOutput::HelloReceived { asker, records } => {
                if self.directory.merge(&records) {
                    self.directory.save();
                    self.add_directory_addresses();
                    self.vouch_directory();
                }
                let ours = replica_protocol::encode(&PeerResponse::Hello(self.directory.records()));
                if let Some(channel) = self.askers.take(asker) {
                    answer(&mut self.swarm, channel, ours);
                }
            }
            ServiceOutput::ReplicaAdded { record } => {
                if self.directory.merge(std::slice::from_ref(&record)) {
                    self.directory.save();
                }
                self.add_directory_addresses();
                self.vouch_directory();
            }
            ServiceOutput::Applied { waited: Some(waited), .. } => {
                self.metrics.observe_commit(waited);
            }
            ServiceOutput::MembershipChanged { index, membership } => {
                tracing::info!(%index, ?membership, "membership changed");
                self.snapshots.retain(|p| membership.contains(node_id_of(p)));
                self.send_hellos();
            }
            ServiceOutput::RoleChanged { role, term, leader } => {
                tracing::info!(?role, %term, ?leader, "role changed");
            }
            ServiceOutput::Halted { reason } => tracing::error!(%reason, "the replica halted"),
            ServiceOutput::ServeChunks { asker, file, groups } => {
                self.serve_chunks(asker, file, groups)
            }
            ServiceOutput::FetchFile { file, sources } => self.fetch_file(file, sources),
            ServiceOutput::ListBlobs { after, max } => self.list_blobs(after, max),
            ServiceOutput::RemoveBlob { file, why } => {
                tracing::debug!(%file, ?why, "removing a stored copy");
                self.remove_blob(file)
            }
            _ => {}
        }
    }

    fn persist(&mut self, id: kith_core::ids::PersistId, new_segment: bool, bytes: bytes::Bytes) {
        // A stopped writer has already reported the failure that stops the node.
        if !self.disk.write(id, new_segment, bytes) {
            tracing::error!("the disk writer has stopped");
        }
    }

    fn send_service_request(
        &mut self,
        to: kith_core::ids::NodeId,
        request: OutboundId,
        frame: Vec<u8>,
    ) {
        match self.directory.peer(to) {
            Some(peer) => self.peer_links.send(peer, request, frame),
            None => {
                tracing::debug!(%to, "no address known for replica; request not sent");
                self.input(ServiceInput::PeerRequestFailed { request, sent: false });
            }
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
        if !self.raft.send(peer, frame) {
            self.metrics.raft_frames_shed += 1;
        }
    }
}
