//! Durable append: throughput in batches of 1,000 as the log grows, the
//! latency of one single-entry append, and what group commit buys (small
//! batches, one sync each), each beside a baseline measured in the same run.
//!
//! ```text
//! cargo bench -p xgate-ledger --bench append
//! XGATE_BENCH_SIZES=100000,1000000,10000000 cargo bench -p xgate-ledger --bench append
//! ```
//!
//! - `append_batch_1000/{xgate,rs_merkle}/N`: 1,000 ~150-byte entries per
//!   iteration onto a copy of a pre-filled log of N entries
//!   (`target/bench-logs/N`, built on first use), durable on return; against
//!   `rs_merkle`'s in-memory `append` + `commit` of the same 1,000 leaves on
//!   a tree of N leaves (leaf hashing included on both sides).
//! - `append_single/*`: one entry, one flush, one thread; against one
//!   `sled::Db::insert` + `flush` (the storage floor), one one-insert
//!   `sled::Db::apply_batch` + `flush` (the floor for an atomic batch, which
//!   is what an append is) and one 4 KiB `pwrite` + `fdatasync` on a plain
//!   file. A percentile pass (median, p99)
//!   follows the criterion runs.
//! - `commit_batch/B`: one writer appending B entries per `append_batch`,
//!   one sync each, as the gateway's committer does with the envelopes
//!   waiting for it (the log itself does not combine concurrent appends:
//!   they take turns). Throughput should grow with B as entries share a
//!   sync.
//!
//! After the runs a table of same-run ratios is printed.

#[path = "common/mod.rs"]
mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput};
use rs_merkle::MerkleTree;
use xgate_ledger::hash::Rfc9162Hasher;
use xgate_ledger::{Hash, leaf_hash};

use common::{BATCH, Results, entry, thousands, verdict};

/// Entries per append in the group commit benchmark.
const COMMIT_BATCHES: &[usize] = &[1, 8, 32, 128];
/// Operations timed one by one in the percentile pass.
const LATENCY_OPS: usize = 2_000;
/// Target from the brief: durable entries per second in batches of 1,000.
const TARGET_BATCH_RATE: f64 = 100_000.0;

fn main() {
    let results = Results::start();
    let mut c = Criterion::default().configure_from_args();
    let sizes = common::sizes();
    batch_throughput(&mut c, &sizes);
    single_append(&mut c);
    commit_batch(&mut c);
    c.final_summary();
    let latency = common::selected("append_single/percentiles").then(latency_pass);
    summary(&results, &sizes, latency.as_ref());
}

/// `append_batch_1000`: ours on a copy of each pre-filled log, then
/// `rs_merkle` on a tree of the same size.
fn batch_throughput(c: &mut Criterion, sizes: &[u64]) {
    let mut group = c.benchmark_group("append_batch_1000");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    for &size in sizes {
        let id = BenchmarkId::new("xgate", size);
        if common::selected(&format!("append_batch_1000/xgate/{size}")) {
            // Appending grows the log, so work on a copy and keep the
            // pre-filled one at exactly `size` for the other benchmarks.
            let scratch = scratch_dir(&format!("append-{size}"));
            common::copy_log(&common::prefilled(size), &scratch);
            let log = common::open(&scratch);
            let mut next = log.size();
            group.bench_function(id, |b| {
                b.iter_batched(
                    || {
                        let batch: Vec<Vec<u8>> = (next..next + BATCH as u64).map(entry).collect();
                        next += BATCH as u64;
                        batch
                    },
                    |batch| log.append_batch(&batch).expect("append"),
                    BatchSize::PerIteration,
                );
            });
            drop(log);
            remove_when_released(&scratch);
        }

        let id = BenchmarkId::new("rs_merkle", size);
        if common::selected(&format!("append_batch_1000/rs_merkle/{size}")) {
            let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&entry(i))).collect();
            let mut tree = MerkleTree::<Rfc9162Hasher>::from_leaves(&leaves);
            drop(leaves);
            let mut next = size;
            group.bench_function(id, |b| {
                b.iter_batched(
                    || {
                        let batch: Vec<Vec<u8>> = (next..next + BATCH as u64).map(entry).collect();
                        next += BATCH as u64;
                        batch
                    },
                    |batch| {
                        let mut hashes: Vec<Hash> = batch.iter().map(|e| leaf_hash(e)).collect();
                        tree.append(&mut hashes).commit();
                    },
                    BatchSize::PerIteration,
                );
            });
        }
    }
    group.finish();
}

/// `append_single`: one durable entry on one thread, and the storage floors.
fn single_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_single");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));

    if common::selected("append_single/xgate") {
        let dir = scratch_dir("single");
        let log = common::open(&dir);
        let next = AtomicU64::new(0);
        group.bench_function("xgate", |b| {
            b.iter_batched(
                || entry(next.fetch_add(1, Ordering::Relaxed)),
                |e| log.append(&e).expect("append"),
                BatchSize::SmallInput,
            );
        });
        drop(log);
        remove_when_released(&dir);
    }
    if common::selected("append_single/sled_insert_flush") {
        let (db, dir) = sled_floor();
        let mut next = 0u64;
        group.bench_function("sled_insert_flush", |b| {
            b.iter_batched(
                || {
                    next += 1;
                    (next.to_be_bytes(), entry(next))
                },
                |(k, v)| {
                    db.insert(k, v).expect("insert");
                    db.flush().expect("flush");
                },
                BatchSize::SmallInput,
            );
        });
        drop(db);
        remove_when_released(&dir);
    }
    if common::selected("append_single/sled_batch_flush") {
        let (db, dir) = sled_floor();
        let mut next = 0u64;
        group.bench_function("sled_batch_flush", |b| {
            b.iter_batched(
                || {
                    next += 1;
                    let mut batch = sled::Batch::default();
                    batch.insert(&next.to_be_bytes(), entry(next));
                    batch
                },
                |batch| {
                    db.apply_batch(batch).expect("apply batch");
                    db.flush().expect("flush");
                },
                BatchSize::SmallInput,
            );
        });
        drop(db);
        remove_when_released(&dir);
    }
    if common::selected("append_single/fdatasync_4k") {
        let (file, path) = sync_file();
        let mut i = 0u64;
        let block = [0xa5u8; 4096];
        group.bench_function("fdatasync_4k", |b| {
            b.iter(|| {
                i += 1;
                file.write_all_at(&block, (i % SYNC_BLOCKS) * 4096)
                    .expect("write");
                file.sync_data().expect("fdatasync");
            });
        });
        drop(file);
        let _ = std::fs::remove_file(path);
    }
    group.finish();
}

/// `commit_batch/B`: one writer appending B entries per commit, as the
/// gateway's committer batches the envelopes waiting for it. One iteration
/// is one commit of B entries.
fn commit_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit_batch");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for &size in COMMIT_BATCHES {
        if !common::selected(&format!("commit_batch/{size}")) {
            continue;
        }
        let dir = scratch_dir(&format!("batch-{size}"));
        let log = common::open(&dir);
        let mut next = 0u64;
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter_batched(
                || {
                    let batch: Vec<Vec<u8>> = (next..next + size as u64).map(entry).collect();
                    next += size as u64;
                    batch
                },
                |batch| log.append_batch(&batch).expect("append"),
                BatchSize::PerIteration,
            );
        });
        drop(log);
        remove_when_released(&dir);
    }
    group.finish();
}

/// Median, p99 and mean of one operation, in seconds.
struct Latency {
    p50: f64,
    p99: f64,
    mean: f64,
}

/// The same three single-entry operations, each timed one at a time for
/// percentiles criterion does not give.
struct LatencyPass {
    xgate: Latency,
    sled: Latency,
    sled_batch: Latency,
    fdatasync: Latency,
}

fn latency_pass() -> LatencyPass {
    eprintln!("percentile pass: {LATENCY_OPS} operations each");
    let dir = scratch_dir("latency");
    let log = common::open(&dir);
    let mut i = 0u64;
    let xgate = time_each(|| {
        i += 1;
        let e = entry(i);
        let t = Instant::now();
        log.append(&e).expect("append");
        t.elapsed()
    });
    drop(log);
    remove_when_released(&dir);

    let (db, dir) = sled_floor();
    let mut i = 0u64;
    let sled = time_each(|| {
        i += 1;
        let (k, v) = (i.to_be_bytes(), entry(i));
        let t = Instant::now();
        db.insert(k, v).expect("insert");
        db.flush().expect("flush");
        t.elapsed()
    });
    drop(db);
    remove_when_released(&dir);

    let (db, dir) = sled_floor();
    let mut i = 0u64;
    let sled_batch = time_each(|| {
        i += 1;
        let mut batch = sled::Batch::default();
        batch.insert(&i.to_be_bytes(), entry(i));
        let t = Instant::now();
        db.apply_batch(batch).expect("apply batch");
        db.flush().expect("flush");
        t.elapsed()
    });
    drop(db);
    remove_when_released(&dir);

    let (file, path) = sync_file();
    let block = [0x5au8; 4096];
    let mut i = 0u64;
    let fdatasync = time_each(|| {
        i += 1;
        let t = Instant::now();
        file.write_all_at(&block, (i % SYNC_BLOCKS) * 4096)
            .expect("write");
        file.sync_data().expect("fdatasync");
        t.elapsed()
    });
    drop(file);
    let _ = std::fs::remove_file(path);
    LatencyPass {
        xgate,
        sled,
        sled_batch,
        fdatasync,
    }
}

/// Runs `op` (which times itself) a tenth of [`LATENCY_OPS`] to warm up,
/// then [`LATENCY_OPS`] times for the figures.
fn time_each(mut op: impl FnMut() -> Duration) -> Latency {
    for _ in 0..LATENCY_OPS / 10 {
        op();
    }
    let mut times: Vec<f64> = (0..LATENCY_OPS).map(|_| op().as_secs_f64()).collect();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    Latency {
        p50: at(0.50),
        p99: at(0.99),
        mean: times.iter().sum::<f64>() / times.len() as f64,
    }
}

/// Blocks in the preallocated file that the fdatasync floor overwrites.
const SYNC_BLOCKS: u64 = 16 * 1024;

/// A 64 MiB file, written and synced once, so each timed 4 KiB write
/// overwrites allocated blocks and `fdatasync` has no metadata to flush.
fn sync_file() -> (File, PathBuf) {
    let path = common::bench_root().join("fdatasync.dat");
    std::fs::create_dir_all(common::bench_root()).expect("bench dir");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("open sync file");
    let chunk = vec![0u8; 1 << 20];
    for m in 0..(SYNC_BLOCKS * 4096) >> 20 {
        file.write_all_at(&chunk, m << 20).expect("preallocate");
    }
    file.sync_all().expect("sync");
    (file, path)
}

/// A sled database configured as the ledger's store configures it.
fn sled_floor() -> (sled::Db, PathBuf) {
    let dir = scratch_dir("sled-floor");
    let db = sled::Config::new()
        .path(&dir)
        .cache_capacity(xgate_ledger::OpenOptions::default().cache_bytes)
        .mode(sled::Mode::HighThroughput)
        .flush_every_ms(None)
        .open()
        .expect("open sled");
    (db, dir)
}

/// An empty scratch directory under `target/bench-logs/scratch`.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = common::bench_root().join("scratch").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clear scratch");
    }
    dir
}

/// Removes a scratch log once sled has let go of it (see `copy_log`).
fn remove_when_released(dir: &Path) {
    for _ in 0..500 {
        let held = std::fs::File::open(dir.join("db").join("db"))
            .or_else(|_| std::fs::File::open(dir.join("db")))
            .map(|f| fs2::FileExt::try_lock_exclusive(&f).is_err())
            .unwrap_or(false);
        if !held {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn summary(results: &Results, sizes: &[u64], latency: Option<&LatencyPass>) {
    let rate = |id: &str, n: f64| results.median_s(id).map(|s| n / s);
    println!("\n## Same-run summary (criterion medians)");
    let mut ours = Vec::new();
    let mut header = false;
    for &size in sizes {
        let x = rate(&format!("append_batch_1000/xgate/{size}"), BATCH as f64);
        let r = rate(&format!("append_batch_1000/rs_merkle/{size}"), BATCH as f64);
        if x.is_none() && r.is_none() {
            continue;
        }
        if !header {
            println!(
                "\n| log size | xgate entries/s | rs_merkle entries/s | ratio | target >= 100,000/s |"
            );
            println!("|---:|---:|---:|---:|:---|");
            header = true;
        }
        let fmt = |v: Option<f64>| v.map_or("-".into(), thousands);
        let ratio = match (x, r) {
            (Some(x), Some(r)) => format!("{:.2}x", x / r),
            _ => "-".into(),
        };
        let pass = x.map_or("-", |x| verdict(x >= TARGET_BATCH_RATE));
        println!(
            "| {} | {} | {} | {ratio} | {pass} |",
            thousands(size as f64),
            fmt(x),
            fmt(r)
        );
        ours.extend(x.map(|x| (size, x)));
    }
    if let (Some(first), Some(last)) = (ours.first(), ours.last())
        && ours.len() > 1
    {
        println!(
            "\nflatness: xgate at {} / at {} = {:.2}",
            thousands(last.0 as f64),
            thousands(first.0 as f64),
            last.1 / first.1
        );
    }

    let single = |name: &str| results.median_s(&format!("append_single/{name}"));
    if let Some(x) = single("xgate") {
        println!("\n| single append (criterion median) | time | xgate / this |");
        println!("|---|---:|---:|");
        for name in [
            "xgate",
            "sled_insert_flush",
            "sled_batch_flush",
            "fdatasync_4k",
        ] {
            if let Some(t) = single(name) {
                println!("| {name} | {:.0} µs | {:.2}x |", t * 1e6, x / t);
            }
        }
    }
    if let Some(l) = latency {
        println!(
            "\n| single append, {LATENCY_OPS} ops | median | p99 | mean | median xgate / this |"
        );
        println!("|---|---:|---:|---:|---:|");
        for (name, v) in [
            ("xgate append", &l.xgate),
            ("sled insert+flush", &l.sled),
            ("sled apply_batch(1)+flush", &l.sled_batch),
            ("4 KiB pwrite+fdatasync", &l.fdatasync),
        ] {
            println!(
                "| {name} | {:.0} µs | {:.0} µs | {:.0} µs | {:.2}x |",
                v.p50 * 1e6,
                v.p99 * 1e6,
                v.mean * 1e6,
                l.xgate.p50 / v.p50
            );
        }
    }

    let one = rate("commit_batch/1", 1.0);
    let floor = single("sled_insert_flush")
        .or(latency.map(|l| l.sled.p50))
        .map(|s| 1.0 / s);
    header = false;
    for &size in COMMIT_BATCHES {
        let Some(t) = rate(&format!("commit_batch/{size}"), size as f64) else {
            continue;
        };
        if !header {
            println!(
                "\n| entries per commit | entries/s | vs 1 per commit | vs sled insert+flush floor |"
            );
            println!("|---:|---:|---:|---:|");
            header = true;
        }
        let vs = |b: Option<f64>| b.map_or("-".into(), |b| format!("{:.2}x", t / b));
        println!(
            "| {size} | {} | {} | {} |",
            thousands(t),
            vs(one),
            vs(floor)
        );
    }
}
