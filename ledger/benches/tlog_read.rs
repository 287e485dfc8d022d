//! Reading hashes from full tile files through `TileDir::read_tile`, the
//! read a proof makes once per tile level.
//!
//! ```text
//! cargo bench -p xgate-ledger --bench tlog_read
//! ```
//!
//! - `tlog_read/one_hash/10000`: one hash at a random position of a random
//!   tile among 10,000 full level-0 tiles (a log of 2.56 million entries).
//!   Far more tiles than the descriptor cache holds, so most reads open the
//!   file first: the worst case of a proof's level-0 read.
//! - `tlog_read/one_hash/200`: the same over 200 tiles, all in the cache: the
//!   upper levels of a proof, and any recently read tile.
//!
//! The files are warm in the page cache (just written). Each iteration
//! takes the next of 10,000 random (tile, position) pairs, fixed seed.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use xgate_ledger::tlog::{TILE_BYTES, TileDir, Width};

const TILES: u64 = 10_000;
const PROBES: usize = 10_000;

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = TileDir::open(&tmp.path().join("log")).expect("open");
    fill(&dir);
    let mut group = c.benchmark_group("tlog_read");
    group.sample_size(50);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(5));
    for tiles in [TILES, 200] {
        let mut rng = fastrand::Rng::with_seed(19);
        let probes: Vec<(u64, usize)> = (0..PROBES)
            .map(|_| (rng.u64(..tiles), rng.usize(..256)))
            .collect();
        let mut next = 0;
        let mut out = [0u8; 32];
        group.bench_function(BenchmarkId::new("one_hash", tiles), |b| {
            b.iter(|| {
                let (index, first) = probes[next % PROBES];
                next += 1;
                let found = dir.read_tile(0, index, first, &mut out).expect("read");
                assert!(found);
                black_box(&out);
            })
        });
        // Every read returned the hash that was written there.
        for &(index, first) in probes.iter().take(100) {
            dir.read_tile(0, index, first, &mut out).expect("read");
            assert_eq!(out, hash_of(index, first));
        }
    }
    group.finish();
    c.final_summary();
}

/// Writes the tiles straight into the tree, in the spec's layout. Going
/// through `put_tile` would `fsync` each of them (tens of seconds here),
/// which says nothing about reads.
fn fill(dir: &TileDir) {
    use std::os::unix::fs::PermissionsExt;
    let mut tile = vec![0u8; TILE_BYTES];
    for index in 0..TILES {
        for (i, hash) in tile.chunks_exact_mut(32).enumerate() {
            hash.copy_from_slice(&hash_of(index, i));
        }
        let path = dir
            .root()
            .join(xgate_ledger::tlog::path::tile_path(0, index, Width::Full));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, &tile).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    }
}

/// A distinct recognisable hash for each (tile, position).
fn hash_of(index: u64, position: usize) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&index.to_be_bytes());
    h[8..16].copy_from_slice(&(position as u64).to_be_bytes());
    h
}
