//! A file client's sends: new contents (uploaded, then a file message),
//! contents sent again, and deletions.

use super::offer_server::Content;
use super::{files_room, FileClient, SentFile, SEND_PATIENCE};
use crate::client::{submit, submit_within};
use kith_core::files::outboard_of;
use kith_core::ids::LogIndex;
use kith_core::im::protocol::{FileInfo, Operation, Receipt, Target};
use kith_core::testing::file_observation::FileObservation;
use std::sync::Arc;

impl FileClient {
    /// Makes a new content, uploads it and sends it.
    pub(super) async fn send_new(&mut self) {
        let sizes = [1, 16_383, 16_384, 16_385, 3 * 16_384 + 7];
        let size = match self.rng.range(0, 8) {
            i @ 0..=4 => sizes[i as usize],
            _ => self.rng.range(1, 70_000),
        };
        let data: Vec<u8> = (0..size).map(|_| self.rng.next_u64() as u8).collect();
        let mut outboard = Vec::new();
        let Ok(file) = outboard_of(size, &data[..], &mut outboard) else {
            return self.fail("files made", format!("no hash tree for {size} bytes"));
        };
        self.observe(FileObservation::Created { file, content: &data });
        let n = self.rng.next_u64() % 1000;
        let info = FileInfo {
            id: file,
            name: format!("f{n}.bin"),
            media_type: "application/octet-stream".into(),
        };
        let content = Arc::new(Content { data, outboard });
        if self.offer.lock().expect("single-threaded").add(file, content).is_err() {
            return;
        }
        if self.store(file).await {
            self.send_file(info).await;
        }
        // Sent (stored on a majority) or given up: the sender goes away.
        self.offer.lock().expect("single-threaded").remove(file);
    }

    /// Sends a file message for a stored content.
    pub(super) async fn send_file(&mut self, info: FileInfo) {
        let file = info.id;
        self.observe(FileObservation::SendSubmitted { file });
        let op = Operation::SendFile {
            to: Target::Room(files_room()),
            file: info.clone(),
            caption: String::new(),
        };
        // A content lost before it reached a majority (its only holder's
        // disk gone) is never stored: the send is never answered, and its
        // client gives up without knowing.
        let (ctx, conn, rng) = (&self.ctx, &mut self.conn, &mut self.rng);
        let result = submit_within(ctx, conn, rng, op, Some(SEND_PATIENCE)).await;
        if let Some(Ok(Receipt::Appended { room, seq })) = result {
            self.observe(FileObservation::Sent { file, room: &room, seq });
            let by = self.ctx.index;
            let sent = SentFile { info, room, seq, by, deleting: false };
            self.ctx.world.lock().files.sent.push(sent);
        }
    }

    /// This client's standing file messages.
    pub(super) fn mine(&self) -> Vec<SentFile> {
        let w = self.ctx.world.lock();
        w.files.sent.iter().filter(|s| s.by == self.ctx.index && !s.deleting).cloned().collect()
    }

    /// Sends a content again as a new message (two messages then share it).
    pub(super) async fn send_again(&mut self) {
        let mine = self.mine();
        if mine.is_empty() {
            return self.send_new().await;
        }
        let pick = mine[self.rng.range(0, mine.len() as u64) as usize].clone();
        self.send_file(pick.info).await;
    }

    /// Deletes one of this client's file messages; if no message stands
    /// for its content any more, asks a replica for it (the checkers
    /// object if a replica that applied the deletion serves it).
    pub(super) async fn delete(&mut self) {
        let mine = self.mine();
        if mine.is_empty() {
            return;
        }
        let pick = mine[self.rng.range(0, mine.len() as u64) as usize].clone();
        {
            let mut w = self.ctx.world.lock();
            let entry = w.files.sent.iter_mut().find(|s| s.room == pick.room && s.seq == pick.seq);
            entry.expect("listed").deleting = true;
        }
        self.observe(FileObservation::DeleteSubmitted { room: &pick.room, seq: pick.seq });
        let op = Operation::Delete { room: pick.room.clone(), seq: pick.seq };
        if submit(&self.ctx, &mut self.conn, &mut self.rng, op).await.is_err() {
            return;
        }
        // Every replica that has applied this far has applied the deletion.
        let applied = self.applied_max();
        self.observe(FileObservation::Deleted { room: &pick.room, seq: pick.seq, applied });
        if !self.ctx.world.lock().files.standing().contains(&pick.info.id) {
            let file = pick.info.id;
            let replicas = self.ctx.replicas();
            let to = replicas[self.rng.range(0, replicas.len() as u64) as usize];
            self.ask(to, file, 0..1);
        }
    }

    /// The greatest index any replica has applied in this run.
    pub(super) fn applied_max(&self) -> LogIndex {
        // Not the replicas up now: the one that applied the command and
        // answered may have crashed since, and the others may be behind it
        // (seed 2275: the deletion was past every live replica's applied
        // index, and a replica not yet at it served the content).
        self.ctx.world.lock().applied_high
    }
}
