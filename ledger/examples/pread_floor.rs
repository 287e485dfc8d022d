//! The cost floor of the proposal in docs/performance.md (finding 6): full
//! tiles kept in append-only per-level files and read with `pread`.
//!
//! ```text
//! cargo run --release -p xgate-ledger --example pread_floor [DIR]
//! ```
//!
//! Lays out files the size of the level-0 and level-1 tile files of a 10^7
//! log at tile height 4 (625,000 and 39,062 tiles of 31 hashes) under DIR
//! (default `target/bench-logs/pread-floor`), then times what a proof would
//! read from them: one random tile per level, one 32-byte hash from each of
//! its four rows, eight `pread`s in all. Prints the median and p99 per proof
//! and the peak resident set: the file pages live in the kernel's page
//! cache, outside the process.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Instant;

const TILE_BYTES: u64 = 31 * 32;
const TILES: [u64; 2] = [625_000, 39_062];
const PROOFS: usize = 50_000;

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench-logs/pread-floor"));
    std::fs::create_dir_all(&dir)?;
    let mut files = Vec::new();
    for (level, tiles) in TILES.iter().enumerate() {
        let path = dir.join(format!("tiles-{level}"));
        let len = tiles * TILE_BYTES;
        if std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) != len {
            let file = std::fs::File::create(&path)?;
            let chunk = vec![0x5a_u8; 1 << 20];
            let mut at = 0;
            while at < len {
                let n = chunk.len().min((len - at) as usize);
                file.write_all_at(&chunk[..n], at)?;
                at += n as u64;
            }
            file.sync_all()?;
        }
        files.push((std::fs::File::open(&path)?, *tiles));
    }

    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut hash = [0u8; 32];
    let mut nanos = Vec::with_capacity(PROOFS);
    for _ in 0..PROOFS {
        let start = Instant::now();
        for (file, tiles) in &files {
            let tile = next() % tiles;
            // Row r of a height-4 tile starts at hash 32 - 32 / 2^r; take its first.
            for row_start in [0u64, 16, 24, 28] {
                file.read_exact_at(&mut hash, tile * TILE_BYTES + row_start * 32)?;
            }
        }
        nanos.push(start.elapsed().as_nanos() as u64);
    }
    nanos.sort_unstable();
    let status = std::fs::read_to_string("/proc/self/status")?;
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    println!(
        "{{\"preads_per_proof\":8,\"proofs\":{PROOFS},\"median_us\":{:.2},\"p99_us\":{:.2},\"vm_hwm_kib\":{hwm_kib}}}",
        nanos[PROOFS / 2] as f64 / 1e3,
        nanos[PROOFS * 99 / 100] as f64 / 1e3
    );
    Ok(())
}
