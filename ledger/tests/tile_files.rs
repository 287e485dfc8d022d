//! The tile files are a cache of the database: whatever happens to them past
//! what the database records as synced (or to the whole directory), the log
//! reopens with the same proofs; a wrong copy inside the synced part is
//! caught by `verify`.

use std::fs::OpenOptions as FsOpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use xgate_ledger::proof::{MemoryLeaves, prove_consistency, prove_inclusion};
use xgate_ledger::{DiskStore, Error, Log, OpenOptions, TILES_DIR, leaf_hash};

/// Enough entries for the appender to sync the files at least once (every
/// 1,024 level-0 tiles of 16 entries) and to fill level-1 and level-2 tiles.
const SIZE: u64 = 20_000;
const TILE_BYTES: u64 = 31 * 32;

fn entry(i: u64) -> Vec<u8> {
    format!("tile-files entry {i}").into_bytes()
}

fn open(dir: &Path) -> Log<DiskStore> {
    Log::create_or_open(dir, &OpenOptions::default()).expect("open log")
}

/// A log of `SIZE` entries appended in batches of 1,000, so the last batch's
/// tiles are written after the last sync, and the in-memory reference.
fn filled(dir: &Path) -> MemoryLeaves {
    let log = open(dir);
    let entries: Vec<Vec<u8>> = (0..SIZE).map(entry).collect();
    for batch in entries.chunks(1000) {
        log.append_batch(batch).expect("append");
    }
    MemoryLeaves(entries.iter().map(|e| leaf_hash(e)).collect())
}

/// Proofs spread over the tree, each compared with the reference.
fn assert_proofs_match(log: &Log<DiskStore>, reference: &MemoryLeaves) {
    assert_eq!(log.size(), SIZE);
    let probes = [
        0, 1, 15, 16, 255, 256, 4095, 4096, 16_383, 16_384, 19_983, 19_999,
    ];
    for &i in &probes {
        let ours = log.inclusion(i, SIZE).expect("inclusion");
        let theirs = prove_inclusion(reference, i, SIZE).expect("reference");
        assert_eq!(ours, theirs, "inclusion {i}");
        let old = i + 1;
        let ours = log.consistency(old, SIZE).expect("consistency");
        let theirs = prove_consistency(reference, old, SIZE).expect("reference");
        assert_eq!(ours, theirs, "consistency {old}");
    }
    let report = log.verify().expect("verify");
    assert_eq!(report.size, SIZE);
}

fn level_file(dir: &Path, level: u8) -> std::path::PathBuf {
    dir.join(TILES_DIR).join(format!("level-{level}"))
}

#[test]
fn a_deleted_tiles_directory_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = filled(dir.path());
    std::fs::remove_dir_all(dir.path().join(TILES_DIR)).expect("rm tiles");
    let log = open(dir.path());
    assert_proofs_match(&log, &reference);
    let len = std::fs::metadata(level_file(dir.path(), 0))
        .expect("level-0")
        .len();
    assert_eq!(
        len,
        SIZE / 16 * TILE_BYTES,
        "every full level-0 tile is back"
    );
}

#[test]
fn a_torn_or_garbled_tail_is_cut_back_and_refilled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = filled(dir.path());
    // What a power loss can leave: the tiles written since the last sync
    // garbled, and a torn write past them.
    let file = FsOpenOptions::new()
        .write(true)
        .open(level_file(dir.path(), 0))
        .expect("open level-0");
    let last = SIZE / 16 - 1;
    file.write_all_at(&[0xEE; TILE_BYTES as usize], last * TILE_BYTES)
        .expect("garble");
    file.write_all_at(&[0xEE; 100], (last + 1) * TILE_BYTES)
        .expect("torn tail");
    drop(file);
    let log = open(dir.path());
    assert_proofs_match(&log, &reference);
}

#[test]
fn a_truncated_file_is_refilled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = filled(dir.path());
    for level in [0, 1] {
        let file = FsOpenOptions::new()
            .write(true)
            .open(level_file(dir.path(), level))
            .expect("open");
        file.set_len(TILE_BYTES / 2).expect("truncate");
    }
    let log = open(dir.path());
    assert_proofs_match(&log, &reference);
}

#[test]
fn verify_catches_a_wrong_copy_in_the_synced_part() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path());
    let file = FsOpenOptions::new()
        .write(true)
        .open(level_file(dir.path(), 0))
        .expect("open level-0");
    file.write_all_at(&[0xEE; 32], 0).expect("damage tile 0");
    drop(file);
    let log = open(dir.path());
    let err = log.verify().expect_err("verify must fail");
    assert!(
        matches!(&err, Error::Corrupt(m) if m.contains("file copy of tile 0/0")),
        "{err}"
    );
    // The repair: the files are a cache, so delete them and reopen.
    drop(log);
    std::fs::remove_dir_all(dir.path().join(TILES_DIR)).expect("rm tiles");
    let log = open(dir.path());
    log.verify().expect("verify after rebuild");
}
