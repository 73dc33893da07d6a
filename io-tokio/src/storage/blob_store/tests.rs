//! The store carrying out a download from sources in memory: complete and
//! byte-exact, resumed after a crash asking only for what its record
//! lacks, and a damaged copy never served.

use super::*;
use kith_core::files::download::{Input, Output};
use kith_core::time::Instant;
use std::ops::Range;

const G: u64 = kith_core::limits::CHUNK_GROUP_BYTES;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kith-blobs-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn content(size: u64) -> Vec<u8> {
    (0..size).map(|i| (i * 7 + i / 4096) as u8).collect()
}

/// A source serving `data` from memory.
struct Memory {
    geometry: Geometry,
    data: Vec<u8>,
    outboard: Vec<u8>,
}

impl Memory {
    fn new(data: Vec<u8>) -> Memory {
        let geometry = Geometry::new(FileId::of(&data)).unwrap();
        let mut outboard = Vec::new();
        build_outboard(&geometry, &data[..], &mut outboard).unwrap();
        Memory { geometry, data, outboard }
    }

    fn serve(&self, groups: Range<u64>) -> ChunkResponse {
        ChunkResponse::encode(&self.geometry, groups, &self.data[..], &self.outboard[..]).unwrap()
    }
}

/// Runs `d` against `source` until it completes, or until the write after
/// `stop_after` progress records were saved (a crash: everything in memory
/// is dropped). Returns the groups asked for and whether it completed.
fn drive(
    source: &Memory,
    d: &mut Download<u8>,
    partial: &PartialBlob,
    stop_after: Option<usize>,
) -> (Vec<Range<u64>>, bool) {
    let now = Instant::from_millis(1);
    d.add_source(now, 0);
    let (mut asked, mut saves) = (Vec::new(), 0);
    while let Some(out) = d.poll_output() {
        match out {
            Output::Request { id, groups, .. } => {
                asked.push(groups.clone());
                let response = source.serve(groups);
                d.handle_input(now, Input::Answered { id, response }).unwrap();
            }
            Output::Write { id, offset, data, hash_pairs } => {
                if stop_after.is_some_and(|n| saves >= n) {
                    return (asked, false);
                }
                partial.write(offset, &data, &hash_pairs).unwrap();
                d.handle_input(now, Input::Written { id }).unwrap();
            }
            Output::SaveProgress { bytes } => {
                partial.save_progress(&bytes).unwrap();
                saves += 1;
                d.handle_input(now, Input::ProgressSaved).unwrap();
            }
            Output::Completed => return (asked, true),
            Output::Failed(e) => panic!("{e}"),
        }
    }
    (asked, false)
}

#[test]
fn a_download_lands_whole_resumes_after_a_crash_and_serves_checked_bytes() {
    let store = BlobStore::open(scratch("resume")).unwrap();
    let source = Memory::new(content(300 * G + 123));
    let file = source.geometry.file();
    assert!(!store.has(file));

    let (mut d, partial, damaged) = store.start::<u8>(file).unwrap();
    assert!(damaged.is_none());
    let (_, done) = drive(&source, &mut d, &partial, Some(1));
    assert!(!done);
    drop((d, partial));

    // Resumed: the record names what was synced; only the rest is asked.
    let (mut d, partial, damaged) = store.start::<u8>(file).unwrap();
    assert!(damaged.is_none());
    let had = d.progress().durable_bytes;
    assert!(had > 0, "the first run saved progress");
    let (asked, done) = drive(&source, &mut d, &partial, None);
    assert!(done);
    let asked_bytes: u64 =
        asked.iter().map(|r| source.geometry.groups_bytes(r)).map(|b| b.end - b.start).sum();
    assert_eq!(asked_bytes, file.size_bytes - had, "asked for exactly what was missing");
    partial.finish(&store).unwrap();
    assert!(store.has(file));
    let stored = fs::read(store.complete_dir(file).join("data")).unwrap();
    assert!(stored == source.data, "byte-identical");
    let tree = fs::read(store.complete_dir(file).join("outboard")).unwrap();
    assert!(tree == source.outboard, "the tree assembled on arrival is the file's");

    // Served bytes verify at the receiver; a damaged copy is not served.
    let response = store.read(file, 3..7).unwrap();
    response.decode(&source.geometry, &(3..7)).unwrap();
    let path = store.complete_dir(file).join("data");
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&[stored[5 * G as usize] ^ 1], 5 * G).unwrap();
    assert!(
        matches!(store.read(file, 3..7), Err(ServeError::Damaged { offset }) if offset == 5 * G)
    );
    store.read(file, 0..5).unwrap();
    store.remove(file).unwrap();
    assert!(!store.has(file));
}

#[test]
fn a_damaged_record_starts_over_and_wrong_bytes_are_never_completed() {
    let store = BlobStore::open(scratch("damaged")).unwrap();
    let source = Memory::new(content(20 * G));
    let file = source.geometry.file();
    let (mut d, partial, _) = store.start::<u8>(file).unwrap();
    drive(&source, &mut d, &partial, Some(2));
    let record = store.partial_dir(file).join("progress");
    let mut bytes = fs::read(&record).unwrap();
    bytes[10] ^= 1;
    fs::write(&record, &bytes).unwrap();
    let (d, partial, damaged) = store.start::<u8>(file).unwrap();
    assert!(damaged.is_some(), "the damage is reported");
    assert_eq!(d.progress().durable_bytes, 0, "and the fetch starts over");

    // A hash tree whose top pair was never written is not completed.
    let mut d = d;
    drive(&source, &mut d, &partial, None);
    let top = source.outboard.len() as u64 - HASH_PAIR_BYTES as u64;
    partial.outboard.write_all_at(&[0; HASH_PAIR_BYTES], top).unwrap();
    assert!(matches!(
        partial.finish(&store),
        Err(BlobError::NotTheFile(OutboardError::Unassembled))
    ));
    assert!(!store.has(file));

    // Bytes changed on disk after they were verified complete the copy
    // (it is not read again), and are caught by the first read of them.
    let (mut d, partial, _) = store.start::<u8>(file).unwrap();
    drive(&source, &mut d, &partial, None);
    partial.data.write_all_at(b"X", 7).unwrap();
    partial.finish(&store).unwrap();
    assert!(matches!(store.read(file, 0..2), Err(ServeError::Damaged { offset: 0 })));
    store.read(file, 1..20).unwrap();
}

#[test]
fn a_partial_blob_from_before_assembled_outboards_starts_over() {
    let store = BlobStore::open(scratch("old-partial")).unwrap();
    let source = Memory::new(content(40 * G));
    let file = source.geometry.file();
    let (mut d, partial, _) = store.start::<u8>(file).unwrap();
    drive(&source, &mut d, &partial, Some(2));
    drop((d, partial));
    fs::remove_file(store.partial_dir(file).join("outboard")).unwrap();
    let (mut d, partial, _) = store.start::<u8>(file).unwrap();
    assert_eq!(d.progress().durable_bytes, 0, "its groups lack their pairs");
    assert!(drive(&source, &mut d, &partial, None).1);
    partial.finish(&store).unwrap();
    assert!(store.holds_intact(file).unwrap());
}

#[test]
fn an_export_appears_whole_never_overwrites_and_forgets_the_blob() {
    let dir = scratch("export");
    let store = BlobStore::open(dir.join("store")).unwrap();
    let source = Memory::new(content(5 * G + 9));
    let file = source.geometry.file();
    let (mut d, partial, _) = store.start::<u8>(file).unwrap();
    assert!(drive(&source, &mut d, &partial, None).1);
    partial.finish(&store).unwrap();

    let taken = dir.join("out.bin");
    fs::write(&taken, b"mine").unwrap();
    assert!(matches!(store.export(file, &taken), Err(BlobError::Io { .. })), "never overwrites");
    assert_eq!(fs::read(&taken).unwrap(), b"mine");
    assert!(store.has(file), "a refused export keeps the blob");

    let out = dir.join("fetched.bin");
    store.export(file, &out).unwrap();
    assert!(fs::read(&out).unwrap() == source.data, "byte-identical");
    assert!(!store.has(file), "the store forgot it");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn the_store_lists_its_whole_copies_in_order_and_tells_an_intact_one() {
    let dir = scratch("list");
    let store = BlobStore::open(&dir).unwrap();
    assert_eq!(store.list(None, 10).unwrap(), Vec::new());
    let mut files = Vec::new();
    for n in 1..=3 {
        let source = Memory::new(content(n * G + n));
        let file = source.geometry.file();
        let (mut d, partial, _) = store.start::<u8>(file).unwrap();
        assert!(drive(&source, &mut d, &partial, None).1);
        partial.finish(&store).unwrap();
        files.push(file);
    }
    // A partial copy is not listed, nor is a stranger in the directory.
    let partial_only = Memory::new(content(7 * G));
    let (_d, _partial, _) = store.start::<u8>(partial_only.geometry.file()).unwrap();
    fs::create_dir_all(dir.join("complete").join("not-a-file-id")).unwrap();
    files.sort();
    assert_eq!(store.list(None, 10).unwrap(), files);
    assert_eq!(store.list(None, 2).unwrap(), files[..2]);
    assert_eq!(store.list(Some(files[1]), 10).unwrap(), files[2..]);
    assert!(store.holds_intact(files[0]).unwrap());
    assert!(!store.holds_intact(partial_only.geometry.file()).unwrap());
    // Rot in the data: no longer intact.
    let data = dir.join("complete").join(files[0].to_string()).join("data");
    let mut bytes = fs::read(&data).unwrap();
    bytes[3] ^= 1;
    fs::write(&data, bytes).unwrap();
    assert!(!store.holds_intact(files[0]).unwrap());
    let _ = fs::remove_dir_all(&dir);
}
