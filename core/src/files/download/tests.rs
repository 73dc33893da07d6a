//! The download against sources that lie, stall, refuse and duplicate,
//! over a disk that loses unsynced writes in a crash. After every step:
//! no byte on disk differs from the file, a saved record claims only synced
//! groups, and the bounds hold. With one honest source the file completes,
//! and a resumed download asks only for what the record lacks.

use super::*;
use crate::files::tests_support::{content, stored};
use crate::limits::{CHUNK_GROUP_BYTES as G, DOWNLOAD_REQUESTS_PER_SOURCE_MAX};
use crate::rng::SeededRng;
use proptest::prelude::*;
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    Honest,
    /// Flips a bit in every answer.
    Corrupts,
    /// Never answers.
    Silent,
    /// Answers "cannot serve".
    Refuses,
    /// Answers "you may not fetch this".
    Forbids,
    /// Sends each answer twice, and the first half of what was asked.
    DuplicatesHalf,
}

struct World {
    data: Vec<u8>,
    geometry: Geometry,
    outboard: Vec<u8>,
    behaviours: Vec<Behaviour>,
    rng: SeededRng,
    now: Instant,
    /// Answers on the wire: (deliver at, what the download hears).
    wire: Vec<(Instant, Input)>,
    /// What the disk holds once synced, and writes not yet synced.
    disk: Vec<Option<u8>>,
    unsynced: Vec<(WriteId, u64, Bytes)>,
    saved: Option<Bytes>,
    saving: Option<Bytes>,
    /// Groups whose writes were reported synced.
    synced_groups: GroupSet,
    asked_after_resume: Vec<Range<u64>>,
    outcome: Option<Output<usize>>,
    /// 1 in `slow_disk` of the disk's turns completes a write: above 1 the
    /// disk is slower than the network and writes pile up to their bound.
    slow_disk: u64,
    /// The write that fails (no space left), counting from 0, if any.
    failing_write: Option<u32>,
    writes_done: u32,
    /// Requests each source was sent.
    asked: BTreeMap<usize, u64>,
    /// Who each request went to, and the sources that refused the file
    /// (never to be asked again).
    sent_to: BTreeMap<RequestId, usize>,
    refused: BTreeSet<usize>,
}

impl World {
    fn new(size: u64, behaviours: Vec<Behaviour>, seed: u64) -> World {
        let data = content(size, seed as u8);
        let (geometry, outboard) = stored(&data);
        World {
            synced_groups: GroupSet::empty(geometry.groups()),
            disk: vec![None; size as usize],
            data,
            geometry,
            outboard,
            behaviours,
            rng: SeededRng::new(seed),
            now: Instant::from_millis(1_000),
            wire: Vec::new(),
            unsynced: Vec::new(),
            saved: None,
            saving: None,
            asked_after_resume: Vec::new(),
            outcome: None,
            slow_disk: 1,
            failing_write: None,
            writes_done: 0,
            asked: BTreeMap::new(),
            sent_to: BTreeMap::new(),
            refused: BTreeSet::new(),
        }
    }

    fn start(&mut self, resume: bool) -> Download<usize> {
        let file = self.geometry.file();
        let mut d = match (&self.saved, resume) {
            (Some(saved), true) => Download::resume(file, saved).expect("our own record"),
            _ => Download::new(file).expect("in range"),
        };
        for source in 0..self.behaviours.len() {
            assert!(d.add_source(self.now, source) || d.is_finished());
        }
        d
    }

    fn answer(&mut self, source: usize, id: RequestId, groups: Range<u64>) {
        let delay = Duration::from_millis(self.rng.range(1, 50));
        let at = self.now + delay;
        let honest = || {
            ChunkResponse::encode(
                &self.geometry,
                groups.clone(),
                &self.data[..],
                &self.outboard[..],
            )
            .expect("sound copy")
        };
        match self.behaviours[source] {
            Behaviour::Honest => self.wire.push((at, Input::Answered { id, response: honest() })),
            Behaviour::Corrupts => {
                let mut r = honest();
                let mut bytes = r.encoded.to_vec();
                let i = self.rng.range(0, bytes.len() as u64) as usize;
                bytes[i] ^= 1 << self.rng.range(0, 8);
                r.encoded = bytes.into();
                self.wire.push((at, Input::Answered { id, response: r }));
            }
            Behaviour::Silent => {}
            Behaviour::Refuses => self.wire.push((at, Input::RequestFailed { id })),
            Behaviour::Forbids => self.wire.push((at, Input::Refused { id })),
            Behaviour::DuplicatesHalf => {
                let half = groups.start..groups.start + (groups.end - groups.start).div_ceil(2);
                let r =
                    ChunkResponse::encode(&self.geometry, half, &self.data[..], &self.outboard[..])
                        .expect("sound copy");
                self.wire.push((at, Input::Answered { id, response: r.clone() }));
                self.wire.push((at + delay, Input::Answered { id, response: r }));
            }
        }
    }

    /// Carries out every output, checking each.
    fn drain(&mut self, d: &mut Download<usize>, track_asks: bool) {
        while let Some(out) = d.poll_output() {
            match out {
                Output::Request { id, source, groups } => {
                    assert!(groups.end - groups.start <= GROUPS_PER_REQUEST_MAX);
                    assert!(!d.held.any(&groups), "asked for a held group");
                    if track_asks {
                        self.asked_after_resume.push(groups.clone());
                    }
                    *self.asked.entry(source).or_default() += 1;
                    assert!(!self.refused.contains(&source), "asked a source that refused");
                    self.sent_to.insert(id, source);
                    self.answer(source, id, groups);
                }
                Output::Write { id, offset, data, .. } => {
                    let expected = &self.data[offset as usize..offset as usize + data.len()];
                    assert_eq!(&data[..], expected, "a write holds exactly the file's bytes");
                    self.unsynced.push((id, offset, data));
                }
                Output::SaveProgress { bytes } => {
                    let claimed = progress::decode(&self.geometry, &bytes).expect("valid record");
                    for g in 0..claimed.len() {
                        assert!(
                            !claimed.contains(g) || self.synced_groups.contains(g),
                            "record claims unsynced group {g}"
                        );
                    }
                    assert!(self.saving.replace(bytes).is_none(), "one save at a time");
                }
                done @ (Output::Completed | Output::Failed(_)) => self.outcome = Some(done),
            }
        }
        let per_source = d.requests.values().fold(BTreeMap::new(), |mut m, f| {
            *m.entry(f.source).or_insert(0) += 1;
            m
        });
        assert!(per_source.values().all(|n| *n <= DOWNLOAD_REQUESTS_PER_SOURCE_MAX));
    }

    /// One random event: an answer arrives, a write or save completes, or
    /// time passes.
    fn step(&mut self, d: &mut Download<usize>) {
        match self.rng.range(0, 4) {
            0 if !self.wire.is_empty() => {
                let i = self.rng.range(0, self.wire.len() as u64) as usize;
                let (at, input) = self.wire.swap_remove(i);
                self.now = self.now.max(at);
                if let Input::Refused { id } = &input {
                    self.refused.insert(self.sent_to[id]);
                }
                let _ = d.handle_input(self.now, input);
            }
            1 if !self.unsynced.is_empty() && self.rng.range(0, self.slow_disk) == 0 => {
                let (id, offset, data) = self.unsynced.remove(0);
                self.writes_done += 1;
                if self.failing_write == Some(self.writes_done - 1) {
                    let reason = "No space left on device".to_string();
                    let _ = d.handle_input(self.now, Input::WriteFailed { id, reason });
                    return;
                }
                for (i, byte) in data.iter().enumerate() {
                    self.disk[offset as usize + i] = Some(*byte);
                }
                let groups = offset / G..(offset + data.len() as u64).div_ceil(G);
                for g in groups {
                    self.synced_groups.insert(g);
                }
                let _ = d.handle_input(self.now, Input::Written { id });
            }
            2 if self.saving.is_some() => {
                self.saved = self.saving.take();
                let _ = d.handle_input(self.now, Input::ProgressSaved);
            }
            _ => {
                self.now = self.now + Duration::from_millis(self.rng.range(1, 100));
                d.handle_timeout(self.now);
            }
        }
    }

    /// Runs until the download ends.
    fn run(&mut self, d: &mut Download<usize>) {
        for _ in 0..100_000 {
            self.drain(d, false);
            if self.outcome.is_some() {
                return;
            }
            self.step(d);
        }
        panic!("the download never ended");
    }

    /// Loses everything not synced, as a crash does.
    fn crash(&mut self) {
        // A new download after it may ask anyone again.
        self.refused.clear();
        self.wire.clear();
        self.unsynced.clear();
        self.saving = None;
        self.synced_groups = match &self.saved {
            Some(saved) => progress::decode(&self.geometry, saved).expect("valid"),
            None => GroupSet::empty(self.geometry.groups()),
        };
    }
}

fn behaviours() -> impl Strategy<Value = Vec<Behaviour>> {
    let any = prop_oneof![
        Just(Behaviour::Honest),
        Just(Behaviour::Corrupts),
        Just(Behaviour::Silent),
        Just(Behaviour::Refuses),
        Just(Behaviour::Forbids),
        Just(Behaviour::DuplicatesHalf),
    ];
    (proptest::collection::vec(any, 0..4), 0usize..4).prop_map(|(mut others, at)| {
        let at = at.min(others.len());
        others.insert(at, Behaviour::Honest);
        others
    })
}

fn sizes() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(1), Just(G - 1), Just(G), Just(G + 1), 1..300 * G]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// With one honest source among liars, the file completes byte-exact,
    /// however the events interleave, with a disk slower than the network,
    /// and across a crash.
    #[test]
    fn completes_exactly_among_liars_and_across_a_crash(
        size in sizes(),
        behaviours in behaviours(),
        seed: u64,
        crash_after in 0u32..400,
        slow_disk in 1u64..8,
    ) {
        let mut world = World::new(size, behaviours, seed);
        world.slow_disk = slow_disk;
        let mut d = world.start(false);
        let mut crashed = false;
        for step in 0..200_000u32 {
            world.drain(&mut d, crashed);
            if world.outcome.is_some() {
                break;
            }
            if step == crash_after && !crashed {
                crashed = true;
                world.crash();
                d = world.start(true);
                if let Some(saved) = &world.saved {
                    let claimed = progress::decode(&world.geometry, saved).expect("valid");
                    prop_assert_eq!(d.progress().durable_bytes, d.bytes_of(&claimed));
                }
                continue;
            }
            world.step(&mut d);
        }
        prop_assert_eq!(&world.outcome, &Some(Output::Completed));
        while let Some((_, offset, data)) = world.unsynced.pop() {
            for (i, byte) in data.iter().enumerate() {
                world.disk[offset as usize + i] = Some(*byte);
            }
        }
        let disk: Vec<u8> = world.disk.iter().map(|b| b.expect("every byte written")).collect();
        prop_assert_eq!(disk, world.data.clone());
    }

    /// A disk that fails one write, whatever is in flight then, ends the
    /// download with `Disk` (the bounds and invariants held all along), and
    /// nothing that arrives after moves it.
    #[test]
    fn a_failing_disk_ends_the_download_cleanly(
        size in G + 1..200 * G,
        behaviours in behaviours(),
        seed: u64,
        failing_write in 0u32..12,
        slow_disk in 1u64..8,
    ) {
        let mut world = World::new(size, behaviours, seed);
        world.slow_disk = slow_disk;
        world.failing_write = Some(failing_write);
        let mut d = world.start(false);
        for _ in 0..200_000u32 {
            world.drain(&mut d, false);
            if world.outcome.is_some() {
                break;
            }
            world.step(&mut d);
        }
        match &world.outcome {
            Some(Output::Failed(DownloadError::Disk { .. })) => {}
            // Fewer writes than the failing one: it completed first.
            Some(Output::Completed) => prop_assert!(world.writes_done <= failing_write + 1),
            other => prop_assert!(false, "unexpected outcome {:?}", other),
        }
        for _ in 0..50 {
            world.step(&mut d);
            world.drain(&mut d, false);
        }
        prop_assert!(d.is_finished());
    }
}

#[test]
fn a_resumed_download_asks_only_for_what_its_record_lacks() {
    let mut world = World::new(40 * G + 3, vec![Behaviour::Honest], 7);
    let mut d = world.start(false);
    // Run until some progress is saved, then crash.
    while world.saved.is_none() {
        world.drain(&mut d, false);
        world.step(&mut d);
    }
    world.crash();
    let saved =
        progress::decode(&world.geometry, world.saved.as_ref().expect("saved")).expect("valid");
    assert!(saved.count() > 0);
    let mut d = world.start(true);
    while world.outcome.is_none() {
        world.drain(&mut d, true);
        world.step(&mut d);
    }
    assert_eq!(world.outcome, Some(Output::Completed));
    let asked: u64 = world.asked_after_resume.iter().map(|r| r.end - r.start).sum();
    assert!(world.asked_after_resume.iter().all(|r| !saved.any(r)), "re-asked a saved group");
    assert_eq!(asked, saved.len() - saved.count(), "asked for exactly the missing groups once");
}

#[test]
fn sources_that_only_fail_end_the_download_with_a_clear_error() {
    let mut world = World::new(5 * G, vec![Behaviour::Refuses, Behaviour::Corrupts], 3);
    let mut d = world.start(false);
    world.run(&mut d);
    assert_eq!(
        world.outcome,
        Some(Output::Failed(DownloadError::NoSources { dropped: 2, refused: 0 }))
    );
    assert!(world.disk.iter().all(Option::is_none), "nothing from a liar was written");
}

#[test]
fn a_write_failure_stops_the_download_and_the_empty_file_is_complete_at_once() {
    let mut world = World::new(3 * G, vec![Behaviour::Honest], 1);
    let mut d = world.start(false);
    loop {
        world.drain(&mut d, false);
        if !world.unsynced.is_empty() {
            break;
        }
        world.step(&mut d);
    }
    let (id, _, _) = world.unsynced.remove(0);
    let _ = d.handle_input(
        world.now,
        Input::WriteFailed { id, reason: "No space left on device".into() },
    );
    world.drain(&mut d, false);
    assert!(matches!(world.outcome, Some(Output::Failed(DownloadError::Disk { .. }))));
    assert!(d.is_finished() && d.poll_timeout().is_none());

    let mut empty = Download::<usize>::new(FileId::of(b"")).expect("in range");
    assert_eq!(empty.poll_output(), Some(Output::Completed));
}

#[test]
fn late_duplicate_and_made_up_answers_are_refused_and_harmless() {
    let mut world = World::new(2 * G, vec![Behaviour::Honest], 5);
    let mut d = world.start(false);
    world.drain(&mut d, false);
    let Input::Answered { id, response } = world.wire[0].1.clone() else { panic!("honest") };
    assert_eq!(
        d.handle_input(world.now, Input::Answered { id, response: response.clone() }),
        Ok(())
    );
    assert_eq!(
        d.handle_input(world.now, Input::Answered { id, response: response.clone() }),
        Err(ChunkRefusal::Duplicate)
    );
    assert_eq!(
        d.handle_input(world.now, Input::Answered { id: RequestId(99), response }),
        Err(ChunkRefusal::Unsolicited)
    );
    assert_eq!(d.progress().verified_bytes, 2 * G);
}

#[test]
fn an_unusable_record_starts_the_download_over_and_says_why() {
    let file = FileId { root: [4; 32], size_bytes: 3 * G };
    let geometry = Geometry::new(file).expect("in range");
    let mut durable = GroupSet::empty(3);
    durable.insert(1);
    let good = progress::encode(&geometry, &durable);
    let (d, why) = Download::<u8>::resume_or_new(file, Some(&good)).expect("in range");
    assert_eq!((d.progress().durable_bytes, why), (G, None));
    let mut bad = good.clone();
    bad[0] ^= 1;
    let (d, why) = Download::<u8>::resume_or_new(file, Some(&bad)).expect("in range");
    assert_eq!(d.progress().durable_bytes, 0);
    assert!(why.is_some());
    let (d, why) = Download::<u8>::resume_or_new(file, None).expect("in range");
    assert_eq!((d.progress().durable_bytes, why), (0, None));
}

/// Found by the real node: with the disk slower than the network, every
/// request in flight when the write bound was reached still became a
/// write, past the bound. A request counts against it from the moment it
/// is asked.
#[test]
fn a_slow_disk_holds_the_pending_writes_at_their_bound() {
    let data = content(1000 * G, 9);
    let (geometry, outboard) = stored(&data);
    let mut d = Download::new(geometry.file()).expect("in range");
    let now = Instant::from_millis(1);
    assert!(d.add_source(now, 0usize) && d.add_source(now, 1));
    let mut pending_writes = 0;
    loop {
        let mut asked = Vec::new();
        while let Some(out) = d.poll_output() {
            match out {
                Output::Request { id, groups, .. } => asked.push((id, groups)),
                // The disk never finishes a write.
                Output::Write { .. } => pending_writes += 1,
                other => panic!("{other:?}"),
            }
        }
        if asked.is_empty() {
            break;
        }
        for (id, groups) in asked {
            let response = ChunkResponse::encode(&geometry, groups, &data[..], &outboard[..]);
            let response = response.expect("intact");
            d.handle_input(now, Input::Answered { id, response }).expect("verifies");
        }
    }
    assert_eq!(pending_writes, DOWNLOAD_WRITES_PENDING_MAX, "asks up to the bound, not past it");
}

/// Found by the real node with its blob store on a full disk: a write
/// failing while other requests were in flight left their groups counted
/// as flying after the download had forgotten the requests (an invariant
/// panic). Failing forgets both; answers that come after are refused.
#[test]
fn a_write_failure_with_requests_in_flight_fails_cleanly() {
    let data = content(100 * G, 4);
    let (geometry, outboard) = stored(&data);
    let mut d = Download::new(geometry.file()).expect("in range");
    let now = Instant::from_millis(1);
    assert!(d.add_source(now, 0usize) && d.add_source(now, 1));
    let mut asked = Vec::new();
    while let Some(out) = d.poll_output() {
        if let Output::Request { id, groups, .. } = out {
            asked.push((id, groups));
        }
    }
    assert!(asked.len() > 1, "several requests in flight");
    let answer = |(id, groups): &(RequestId, Range<u64>)| {
        let response = ChunkResponse::encode(&geometry, groups.clone(), &data[..], &outboard[..]);
        Input::Answered { id: *id, response: response.expect("intact") }
    };
    d.handle_input(now, answer(&asked[0])).expect("verifies");
    let write = std::iter::from_fn(|| d.poll_output())
        .find_map(|out| match out {
            Output::Write { id, .. } => Some(id),
            _ => None,
        })
        .expect("a write");
    let full = Input::WriteFailed { id: write, reason: "No space left on device".into() };
    d.handle_input(now, full).expect("taken");
    assert!(matches!(d.poll_output(), Some(Output::Failed(DownloadError::Disk { .. }))));
    assert_eq!(d.handle_input(now, answer(&asked[1])), Err(ChunkRefusal::Unsolicited));
    d.handle_timeout(now + Duration::from_secs(60));
    assert_eq!(d.poll_output(), None);
    assert!(d.is_finished());
}

/// A progress record that failed to save does not stop later ones: the
/// next synced write hands out a new record naming everything durable.
#[test]
fn a_failed_save_is_retried_with_the_next_write() {
    let data = content(1000 * G, 6);
    let (geometry, outboard) = stored(&data);
    let mut d = Download::new(geometry.file()).expect("in range");
    let now = Instant::from_millis(1);
    assert!(d.add_source(now, 0usize));
    let (mut writes, mut saves) = (Vec::new(), 0);
    let mut failed_once = false;
    while !d.is_finished() {
        let mut asked = Vec::new();
        while let Some(out) = d.poll_output() {
            match out {
                Output::Request { id, groups, .. } => asked.push((id, groups)),
                Output::Write { id, .. } => writes.push(id),
                Output::SaveProgress { .. } => {
                    saves += 1;
                    let input = if failed_once { Input::ProgressSaved } else { Input::SaveFailed };
                    failed_once = true;
                    d.handle_input(now, input).expect("taken");
                }
                Output::Completed => {}
                other => panic!("{other:?}"),
            }
        }
        for (id, groups) in asked {
            let r = ChunkResponse::encode(&geometry, groups, &data[..], &outboard[..]);
            d.handle_input(now, Input::Answered { id, response: r.expect("intact") })
                .expect("verifies");
        }
        for id in writes.drain(..) {
            d.handle_input(now, Input::Written { id }).expect("taken");
        }
    }
    assert!(saves >= 2, "saving went on after the failure ({saves} records)");
}

#[test]
fn a_source_that_forbids_the_file_is_never_asked_again_and_all_forbidding_ends_it_at_once() {
    // One forbids (a replica behind the log), one serves: done, and the
    // one that forbade was asked once.
    let mut world = World::new(40 * G, vec![Behaviour::Forbids, Behaviour::Honest], 8);
    let mut d = world.start(false);
    world.run(&mut d);
    assert_eq!(world.outcome, Some(Output::Completed));
    // Asked only before its first answer (drain checks every request).
    assert!(world.asked[&0] <= DOWNLOAD_REQUESTS_PER_SOURCE_MAX as u64);
    // Every source forbids: the download ends on the first answers, not
    // after a dozen back-offs each.
    let mut world = World::new(40 * G, vec![Behaviour::Forbids, Behaviour::Forbids], 9);
    let mut d = world.start(false);
    world.run(&mut d);
    let failed = DownloadError::NoSources { dropped: 0, refused: 2 };
    assert_eq!(world.outcome, Some(Output::Failed(failed)));
    // (Each failure in a row would bench a source 250 ms, 500 ms, ... up
    // to 8 s, a dozen times: most of a minute.)
    assert!(world.now < Instant::from_millis(1_000 + 5_000), "ended at {:?}", world.now);
}
