//! A quick measurement, not a test (ignored by default): appends per
//! second of one and two `PgLog`s on one database, each appending from
//! several threads in turns of 1, 64 and 256 entries (600-byte entries and
//! one 40-byte key per entry, as the gateway's committer writes them;
//! the entries are incompressible), and
//! what each batch cost the database: the lock hold time, round trips and
//! bytes.
//!
//! ```text
//! cargo test -p xgate-ledger --release --test pg_bench -- --ignored --nocapture
//! ```

mod pg_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pg_common::{copy_dir, open};
use xgate_ledger::WriteBatch;
use xgate_ledger::pg::{PgLog, PgStats};
use xgate_ledger::turn::TurnStart;

/// Threads appending per replica.
const THREADS: usize = 4;
/// How long each configuration runs.
const RUN: Duration = Duration::from_secs(4);

fn run(logs: &[PgLog], batch: usize) -> (u64, Duration) {
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let appended: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = logs
            .iter()
            .enumerate()
            .flat_map(|(r, log)| (0..THREADS).map(move |t| (r, t, log)))
            .map(|(r, t, log)| {
                let stop = &stop;
                s.spawn(move || {
                    let mut n = 0u64;
                    let mut round = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let committed = log
                            .turn(&mut |start: &TurnStart| {
                                let mut entries = Vec::with_capacity(batch);
                                let mut writes = WriteBatch::new();
                                for j in 0..batch as u64 {
                                    let mut e =
                                        format!("{r}/{t}/{round}/{j}@{}", start.next_index + j)
                                            .into_bytes();
                                    // Incompressible, as signed envelopes are:
                                    // the database's compression saves nothing.
                                    let mut x = start.next_index + j + 1;
                                    while e.len() < 600 {
                                        x ^= x << 13;
                                        x ^= x >> 7;
                                        x ^= x << 17;
                                        e.extend_from_slice(&x.to_le_bytes());
                                    }
                                    e.truncate(600);
                                    entries.push(e);
                                    let mut key = format!("Gr{r}/{t}/{round}/{j}").into_bytes();
                                    key.resize(40, b'.');
                                    writes.put(key, (start.next_index + j).to_be_bytes().to_vec());
                                }
                                (entries, writes)
                            })
                            .expect("turn");
                        n += committed.range.end - committed.range.start;
                        round += 1;
                    }
                    n
                })
            })
            .collect();
        std::thread::sleep(RUN);
        stop.store(true, Ordering::Relaxed);
        handles.into_iter().map(|h| h.join().expect("join")).sum()
    });
    (appended, started.elapsed())
}

fn sum(stats: &[PgStats]) -> PgStats {
    stats.iter().fold(PgStats::default(), |a, s| PgStats {
        batches: a.batches + s.batches,
        entries: a.entries + s.entries,
        hold_total_us: a.hold_total_us + s.hold_total_us,
        hold_max_us: a.hold_max_us.max(s.hold_max_us),
        commit_total_us: a.commit_total_us + s.commit_total_us,
        wait_total_us: a.wait_total_us + s.wait_total_us,
        round_trips: a.round_trips + s.round_trips,
        bytes_sent: a.bytes_sent + s.bytes_sent,
    })
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn appends_per_second_of_one_and_two_replicas() {
    let server = xgate_tests::require_postgres!();
    println!(
        "replicas threads batch | entries/s batches/s | wait µs  hold µs (commit µs)  max hold | RT/batch KiB/batch WAL KiB/batch | ceiling batches/s"
    );
    for replicas in [1usize, 2] {
        for batch in [1usize, 64, 256] {
            let db = server.database();
            let tmp = tempfile::tempdir().expect("tempdir");
            let first = tmp.path().join("r0");
            let mut logs = vec![open(db.url(), &first)];
            for r in 1..replicas {
                let dir = tmp.path().join(format!("r{r}"));
                copy_dir(&first, &dir);
                logs.push(open(db.url(), &dir));
            }
            let lsn = db.psql("SELECT pg_current_wal_lsn()").expect("lsn");
            let (appended, took) = run(&logs, batch);
            let wal: f64 = db
                .psql(&format!(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{}')",
                    lsn.trim()
                ))
                .expect("wal")
                .trim()
                .parse()
                .expect("a number");
            let stats = sum(&logs.iter().map(PgLog::stats).collect::<Vec<_>>());
            let secs = took.as_secs_f64();
            let per = |total: u64| total / stats.batches.max(1);
            println!(
                "{replicas:8} {:7} {batch:5} | {:9.0} {:9.0} | {:7} {:8} {:11} {:9} | {:8.2} {:9.1} {:13.1} | {:17.0}",
                replicas * THREADS,
                appended as f64 / secs,
                stats.batches as f64 / secs,
                per(stats.wait_total_us),
                stats.mean_hold_us(),
                per(stats.commit_total_us),
                stats.hold_max_us,
                stats.round_trips as f64 / stats.batches.max(1) as f64,
                stats.bytes_sent as f64 / stats.batches.max(1) as f64 / 1024.0,
                wal / stats.batches.max(1) as f64 / 1024.0,
                1e6 / stats.mean_hold_us().max(1) as f64,
            );
            assert_eq!(logs[0].verify().expect("verify").size, appended);
        }
    }
}
