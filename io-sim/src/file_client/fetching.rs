//! A file client's fetches: one now and then during the faults (some
//! crashing mid-way and resuming), all standing files after the heal, and
//! the outsider's attempts.

use super::{FileClient, FINAL_FETCHES_WITHIN};
use crate::chunk_wire;
use crate::fetches::Fetches;
use crate::world::replica_addr;
use kith_core::files::FileId;
use kith_core::ids::NodeId;
use kith_core::testing::file_observation::FileObservation;
use kith_core::wire::chunk_protocol::{ChunkAnswer, ChunkRequest};
use std::ops::Range;
use std::time::Duration;

impl FileClient {
    /// Sends one chunk request outside any download; returns its
    /// correlation.
    pub(super) fn ask(&mut self, to: NodeId, file: FileId, groups: Range<u64>) -> u64 {
        let correlation = self.rng.next_u64() | (1 << 63);
        let request = ChunkRequest {
            file,
            first_group: groups.start,
            group_count: groups.end - groups.start,
        };
        let user = self.ctx.identity.user();
        let (world, endpoint) = (&self.ctx.world, &self.conn.endpoint);
        chunk_wire::send_request(
            world,
            endpoint,
            replica_addr(to),
            correlation,
            user,
            &request.encode(),
        );
        correlation
    }

    /// Fetches a file some message stands for, sometimes crashing mid-way.
    pub(super) async fn fetch_one(&mut self) {
        let standing = self.ctx.world.lock().files.standing();
        if standing.is_empty() {
            return;
        }
        let file = standing[self.rng.range(0, standing.len() as u64) as usize];
        let crash = self.rng.chance(0.3);
        // During the faults a fetch may fail (a partition, every holder
        // down); only the one after the heal must succeed.
        let _ = self.fetch(file, crash, Duration::from_secs(10)).await;
    }

    /// After the heal: every content a standing message refers to, fetched
    /// from the replicas and verified; the outcomes go to the world.
    pub(super) async fn fetch_all(&mut self) {
        let standing = self.ctx.world.lock().files.standing();
        let until = madsim::time::Instant::now() + FINAL_FETCHES_WITHIN;
        let mut fetched = Vec::new();
        for file in standing {
            let left = until.saturating_duration_since(madsim::time::Instant::now());
            let result = self.fetch(file, false, left).await;
            fetched.push((file, result));
        }
        self.ctx.world.lock().files.retrieved = Some(fetched);
    }

    /// Fetches `file` from the replicas into this client's store, within
    /// `patience`; with `crash`, the process "dies" once mid-way (what was
    /// not synced is lost) and resumes from the saved progress.
    pub(super) async fn fetch(
        &mut self,
        file: FileId,
        crash: bool,
        patience: Duration,
    ) -> Result<(), String> {
        let until = madsim::time::Instant::now() + patience;
        let mut crash_at = crash
            .then(|| madsim::time::Instant::now() + Duration::from_millis(self.rng.range(5, 300)));
        let mut fetches = self.restart(file)?;
        loop {
            if let Some(result) = self.pump(&mut fetches) {
                self.blobs.remove(file);
                if result.is_ok() {
                    self.ctx.world.lock().files.fetched += 1;
                }
                return result;
            }
            let now = madsim::time::Instant::now();
            if now >= until {
                self.blobs.remove(file);
                return Err(format!("not fetched within {patience:?}"));
            }
            if crash_at.is_some_and(|at| at <= now) {
                crash_at = None;
                self.blobs.crash(&mut self.rng);
                fetches = self.restart(file)?;
                continue;
            }
            let wake = self.fetch_wake(&fetches).into_iter().chain(crash_at).chain([until]).min();
            let wake = wake.unwrap_or(until);
            tokio::select! {
                Some((correlation, frame)) = self.answers.recv() => {
                    fetches.answered(self.ctx.now(), correlation, &frame);
                }
                () = madsim::time::sleep_until(wake) => {
                    let now = self.ctx.now();
                    for landed in self.blobs.complete_due(now) {
                        fetches.completed(now, landed);
                    }
                    fetches.expire(now);
                }
            }
        }
    }

    /// A new life's download of `file`, resumed from the store.
    pub(super) fn restart(&mut self, file: FileId) -> Result<Fetches<NodeId>, String> {
        self.lives += 1;
        let mut fetches = Fetches::new(self.lives);
        fetches.start(self.ctx.now(), &mut self.blobs, file, self.ctx.replicas())?;
        Ok(fetches)
    }

    /// Carries out what the download asks; its result once it ended.
    pub(super) fn pump(&mut self, fetches: &mut Fetches<NodeId>) -> Option<Result<(), String>> {
        let step = fetches.pump(self.ctx.now(), &mut self.blobs, &mut self.rng);
        for (file, offset, data) in &step.written {
            self.observe(FileObservation::Written { file: *file, offset: *offset, data });
        }
        let user = self.ctx.identity.user();
        for (to, correlation, frame) in &step.requests {
            let (world, endpoint) = (&self.ctx.world, &self.conn.endpoint);
            chunk_wire::send_request(world, endpoint, replica_addr(*to), *correlation, user, frame);
        }
        step.done.into_iter().next().map(|(_, result)| result)
    }

    /// When the download next needs the loop, on the simulation's clock.
    pub(super) fn fetch_wake(&self, fetches: &Fetches<NodeId>) -> Option<madsim::time::Instant> {
        let (timer, deadline) = fetches.next_wake();
        let landing = self.blobs.next_completion();
        let core = [timer, landing].into_iter().flatten().min();
        let core = core.map(|t| self.ctx.epoch + Duration::from_micros(t.as_micros()));
        [core, deadline].into_iter().flatten().min()
    }

    /// The outsider asks a replica for a file it never could read; an
    /// answer with any of it is a violation.
    pub(super) async fn snoop(&mut self) {
        let files: Vec<FileId> =
            self.ctx.world.lock().files.sent.iter().map(|s| s.info.id).collect();
        if files.is_empty() {
            return;
        }
        let file = files[self.rng.range(0, files.len() as u64) as usize];
        let replicas = self.ctx.replicas();
        let to = replicas[self.rng.range(0, replicas.len() as u64) as usize];
        let correlation = self.ask(to, file, 0..1);
        let until = madsim::time::Instant::now() + Duration::from_secs(1);
        loop {
            let left = until.saturating_duration_since(madsim::time::Instant::now());
            let Ok(Some((answered, frame))) =
                madsim::time::timeout(left, self.answers.recv()).await
            else {
                return;
            };
            if answered != correlation {
                continue;
            }
            if let Ok(ChunkAnswer::Groups(_)) = ChunkAnswer::decode(&frame) {
                let detail =
                    format!("n{to} served {file} to client {}, not a member", self.ctx.index);
                self.fail("non-members refused", detail);
            }
            return;
        }
    }
}
