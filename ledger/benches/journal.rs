//! The journal's commit path: appending one 16 KiB record, durable on
//! return, against the floor of a bare `pwrite` + `fdatasync` of the same
//! bytes, measured in the same run on the data filesystem
//! (`target/bench-logs`).
//!
//! ```text
//! cargo bench -p xgate-ledger --bench journal
//! ```
//!
//! - `journal_append_16k/journal`: `Journal::append` of a 16 KiB payload
//!   into 8 MiB segments (one `pwritev` + one `fdatasync`; a segment switch
//!   every 511 records takes the segment the preparer made ready). Old
//!   segments are released between timed runs.
//! - `journal_append_16k/pwrite_fdatasync`: the same 16,400 bytes written
//!   with one `pwrite` at advancing offsets into an 8 MiB file prepared as
//!   a segment is (allocated, zeros written, synced), then `fdatasync`; at
//!   the end of the file it starts over at offset 0.
//! - `journal_append_16k/pwrite_fdatasync_fallocated`: the same into space
//!   only `fallocate`d (unwritten extents, converted at each sync): why the
//!   journal writes its zeros ahead.
//!
//! Then an interleaved pass (journal, bare, journal, bare, ...) times each
//! operation to give medians and p99 under the same disk conditions, and a
//! table of same-run ratios is printed.

#[path = "common/mod.rs"]
mod common;

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use xgate_ledger::journal::{Journal, JournalOptions};

use common::Results;

/// The payload of one record.
const PAYLOAD: usize = 16 * 1024;
/// A record's bytes on disk: the 16-byte header and the payload.
const RECORD: usize = PAYLOAD + 16;
/// The size of a segment and of the bare baseline's file.
const SEGMENT: u64 = 8 << 20;
/// Operations of each kind in the interleaved pass.
const LATENCY_OPS: usize = 1_000;

fn main() {
    let results = Results::start();
    let mut c = Criterion::default().configure_from_args();
    let root = common::bench_root().join("journal");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("bench dir");
    let payload: Vec<u8> = (0..PAYLOAD).map(|i| (i * 7 + 1) as u8).collect();

    let mut group = c.benchmark_group("journal_append_16k");
    group.throughput(Throughput::Bytes(PAYLOAD as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    if common::selected("journal_append_16k/journal") {
        let journal = open_journal(&root);
        group.bench_function("journal", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    journal.append(&[&payload]).expect("append");
                }
                let took = start.elapsed();
                // Keep the disk use flat, outside the timing.
                journal.release_before(journal.next_seq()).expect("release");
                took
            });
        });
        eprintln!("journal: {} stalls", journal.stalls());
    }
    if common::selected("journal_append_16k/pwrite_fdatasync") {
        let mut bare = Bare::new(root.join("bare.dat"), true);
        group.bench_function("pwrite_fdatasync", |b| b.iter(|| bare.write(&payload)));
    }
    if common::selected("journal_append_16k/pwrite_fdatasync_fallocated") {
        let mut bare = Bare::new(root.join("fallocated.dat"), false);
        group.bench_function("pwrite_fdatasync_fallocated", |b| {
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    // A fresh file when this one is full, outside the timing,
                    // so every write lands in unwritten space.
                    if bare.full() {
                        bare = Bare::new(root.join("fallocated.dat"), false);
                    }
                    let start = Instant::now();
                    bare.write(&payload);
                    took += start.elapsed();
                }
                took
            });
        });
    }
    group.finish();
    c.final_summary();

    let latency =
        common::selected("journal_append_16k/interleaved").then(|| interleaved(&root, &payload));
    summary(&results, latency);
    let _ = std::fs::remove_dir_all(&root);
}

fn open_journal(root: &std::path::Path) -> Journal {
    let dir = root.join("segments");
    let _ = std::fs::remove_dir_all(&dir);
    Journal::open(
        &dir,
        JournalOptions {
            segment_bytes: SEGMENT,
            ..JournalOptions::default()
        },
    )
    .expect("open journal")
}

/// The floor: one `pwrite` of a whole record and one `fdatasync`.
struct Bare {
    file: File,
    offset: u64,
    header: [u8; 16],
    buf: Vec<u8>,
}

impl Bare {
    /// An 8 MiB file at `path`, allocated, and zero-filled if `zeros`.
    fn new(path: PathBuf, zeros: bool) -> Bare {
        let _ = std::fs::remove_file(&path);
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .expect("create bare file");
        rustix::fs::fallocate(
            file.as_fd(),
            rustix::fs::FallocateFlags::empty(),
            0,
            SEGMENT,
        )
        .expect("fallocate");
        if zeros {
            let chunk = vec![0u8; 1 << 20];
            for m in 0..SEGMENT >> 20 {
                file.write_all_at(&chunk, m << 20).expect("zero");
            }
        }
        file.sync_all().expect("sync");
        Bare {
            file,
            offset: 0,
            header: [0x5a; 16],
            buf: Vec::with_capacity(RECORD),
        }
    }

    fn full(&self) -> bool {
        self.offset + RECORD as u64 > SEGMENT
    }

    /// Writes header and payload as one buffer (the journal's `pwritev`
    /// avoids this copy; the copy is not timed apart, and is small).
    fn write(&mut self, payload: &[u8]) {
        if self.full() {
            self.offset = 0;
        }
        self.buf.clear();
        self.buf.extend_from_slice(&self.header);
        self.buf.extend_from_slice(payload);
        self.file
            .write_all_at(&self.buf, self.offset)
            .expect("pwrite");
        self.file.sync_data().expect("fdatasync");
        self.offset += RECORD as u64;
    }
}

/// Percentiles of one kind of operation, in seconds.
struct Latency {
    p50: f64,
    p99: f64,
    mean: f64,
}

fn latency(mut times: Vec<f64>) -> Latency {
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Latency {
        p50: at(0.5),
        p99: at(0.99),
        mean: times.iter().sum::<f64>() / times.len() as f64,
    }
}

/// Journal appends and bare writes taken in turns, each timed.
fn interleaved(root: &std::path::Path, payload: &[u8]) -> (Latency, Latency, u64) {
    let journal = open_journal(root);
    let mut bare = Bare::new(root.join("bare-interleaved.dat"), true);
    let mut ours = Vec::with_capacity(LATENCY_OPS);
    let mut floor = Vec::with_capacity(LATENCY_OPS);
    for i in 0..LATENCY_OPS {
        let start = Instant::now();
        journal.append(&[payload]).expect("append");
        ours.push(start.elapsed().as_secs_f64());
        let start = Instant::now();
        bare.write(payload);
        floor.push(start.elapsed().as_secs_f64());
        if i % 256 == 255 {
            journal.release_before(journal.next_seq()).expect("release");
        }
    }
    (latency(ours), latency(floor), journal.stalls())
}

fn summary(results: &Results, interleaved: Option<(Latency, Latency, u64)>) {
    let median = |name: &str| results.median_s(&format!("journal_append_16k/{name}"));
    if let Some(bare) = median("pwrite_fdatasync") {
        println!("\n| 16 KiB durable write (criterion median) | time | this / bare |");
        println!("|---|---:|---:|");
        for name in ["journal", "pwrite_fdatasync", "pwrite_fdatasync_fallocated"] {
            if let Some(t) = median(name) {
                println!("| {name} | {:.0} µs | {:.2}x |", t * 1e6, t / bare);
            }
        }
    }
    if let Some((ours, floor, stalls)) = interleaved {
        println!("\n| interleaved, {LATENCY_OPS} ops each | median | p99 | mean | median / bare |");
        println!("|---|---:|---:|---:|---:|");
        for (name, v) in [("journal append", &ours), ("bare pwrite+fdatasync", &floor)] {
            println!(
                "| {name} | {:.0} µs | {:.0} µs | {:.0} µs | {:.2}x |",
                v.p50 * 1e6,
                v.p99 * 1e6,
                v.mean * 1e6,
                v.p50 / floor.p50
            );
        }
        println!("\njournal segment stalls in the interleaved pass: {stalls}");
    }
}
