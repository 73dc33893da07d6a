//! A download driven by an input-chosen schedule, for the `file_download`
//! fuzz target: three sources whose answers the input writes or damages,
//! writes and saves that complete (or fail) when the input says, time that
//! passes, a crash that loses what was not synced. After every step:
//! nothing panicked, every write holds exactly the file's bytes, every saved
//! record claims only synced groups, and the download's bounds held.

use super::fuzz::Bytes as Reader;
use crate::files::download::{progress, Input, Output, RequestId};
use crate::files::{ChunkResponse, Download, FileId, Geometry, GroupSet};
use crate::limits::{CHUNK_GROUP_BYTES, DOWNLOAD_REQUESTS_IN_FLIGHT_MAX};
use crate::time::Instant;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

/// Runs the schedule `data` describes; panics when a property breaks.
/// Returns whether the download completed.
pub fn run_download(data: &[u8]) -> bool {
    let mut input = Reader(data);
    let Some(size_code) = input.byte() else { return false };
    // Sizes at the edges of a group, or a few groups.
    let size = match size_code % 6 {
        0 => 0,
        1 => 1,
        2 => CHUNK_GROUP_BYTES - 1,
        3 => CHUNK_GROUP_BYTES,
        4 => CHUNK_GROUP_BYTES + 1,
        _ => u64::from(size_code) * 997,
    };
    let content: Vec<u8> = (0..size).map(|i| (i as u8) ^ 0x5a).collect();
    let geometry = Geometry::new(FileId::of(&content)).expect("small file");
    let mut outboard = Vec::new();
    crate::files::build_outboard(&geometry, &content[..], &mut outboard).expect("own content");
    let mut world = World {
        content,
        geometry,
        outboard,
        asked: BTreeMap::new(),
        unsynced: Vec::new(),
        synced: GroupSet::empty(geometry.groups()),
        saving: None,
        saved: None,
        now: Instant::from_millis(1),
        completed: false,
    };
    let mut download = world.start();
    while let Some(op) = input.byte() {
        world.drain(&mut download);
        match op % 8 {
            0 | 1 => world.answer_honestly(&mut download, &mut input, op % 2 == 1),
            2 => world.answer_with_input_bytes(&mut download, &mut input),
            3 => world.sync_write(&mut download, &mut input),
            4 => {
                if let Some(bytes) = world.saving.take() {
                    world.saved = Some(bytes);
                    let _ = download.handle_input(world.now, Input::ProgressSaved);
                }
            }
            5 => {
                world.now =
                    world.now + Duration::from_millis(u64::from(input.byte().unwrap_or(0)) * 100);
                download.handle_timeout(world.now);
            }
            6 => {
                let id = RequestId(u64::from(input.byte().unwrap_or(0)));
                let _ = download.handle_input(world.now, Input::RequestFailed { id });
            }
            _ => {
                world.crash();
                download = world.start();
            }
        }
    }
    world.drain(&mut download);
    world.completed
}

struct World {
    content: Vec<u8>,
    geometry: Geometry,
    outboard: Vec<u8>,
    /// Requests asked and not yet answered by the schedule.
    asked: BTreeMap<RequestId, Range<u64>>,
    unsynced: Vec<(crate::files::download::WriteId, Range<u64>)>,
    synced: GroupSet,
    saving: Option<bytes::Bytes>,
    saved: Option<bytes::Bytes>,
    now: Instant,
    completed: bool,
}

impl World {
    fn start(&mut self) -> Download<u8> {
        let file = self.geometry.file();
        let mut d = match &self.saved {
            Some(saved) => Download::resume(file, saved).expect("a record this download saved"),
            None => Download::new(file).expect("small file"),
        };
        for source in 0..3 {
            d.add_source(self.now, source);
        }
        d
    }

    fn drain(&mut self, d: &mut Download<u8>) {
        while let Some(out) = d.poll_output() {
            match out {
                Output::Request { id, groups, .. } => {
                    assert!(self.geometry.contains(&groups), "asked outside the file");
                    self.asked.insert(id, groups);
                }
                Output::Write { id, offset, data, .. } => {
                    let at = offset as usize;
                    assert_eq!(&data[..], &self.content[at..at + data.len()], "wrote a wrong byte");
                    let first = offset / CHUNK_GROUP_BYTES;
                    let groups = first..(offset + data.len() as u64).div_ceil(CHUNK_GROUP_BYTES);
                    self.unsynced.push((id, groups));
                }
                Output::SaveProgress { bytes } => {
                    let claimed = progress::decode(&self.geometry, &bytes).expect("a valid record");
                    for g in (0..claimed.len()).filter(|g| claimed.contains(*g)) {
                        assert!(self.synced.contains(g), "the record claims unsynced group {g}");
                    }
                    assert!(self.saving.replace(bytes).is_none(), "two saves at once");
                }
                Output::Completed => {
                    assert_eq!(
                        self.synced.count(),
                        self.geometry.groups(),
                        "completed with groups missing"
                    );
                    self.completed = true;
                }
                Output::Failed(_) => {}
            }
        }
        assert!(self.asked.len() <= DOWNLOAD_REQUESTS_IN_FLIGHT_MAX * 64);
    }

    fn take_request(&mut self, input: &mut Reader) -> Option<(RequestId, Range<u64>)> {
        let pick = usize::from(input.byte()?);
        let id = *self.asked.keys().nth(pick.checked_rem(self.asked.len())?)?;
        self.asked.remove(&id).map(|groups| (id, groups))
    }

    /// An honest answer, or (when `damage`) one with an input-chosen bit flipped.
    fn answer_honestly(&mut self, d: &mut Download<u8>, input: &mut Reader, damage: bool) {
        let Some((id, groups)) = self.take_request(input) else { return };
        let mut response =
            ChunkResponse::encode(&self.geometry, groups, &self.content[..], &self.outboard[..])
                .expect("a sound copy");
        if damage {
            let mut bytes = response.encoded.to_vec();
            let at = usize::from(input.byte().unwrap_or(0)) * 131 % bytes.len().max(1);
            if let Some(b) = bytes.get_mut(at) {
                *b ^= 1 << (input.byte().unwrap_or(0) % 8);
            }
            response.encoded = bytes.into();
        }
        let _ = d.handle_input(self.now, Input::Answered { id, response });
    }

    /// An answer whose range and bytes the input writes.
    fn answer_with_input_bytes(&mut self, d: &mut Download<u8>, input: &mut Reader) {
        let id = RequestId(u64::from(input.byte().unwrap_or(0)) % 16);
        let first_group = u64::from(input.byte().unwrap_or(0)) % 8;
        let group_count = u64::from(input.byte().unwrap_or(0)) % 8;
        let len = usize::from(input.byte().unwrap_or(0)) * 64;
        let encoded: Vec<u8> = (0..len).map(|_| input.byte().unwrap_or(0)).collect();
        self.asked.remove(&id);
        let response = ChunkResponse { first_group, group_count, encoded: encoded.into() };
        let _ = d.handle_input(self.now, Input::Answered { id, response });
    }

    fn sync_write(&mut self, d: &mut Download<u8>, input: &mut Reader) {
        if self.unsynced.is_empty() {
            return;
        }
        let at = usize::from(input.byte().unwrap_or(0)) % self.unsynced.len();
        let (id, groups) = self.unsynced.remove(at);
        if input.byte().unwrap_or(1) == 0 {
            let reason = "No space left on device".to_string();
            let _ = d.handle_input(self.now, Input::WriteFailed { id, reason });
            return;
        }
        for g in groups {
            self.synced.insert(g);
        }
        let _ = d.handle_input(self.now, Input::Written { id });
    }

    /// Loses what was not synced; groups synced but not in the saved record
    /// stay on disk but unclaimed, as after a real crash.
    fn crash(&mut self) {
        self.asked.clear();
        self.unsynced.clear();
        self.saving = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schedule that asks, answers honestly, syncs, saves, crashes and
    /// resumes runs to completion of a two-group file.
    #[test]
    fn an_eventful_schedule_runs() {
        let mut ops = vec![4u8];
        for _ in 0..8 {
            ops.extend([0, 0, 3, 0, 1, 4]);
        }
        ops.extend([7, 0, 0, 0, 0, 3, 0, 1, 3, 0, 1, 1, 0, 7, 2, 0, 2, 3, 1, 1, 5, 200]);
        assert!(run_download(&ops), "the download completes");
    }
}
