//! Appends entries to a log in durable batches of 1,000 and prints the rate:
//! a quick sanity check of append throughput, and the tool that builds the
//! pre-filled logs the benchmarks reuse.
//!
//! ```text
//! cargo run --release -p xgate-ledger --example fill -- DIR COUNT
//! ```
//!
//! Appends COUNT more entries to the log in DIR (created if missing) and
//! prints one JSON line: entries appended, seconds, entries per second, and
//! the median, p99, p99.9 and worst time of one durable batch.

#[path = "../benches/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(count)) = (args.next(), args.next()) else {
        eprintln!("usage: fill DIR COUNT");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    let count: u64 = count.replace('_', "").parse().expect("COUNT is an integer");
    let log = common::open(&dir);
    let before = log.size();
    let t = Instant::now();
    let mut batches = common::fill(&log, before + count);
    let secs = t.elapsed().as_secs_f64();
    batches.sort_by(f64::total_cmp);
    let ms = |q: f64| {
        batches
            .get(((batches.len() as f64 * q) as usize).min(batches.len().saturating_sub(1)))
            .map_or(0.0, |s| s * 1e3)
    };
    println!(
        "{{\"dir\":{:?},\"before\":{before},\"appended\":{count},\"seconds\":{secs:.3},\"entries_per_s\":{:.0},\"batch_ms\":{{\"median\":{:.2},\"p99\":{:.2},\"p999\":{:.2},\"max\":{:.2}}}}}",
        dir.display().to_string(),
        count as f64 / secs,
        ms(0.5),
        ms(0.99),
        ms(0.999),
        ms(1.0)
    );
}
