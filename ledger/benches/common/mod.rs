//! Shared by the ledger benchmarks and examples: realistic entries, the
//! benchmark sizes, and pre-filled logs kept under `target/bench-logs`.
//!
//! Included with `#[path]` by each bench and example, so not every item is
//! used by every one of them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use xgate_ledger::{DiskStore, Log, OpenOptions};

/// Entries per batch when filling a log and in the throughput benchmark.
pub const BATCH: usize = 1_000;

/// Sizes used when `XGATE_BENCH_SIZES` is not set: quick enough for a
/// plain `cargo bench`.
pub const DEFAULT_SIZES: &[u64] = &[100_000, 1_000_000];

/// The log sizes to benchmark: `XGATE_BENCH_SIZES=100000,1000000,10000000`,
/// or [`DEFAULT_SIZES`].
pub fn sizes() -> Vec<u64> {
    match std::env::var("XGATE_BENCH_SIZES") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|s| {
                s.trim()
                    .replace('_', "")
                    .parse()
                    .expect("XGATE_BENCH_SIZES is a comma-separated list of integers")
            })
            .collect(),
        _ => DEFAULT_SIZES.to_vec(),
    }
}

/// Entry `i`: a ~150-byte metadata record shaped like the gateway's leaves
/// (sequence, time, kind, sender, recipient, envelope digest, subject,
/// decision). Deterministic, so every run hashes the same bytes.
pub fn entry(i: u64) -> Vec<u8> {
    const KINDS: [&str; 4] = [
        "record.send",
        "asset.transfer.offer",
        "medical.request",
        "inventory.report",
    ];
    let digest = xgate_ledger::leaf_hash(&i.to_be_bytes());
    let digest: String = digest.0.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "v1|{i}|{}|{}|agency-{:03}|agency-{:03}|{digest}|asset:TAG-{:08}|allow",
        1_750_000_000 + i / 100,
        KINDS[(i % 4) as usize],
        i % 97,
        (i / 7) % 89,
        i % 50_000_000,
    )
    .into_bytes()
}

/// `target/bench-logs` in the workspace (or `$CARGO_TARGET_DIR/bench-logs`).
pub fn bench_root() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("bench-logs")
}

/// Open options for benchmark logs: the defaults, with the sled page cache
/// from `XGATE_CACHE_BYTES` if set.
pub fn options() -> OpenOptions {
    let mut options = OpenOptions::default();
    if let Ok(bytes) = std::env::var("XGATE_CACHE_BYTES") {
        options.cache_bytes = bytes
            .replace('_', "")
            .parse()
            .expect("XGATE_CACHE_BYTES is a number of bytes");
    }
    options
}

/// Opens (creating if needed) a log with [`options`].
pub fn open(dir: &Path) -> Log<DiskStore> {
    Log::create_or_open(dir, &options()).expect("open log")
}

/// The directory of the pre-filled log of `size` entries
/// (`target/bench-logs/<size>`), built on first use and reused afterwards.
///
/// A benchmark that appends to it grows it; a log that already holds at
/// least `size` entries is taken as it is.
pub fn prefilled(size: u64) -> PathBuf {
    let dir = bench_root().join(size.to_string());
    let log = open(&dir);
    fill(&log, size);
    dir
}

/// Appends entries to `log` in batches of [`BATCH`] until it holds at least
/// `size`, reporting progress on stderr. Returns the time each batch took
/// (each durable on return), in seconds.
pub fn fill(log: &Log<DiskStore>, size: u64) -> Vec<f64> {
    let start = log.size();
    if start >= size {
        return Vec::new();
    }
    eprintln!("filling log to {size} entries (from {start})...");
    let t = Instant::now();
    let mut next = start;
    let mut batches = Vec::new();
    while next < size {
        let n = (size - next).min(BATCH as u64);
        let batch: Vec<Vec<u8>> = (next..next + n).map(entry).collect();
        let b = Instant::now();
        log.append_batch(&batch).expect("append batch");
        batches.push(b.elapsed().as_secs_f64());
        next += n;
        if next.is_multiple_of(1_000_000) {
            let secs = t.elapsed().as_secs_f64();
            eprintln!(
                "  {next} entries, {:.0} entries/s",
                (next - start) as f64 / secs
            );
        }
    }
    log.checkpoint().expect("checkpoint");
    batches
}

/// Copies the log in `from` to a fresh `to`, once no process (or leftover
/// sled handle in this one) holds `from`.
pub fn copy_log(from: &Path, to: &Path) {
    wait_released(from);
    if to.exists() {
        std::fs::remove_dir_all(to).expect("remove old copy");
    }
    copy_dir(from, to);
}

/// Waits until sled has let go of the database in `dir`: it releases its
/// file lock only when its collector frees a dropped `Db`, a moment after
/// `drop`, and may still write until then.
fn wait_released(dir: &Path) {
    use fs2::FileExt;
    let file = std::fs::File::open(dir.join("db").join("db")).expect("open sled db file");
    for _ in 0..1_000 {
        if file.try_lock_exclusive().is_ok() {
            let _ = FileExt::unlock(&file);
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{} is still held open", dir.display());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for item in std::fs::read_dir(from).expect("read log dir") {
        let item = item.expect("read log dir");
        let target = to.join(item.file_name());
        if item.file_type().expect("file type").is_dir() {
            copy_dir(&item.path(), &target);
        } else {
            std::fs::copy(item.path(), &target).expect("copy file");
        }
    }
}

/// Reads back what criterion measured in this process, to print same-run
/// ratios after the benchmarks.
pub struct Results {
    started: std::time::SystemTime,
    dir: PathBuf,
}

impl Results {
    /// Remembers the start of this run; estimates written before it are stale.
    pub fn start() -> Results {
        let dir = std::env::var_os("CRITERION_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| bench_root().with_file_name("criterion"));
        Results {
            started: std::time::SystemTime::now(),
            dir,
        }
    }

    /// Criterion's median time per iteration, in seconds, for benchmark
    /// `id` (`group/function/value`), if it ran in this process.
    pub fn median_s(&self, id: &str) -> Option<f64> {
        let path = self.dir.join(id).join("new").join("estimates.json");
        let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
        if modified < self.started {
            return None;
        }
        let text = std::fs::read_to_string(&path).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        json["median"]["point_estimate"].as_f64().map(|ns| ns / 1e9)
    }
}

/// Whether criterion's command-line filter (a regex, if any) selects the
/// benchmark `id`. Lets a bench skip expensive setup, and passes criterion
/// does not run, when they are filtered out.
pub fn selected(id: &str) -> bool {
    // Criterion options that take a value, so the value is not the filter.
    const WITH_VALUE: &[&str] = &[
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--profile-time",
        "--color",
        "--output-format",
        "--plotting-backend",
        "--format",
        "--logfile",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut filter = None;
    let mut i = 0;
    while i < args.len() {
        if WITH_VALUE.contains(&args[i].as_str()) {
            i += 1;
        } else if !args[i].starts_with('-') {
            filter = Some(args[i].clone());
        }
        i += 1;
    }
    let exact = args.iter().any(|a| a == "--exact");
    match filter {
        None => true,
        Some(f) if exact => f == id,
        Some(f) => regex::Regex::new(&f).map_or(true, |re| re.is_match(id)),
    }
}

/// Formats a rate for tables: `123,456`.
pub fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `pass` or `FAIL`.
pub fn verdict(ok: bool) -> &'static str {
    if ok { "pass" } else { "FAIL" }
}
