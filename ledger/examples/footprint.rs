//! Resident memory and open time of a log, measured in a fresh process, and
//! what in-memory Merkle trees need for the same number of entries.
//!
//! ```text
//! cargo run --release -p xgate-ledger --example footprint -- DIR [PROOFS]
//! cargo run --release -p xgate-ledger --example footprint -- --ct-merkle N
//! cargo run --release -p xgate-ledger --example footprint -- --rs-merkle N
//! ```
//!
//! With a log directory: reads `VmRSS`/`VmHWM` from `/proc/self/status`,
//! opens the log (timed; sled page cache from `XGATE_CACHE_BYTES`, default
//! that of `OpenOptions::default()`), builds PROOFS (default 10,000) inclusion proofs for
//! random leaves against the full tree (each timed), reads the figures again
//! and prints one JSON object. `hwm_bytes_per_entry` is the peak resident
//! set (`VmHWM`) over the log size, `rss_bytes_per_entry` the resident set
//! at the end; `added_hwm_bytes_per_entry` leaves out what the process held
//! before opening the log.
//!
//! With `--ct-merkle N` or `--rs-merkle N`: builds that crate's in-memory
//! tree over the same N entries the benchmarks use (`ct-merkle` keeps the
//! entries too, `rs_merkle` only leaf hashes) and reports the same figures,
//! as the baseline for memory.

#[path = "../benches/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Value, json};
use xgate_ledger::hash::Rfc9162Hasher;
use xgate_ledger::{Hash, Log, leaf_hash};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let report = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--ct-merkle", n] => ct_merkle(parse(n)),
        ["--rs-merkle", n] => rs_merkle(parse(n)),
        [dir] => log(PathBuf::from(dir), 10_000),
        [dir, proofs] => log(PathBuf::from(dir), parse(proofs) as usize),
        _ => {
            eprintln!("usage: footprint DIR [PROOFS] | --ct-merkle N | --rs-merkle N");
            std::process::exit(2);
        }
    };
    println!("{report}");
}

fn parse(n: &str) -> u64 {
    n.replace('_', "").parse().expect("a whole number")
}

/// Opens the log in `dir`, proves `proofs` random leaves, and reports.
fn log(dir: PathBuf, proofs: usize) -> Value {
    let before = Mem::now();
    let t = Instant::now();
    let options = common::options();
    let log = Log::open_existing(&dir, &options).expect("open log");
    let open_s = t.elapsed().as_secs_f64();
    let opened = Mem::now();
    let size = log.size();

    let mut rng = fastrand::Rng::with_seed(size);
    let mut times: Vec<f64> = (0..proofs)
        .map(|_| {
            let i = rng.u64(0..size);
            let t = Instant::now();
            let proof = log.inclusion(i, size).expect("inclusion");
            std::hint::black_box(proof);
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let after = Mem::now();
    let pct = |q: f64| {
        times
            .get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1)))
            .map_or(0.0, |s| s * 1e6)
    };
    json!({
        "what": "xgate",
        "dir": dir.display().to_string(),
        "size": size,
        "cache_bytes": options.cache_bytes,
        "open_ms": open_s * 1e3,
        "before_open": before.json(),
        "after_open": opened.json(),
        "after_proofs": after.json(),
        "proofs": proofs,
        "proof_median_us": pct(0.5),
        "proof_p99_us": pct(0.99),
        "rss_bytes_per_entry": after.rss_kib as f64 * 1024.0 / size as f64,
        "hwm_bytes_per_entry": after.hwm_kib as f64 * 1024.0 / size as f64,
        "added_hwm_bytes_per_entry":
            (after.hwm_kib.saturating_sub(before.rss_kib)) as f64 * 1024.0 / size as f64,
    })
}

/// `ct-merkle`'s `MemoryBackedTree` over the benchmark entries.
fn ct_merkle(n: u64) -> Value {
    let before = Mem::now();
    let t = Instant::now();
    let mut tree =
        ct_merkle::mem_backed_tree::MemoryBackedTree::<sha2_next::Sha256, Vec<u8>>::new();
    for i in 0..n {
        tree.push(common::entry(i));
    }
    let build_s = t.elapsed().as_secs_f64();
    let after = Mem::now();
    std::hint::black_box(tree.root());
    baseline(
        "ct-merkle MemoryBackedTree (entries + nodes)",
        n,
        build_s,
        before,
        after,
    )
}

/// `rs_merkle`'s `MerkleTree` over the leaf hashes of the benchmark entries.
fn rs_merkle(n: u64) -> Value {
    let before = Mem::now();
    let t = Instant::now();
    let mut tree = rs_merkle::MerkleTree::<Rfc9162Hasher>::new();
    // Leaf hashes go in a chunk at a time, as a log would feed them, so the
    // figure is the tree's own, not a transient copy of all leaves.
    let mut next = 0;
    while next < n {
        let end = (next + 1_000_000).min(n);
        let mut chunk: Vec<Hash> = (next..end).map(|i| leaf_hash(&common::entry(i))).collect();
        tree.append(&mut chunk);
        next = end;
    }
    tree.commit();
    let build_s = t.elapsed().as_secs_f64();
    let after = Mem::now();
    std::hint::black_box(tree.root());
    baseline(
        "rs_merkle MerkleTree (leaf hashes + nodes)",
        n,
        build_s,
        before,
        after,
    )
}

fn baseline(what: &str, n: u64, build_s: f64, before: Mem, after: Mem) -> Value {
    json!({
        "what": what,
        "size": n,
        "build_s": build_s,
        "before": before.json(),
        "after": after.json(),
        "rss_bytes_per_entry": after.rss_kib as f64 * 1024.0 / n as f64,
        "hwm_bytes_per_entry": after.hwm_kib as f64 * 1024.0 / n as f64,
        "added_rss_bytes_per_entry":
            (after.rss_kib.saturating_sub(before.rss_kib)) as f64 * 1024.0 / n as f64,
    })
}

/// Resident set now and at its peak, from `/proc/self/status`.
#[derive(Clone, Copy)]
struct Mem {
    rss_kib: u64,
    hwm_kib: u64,
}

impl Mem {
    fn now() -> Mem {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Mem {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        }
    }

    fn json(self) -> Value {
        json!({ "vm_rss_kib": self.rss_kib, "vm_hwm_kib": self.hwm_kib })
    }
}
