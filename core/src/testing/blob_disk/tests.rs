//! The simulated store under a real download: whole, resumed after crashes
//! (torn writes included) asking only for what the record lacks, and a
//! damaged copy never served.

use super::*;
use crate::files::download::{Input, Output};
use crate::limits::CHUNK_GROUP_BYTES as G;
use std::time::Duration;

fn content(size: u64, seed: u8) -> Vec<u8> {
    (0..size).map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 12) as u8).collect()
}

/// A source in memory.
struct Source {
    geometry: Geometry,
    data: Vec<u8>,
    outboard: Vec<u8>,
}

impl Source {
    fn new(data: Vec<u8>) -> Source {
        let geometry = Geometry::new(FileId::of(&data)).expect("small");
        let mut outboard = Vec::new();
        build_outboard(&geometry, &data[..], &mut outboard).expect("own data");
        Source { geometry, data, outboard }
    }
}

/// Drives `d` until it completes, or until `crash_after` of the store's
/// operations landed (then the store crashes, losing what is pending).
/// Returns the groups asked and whether it completed.
fn drive(
    store: &mut SimBlobStore,
    rng: &mut SeededRng,
    source: &Source,
    d: &mut Download<u8>,
    crash_after: Option<usize>,
) -> (Vec<Range<u64>>, bool) {
    let file = source.geometry.file();
    let mut now = Instant::from_millis(1);
    d.add_source(now, 0);
    let (mut asked, mut landed) = (Vec::new(), 0);
    loop {
        while let Some(out) = d.poll_output() {
            match out {
                Output::Request { id, groups, .. } => {
                    asked.push(groups.clone());
                    let r = ChunkResponse::encode(
                        &source.geometry,
                        groups,
                        &source.data[..],
                        &source.outboard[..],
                    );
                    let response = r.expect("sound");
                    d.handle_input(now, Input::Answered { id, response }).expect("verifies");
                }
                Output::Write { id, offset, data, hash_pairs } => {
                    store.write(now, rng, file, id, offset, data, hash_pairs).expect("room");
                }
                Output::SaveProgress { bytes } => store.save_progress(now, rng, file, bytes),
                Output::Completed => return (asked, true),
                Output::Failed(e) => panic!("{e}"),
            }
        }
        if crash_after.is_some_and(|n| landed >= n) {
            store.crash(rng);
            return (asked, false);
        }
        now = store.next_completion().expect("something pending");
        for done in store.complete_due(now) {
            landed += 1;
            let input = match done {
                BlobCompletion::Written { id, .. } => Input::Written { id },
                BlobCompletion::Saved { .. } => Input::ProgressSaved,
            };
            d.handle_input(now, input).expect("taken");
        }
    }
}

#[test]
fn a_download_lands_whole_across_crashes_and_serves_only_checked_bytes() {
    let mut tears = 0;
    for seed in 0..8 {
        let mut rng = SeededRng::new(seed);
        let mut store = SimBlobStore::new(DiskConfig::default());
        let source = Source::new(content(1000 * G + 77, seed as u8));
        let file = source.geometry.file();
        for crash_after in [20, 30, 40] {
            let (mut d, unusable) = store.start::<u8>(file).expect("in range");
            assert!(unusable.is_none(), "a record lands whole or not at all");
            let had = d.progress().durable_bytes;
            let (asked, _) = drive(&mut store, &mut rng, &source, &mut d, Some(crash_after));
            let asked_bytes: u64 = asked
                .iter()
                .map(|r| source.geometry.groups_bytes(r))
                .map(|b| b.end - b.start)
                .sum();
            assert!(
                asked_bytes <= file.size_bytes - had,
                "seed {seed}: asked only what was missing"
            );
        }
        let (mut d, _) = store.start::<u8>(file).expect("in range");
        assert!(d.progress().durable_bytes > 0, "seed {seed}: some progress survived the crashes");
        let (_, done) = drive(&mut store, &mut rng, &source, &mut d, None);
        assert!(done);
        // Writes still pending when the download completed are all landed:
        // completion waits for every write to be durable.
        store.finish(file).expect("the bytes are the file");
        assert!(store.has(file));
        assert_eq!(store.content(file), Some(&source.data[..]));
        store
            .read(file, 0..3)
            .expect("intact")
            .decode(&source.geometry, &(0..3))
            .expect("verifies");

        // Rot: some read of the copy is refused, none serves wrong bytes.
        assert!(store.rot(&mut rng, file));
        let groups = source.geometry.groups();
        let refused = (0..groups).filter(|g| store.read(file, *g..*g + 1).is_err()).count();
        assert!(refused >= 1, "seed {seed}: the rot is found");
        for g in 0..groups {
            if let Ok(r) = store.read(file, g..g + 1) {
                r.decode(&source.geometry, &(g..g + 1)).expect("what is served verifies");
            }
        }
        store.remove(file);
        assert!(matches!(store.read(file, 0..1), Err(ServeError::Io(_))));
        tears += store.tears;
    }
    assert!(tears > 0, "some crash tore a write, and the download still completed");
}

#[test]
fn a_full_store_refuses_and_a_removed_file_takes_nothing_pending() {
    let mut rng = SeededRng::new(3);
    let mut store = SimBlobStore::new(DiskConfig::default());
    let data = content(2 * G, 1);
    let file = FileId::of(&data);
    let (_d, _) = store.start::<u8>(file).expect("in range");
    store.full = true;
    let now = Instant::from_millis(1);
    let bytes = Bytes::copy_from_slice(&data[..G as usize]);
    assert_eq!(
        store.write(now, &mut rng, file, WriteId(0), 0, bytes.clone(), HashPairs::default()),
        Err(DiskFull)
    );
    store.full = false;
    store
        .write(now, &mut rng, file, WriteId(1), 0, bytes, HashPairs::default())
        .expect("room again");
    store.remove(file);
    assert!(store.complete_due(now + Duration::from_secs(1)).is_empty(), "landed nowhere");
    // A hash tree that does not reach the root never becomes a complete copy.
    let (_d, _) = store.start::<u8>(file).expect("in range");
    assert!(matches!(store.finish(file), Err(OutboardError::Unassembled)));
    assert!(!store.has(file));
}

#[test]
fn a_gone_downloads_writes_land_unreported_and_a_removed_files_never_land() {
    let mut rng = SeededRng::new(9);
    let source = Source::new(content(3 * G, 4));
    let file = source.geometry.file();
    let mut store = SimBlobStore::new(DiskConfig::default());
    let (_first, _) = store.start::<u8>(file).expect("small");
    let now = Instant::from_millis(1);
    let data = Bytes::from(source.data[..G as usize].to_vec());
    store
        .write(now, &mut rng, file, WriteId(1), 0, data.clone(), HashPairs::default())
        .expect("room");
    store.save_progress(now, &mut rng, file, Bytes::from_static(b"record"));
    // Its download failed: a new one of the same file must not hear of
    // the old one's write 1 or record.
    store.detach(file);
    let (_second, _) = store.start::<u8>(file).expect("small");
    let later = Instant::from_millis(10_000);
    assert_eq!(store.complete_due(later), Vec::new());
    assert_eq!(store.partial[&file].data[..G as usize], source.data[..G as usize]);
    // Removed with writes pending: they land nowhere, even if it is
    // fetched again before they were due.
    store.write(later, &mut rng, file, WriteId(2), G, data, HashPairs::default()).expect("room");
    store.remove(file);
    let (_third, _) = store.start::<u8>(file).expect("small");
    assert_eq!(store.complete_due(Instant::from_millis(20_000)), Vec::new());
    assert!(store.partial[&file].data.is_empty());
}
