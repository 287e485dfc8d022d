//! Inclusion and consistency proof generation on pre-filled logs, against
//! `ct-merkle`'s in-memory tree over the same entries, measured in the same
//! run.
//!
//! ```text
//! cargo bench -p xgate-ledger --bench proofs
//! XGATE_BENCH_SIZES=100000,1000000,10000000 cargo bench -p xgate-ledger --bench proofs
//! ```
//!
//! - `inclusion/{xgate,ct_merkle}/N`: a proof for a random leaf of the tree
//!   of size N (the whole log), from `target/bench-logs/N` opened with the
//!   default page cache (`OpenOptions::default()`); ct-merkle's `prove_inclusion` on a
//!   `MemoryBackedTree` holding the same N entries in RAM.
//! - `consistency/{xgate,ct_merkle}/N`: a proof from a random older size to
//!   N.
//!
//! Each iteration takes the next of 10,000 random indices (fixed seed), so
//! the log reads tiles all over the tree, as a server answering auditors
//! would. Before criterion runs, every one of those proofs is built once
//! and timed on its own: that first pass, on a freshly opened log, is the
//! cold figure (sled page cache empty, OS page cache in whatever state it
//! was); criterion's figures that follow are warm, with the working set
//! resident. Both are printed. A sample of proofs from both sides is
//! checked to be byte-for-byte equal, so both do the same work.

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use sha2_next::Sha256;
use xgate_ledger::{DiskStore, Hash, Log};

use common::{Results, entry, verdict};

/// Random indices cycled through by each benchmark.
const PROBES: usize = 10_000;
/// Target from the brief: median proof generation time.
const TARGET_S: f64 = 20e-6;

type CtTree = MemoryBackedTree<Sha256, Vec<u8>>;

fn main() {
    let results = Results::start();
    let mut c = Criterion::default().configure_from_args();
    let sizes = common::sizes();
    let mut cold = Vec::new();
    for &size in &sizes {
        cold.extend(bench_size(&mut c, size));
    }
    c.final_summary();
    summary(&results, &sizes, &cold);
}

/// Per-proof times of the first pass over the probes on a fresh log.
struct Cold {
    size: u64,
    inclusion: Percentiles,
    consistency: Percentiles,
}

/// Median and p99, in seconds.
struct Percentiles {
    p50: f64,
    p99: f64,
}

impl Percentiles {
    fn of(mut times: Vec<f64>) -> Percentiles {
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        Percentiles {
            p50: at(0.5),
            p99: at(0.99),
        }
    }
}

/// Builds every probe's proofs once, timing each: the cold figures, and the
/// warm-up for criterion.
fn first_pass(log: &Log<DiskStore>, probes: &Probes) -> (Percentiles, Percentiles) {
    let n = log.size();
    let time = |f: &mut dyn FnMut()| {
        let t = std::time::Instant::now();
        f();
        t.elapsed().as_secs_f64()
    };
    let inclusion = probes
        .leaves
        .iter()
        .map(|&i| {
            time(&mut || {
                std::hint::black_box(log.inclusion(i, n).expect("inclusion"));
            })
        })
        .collect();
    let consistency = probes
        .old_sizes
        .iter()
        .map(|&m| {
            time(&mut || {
                std::hint::black_box(log.consistency(m, n).expect("consistency"));
            })
        })
        .collect();
    (Percentiles::of(inclusion), Percentiles::of(consistency))
}

/// Random leaf indices and older tree sizes for a tree of `size` leaves.
struct Probes {
    leaves: Vec<u64>,
    old_sizes: Vec<u64>,
}

impl Probes {
    fn new(size: u64) -> Probes {
        let mut rng = fastrand::Rng::with_seed(size);
        Probes {
            leaves: (0..PROBES).map(|_| rng.u64(0..size)).collect(),
            old_sizes: (0..PROBES).map(|_| rng.u64(1..size)).collect(),
        }
    }
}

fn bench_size(c: &mut Criterion, size: u64) -> Option<Cold> {
    let ids = [
        format!("inclusion/xgate/{size}"),
        format!("inclusion/ct_merkle/{size}"),
        format!("consistency/xgate/{size}"),
        format!("consistency/ct_merkle/{size}"),
    ];
    if !ids.iter().any(|id| common::selected(id)) {
        return None;
    }
    let dir = common::prefilled(size);
    let log = Log::open_existing(&dir, &common::options()).expect("open log");
    let n = log.size();
    assert_eq!(n, size, "{} holds {n} entries", dir.display());
    let probes = Probes::new(n);
    let (inclusion, consistency) = first_pass(&log, &probes);
    let cold = Some(Cold {
        size,
        inclusion,
        consistency,
    });

    // Ours first, in a process that holds nothing else: building ct-merkle's
    // tree leaves a multi-GiB heap behind that slows the log's allocations.
    let mut k = 0;
    let mut group = c.benchmark_group("inclusion");
    configure(&mut group);
    group.bench_function(BenchmarkId::new("xgate", size), |b| {
        b.iter(|| {
            k = (k + 1) % PROBES;
            log.inclusion(probes.leaves[k], n).expect("inclusion")
        });
    });
    group.finish();
    let mut group = c.benchmark_group("consistency");
    configure(&mut group);
    group.bench_function(BenchmarkId::new("xgate", size), |b| {
        b.iter(|| {
            k = (k + 1) % PROBES;
            log.consistency(probes.old_sizes[k], n)
                .expect("consistency")
        });
    });
    group.finish();

    // ct-merkle keeps every entry and node in RAM; build it only if it runs.
    if !(common::selected(&ids[1]) || common::selected(&ids[3])) {
        return cold;
    }
    eprintln!("building ct-merkle tree of {n} entries...");
    let mut tree = CtTree::new();
    for i in 0..n {
        tree.push(entry(i));
    }
    check_same_proofs(&log, &tree, &probes);
    let mut group = c.benchmark_group("inclusion");
    configure(&mut group);
    group.bench_function(BenchmarkId::new("ct_merkle", size), |b| {
        b.iter(|| {
            k = (k + 1) % PROBES;
            tree.prove_inclusion(probes.leaves[k] as usize)
        });
    });
    group.finish();
    let mut group = c.benchmark_group("consistency");
    configure(&mut group);
    group.bench_function(BenchmarkId::new("ct_merkle", size), |b| {
        b.iter(|| {
            k = (k + 1) % PROBES;
            tree.prove_consistency((n - probes.old_sizes[k]) as usize)
        });
    });
    group.finish();
    cold
}

fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group.sample_size(30);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(5));
}

/// Both implementations must produce identical proofs for the same
/// questions, or the comparison means nothing.
fn check_same_proofs(log: &Log<DiskStore>, tree: &CtTree, probes: &Probes) {
    let n = log.size();
    let flat = |hashes: &[Hash]| hashes.iter().flat_map(|h| h.0).collect::<Vec<u8>>();
    assert_eq!(
        tree.root().as_bytes().as_slice(),
        log.root_at(n).expect("root").as_bytes(),
        "roots differ"
    );
    for k in (0..PROBES).step_by(97) {
        let i = probes.leaves[k];
        let ours = log.inclusion(i, n).expect("inclusion");
        assert_eq!(
            tree.prove_inclusion(i as usize).as_bytes(),
            flat(&ours.hashes),
            "inclusion {i}"
        );
        let m = probes.old_sizes[k];
        let ours = log.consistency(m, n).expect("consistency");
        assert_eq!(
            tree.prove_consistency((n - m) as usize).as_bytes(),
            flat(&ours.hashes),
            "consistency {m}"
        );
    }
}

fn summary(results: &Results, sizes: &[u64], cold: &[Cold]) {
    println!("\n## Same-run summary");
    if !cold.is_empty() {
        println!(
            "\n| cold first pass, log size | inclusion median | inclusion p99 | consistency median | consistency p99 |"
        );
        println!("|---:|---:|---:|---:|---:|");
        for c in cold {
            println!(
                "| {} | {:.2} µs | {:.0} µs | {:.2} µs | {:.0} µs |",
                common::thousands(c.size as f64),
                c.inclusion.p50 * 1e6,
                c.inclusion.p99 * 1e6,
                c.consistency.p50 * 1e6,
                c.consistency.p99 * 1e6
            );
        }
    }
    for kind in ["inclusion", "consistency"] {
        let mut header = false;
        for &size in sizes {
            let ours = results.median_s(&format!("{kind}/xgate/{size}"));
            let theirs = results.median_s(&format!("{kind}/ct_merkle/{size}"));
            if ours.is_none() && theirs.is_none() {
                continue;
            }
            if !header {
                println!(
                    "\n| {kind} (warm, criterion median), log size | xgate (tile files) | ct-merkle (RAM) | xgate / ct-merkle | target < 20 µs |"
                );
                println!("|---:|---:|---:|---:|:---|");
                header = true;
            }
            let us = |v: Option<f64>| v.map_or("-".into(), |s| format!("{:.2} µs", s * 1e6));
            let ratio = match (ours, theirs) {
                (Some(o), Some(t)) => format!("{:.1}x", o / t),
                _ => "-".into(),
            };
            println!(
                "| {} | {} | {} | {ratio} | {} |",
                common::thousands(size as f64),
                us(ours),
                us(theirs),
                ours.map_or("-", |o| verdict(o < TARGET_S))
            );
        }
    }
}
