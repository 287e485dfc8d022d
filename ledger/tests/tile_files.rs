//! The tile files on disk: the public tlog-tiles and the private proof
//! sidecar give the same proofs as an independent in-memory tree, before
//! and after reopening; whatever a crash leaves in the sidecar past the
//! integrated size is cut back; a sidecar missing tiles the integrated size
//! needs is refused; a wrong tile anywhere is caught by `verify`.

use std::fs::OpenOptions as FsOpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use xgate_ledger::proof::{MemoryLeaves, prove_consistency, prove_inclusion};
use xgate_ledger::{DiskStore, Error, Log, OpenOptions, leaf_hash};

/// Enough entries to fill public tiles at level 0 and private sidecar tiles
/// at levels 1 and 2 (16 x 16 x 16 x 16 = 65,536 would fill level 3).
const SIZE: u64 = 20_000;
/// A private tile: 31 hashes.
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
    // Everything into the files, and a published checkpoint.
    log.checkpoint().expect("checkpoint");
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

fn sidecar(dir: &Path, level: u8) -> std::path::PathBuf {
    dir.join("ledger/nodes").join(format!("level-{level}"))
}

fn writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

#[test]
fn proofs_match_an_independent_tree_before_and_after_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = filled(dir.path());
    assert_proofs_match(&open(dir.path()), &reference);
    // The served tree holds what the spec says: 78 full level-0 tiles and
    // bundles, the partial ones of the published size.
    let log_dir = dir.path().join("log");
    assert!(log_dir.join("tile/0/077").is_file());
    assert!(log_dir.join("tile/entries/077").is_file());
    assert!(log_dir.join("tile/0/078.p/32").is_file());
    assert!(log_dir.join("tile/1/000.p/78").is_file());
    assert!(log_dir.join("tile/entries/078.p/32").is_file());
    assert!(log_dir.join("checkpoint").is_file());
}

#[test]
fn a_sidecar_tail_a_crash_left_past_the_integrated_size_is_cut_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = filled(dir.path());
    let path = sidecar(dir.path(), 1);
    let len = std::fs::metadata(&path).expect("metadata").len();
    let file = FsOpenOptions::new().write(true).open(&path).expect("open");
    file.write_all_at(&[0xAB; 1500], len).expect("garble");
    drop(file);
    let log = open(dir.path());
    assert_eq!(std::fs::metadata(&path).expect("metadata").len(), len);
    assert_proofs_match(&log, &reference);
}

#[test]
fn a_sidecar_missing_tiles_the_integrated_size_needs_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    filled(dir.path());
    let path = sidecar(dir.path(), 1);
    let len = std::fs::metadata(&path).expect("metadata").len();
    let file = FsOpenOptions::new().write(true).open(&path).expect("open");
    file.set_len(len - TILE_BYTES).expect("truncate");
    drop(file);
    let err = Log::open_existing(dir.path(), &OpenOptions::default())
        .err()
        .expect("refused");
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
}

#[test]
fn verify_catches_a_wrong_public_or_private_tile() {
    for (what, path, at) in [
        ("public tile 0/3", "log/tile/0/003", 100),
        (
            "private tile 1/2",
            "ledger/nodes/level-1",
            2 * TILE_BYTES + 40,
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        filled(dir.path());
        let path = dir.path().join(path);
        writable(&path);
        let file = FsOpenOptions::new().write(true).open(&path).expect("open");
        let mut byte = [0u8];
        FsOpenOptions::new()
            .read(true)
            .open(&path)
            .expect("open")
            .read_exact_at(&mut byte, at)
            .expect("read");
        file.write_all_at(&[byte[0] ^ 1], at).expect("flip");
        drop(file);
        let log = open(dir.path());
        let err = log.verify().expect_err("a wrong tile");
        assert!(err.to_string().contains(what), "{what}: {err}");
    }
}
