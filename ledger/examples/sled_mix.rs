//! What sled 0.34 does with the gateway's mix of key lifetimes, without the
//! gateway: resident memory and file size while one process writes, per
//! simulated exchange, the kinds of records the committer writes, with the
//! same key shapes, sizes, lifetimes and one flush per batch of 16.
//!
//! ```text
//! cargo run --release -p xgate-ledger --example sled_mix -- PARTS [EXCHANGES] [CACHE_BYTES]
//! ```
//!
//! PARTS picks the records, any of:
//! - `e`: log entries (a 380-byte tail entry, folded into a 16-entry bundle
//!   and deleted; kept for good);
//! - `i`: an inbox record (1,100 bytes) and its digest key, acknowledged
//!   (deleted) 2,000 exchanges later;
//! - `r`: a replay id as two keys (by id, random; by expiry), deleted after
//!   750,000 exchanges (300 s at 2,500/s), as before the in-memory set;
//! - `x`: a replay id as one expiry-ordered key, as now;
//! - `k`: one kept envelope (1,100 bytes) per five exchanges, for good.
//!
//! Prints, every 100,000 exchanges, VmRSS and sled's file size. Each part
//! alone reclaims what it deletes; mixed, the file grows by everything ever
//! written (docs/reliability.md, "Soak").

use std::time::Instant;

const BATCH: u64 = 16;
const INBOX_LAG: u64 = 2_000;
const REPLAY_WINDOW: u64 = 750_000;
const RATE: u64 = 2_500;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(parts) = args.first().cloned() else {
        eprintln!("usage: sled_mix PARTS [EXCHANGES] [CACHE_BYTES]   (PARTS: any of e i r x k)");
        std::process::exit(2);
    };
    let number = |at: usize, default: u64| {
        args.get(at).map_or(default, |n| {
            n.replace('_', "").parse().expect("a whole number")
        })
    };
    let (exchanges, cache) = (number(1, 1_000_000), number(2, 128 << 20));
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(cache)
        .mode(sled::Mode::HighThroughput)
        .flush_every_ms(None)
        .open()
        .expect("open sled");
    let has = |c: char| parts.contains(c);
    let started = Instant::now();
    let mut n = 0;
    while n < exchanges {
        let mut batch = sled::Batch::default();
        for i in n..n + BATCH {
            if has('e') {
                entries(&mut batch, i);
            }
            if has('i') {
                inbox(&mut batch, i);
            }
            if has('r') {
                replay_two_keys(&mut batch, i);
            }
            if has('x') {
                replay_one_key(&mut batch, i);
            }
            if has('k') && i % 5 == 0 {
                batch.insert(key(b"Ge", &i.to_be_bytes()), vec![b'k'; 1_100]);
            }
        }
        db.apply_batch(batch).expect("apply");
        db.flush().expect("flush");
        n += BATCH;
        if n % 100_000 == 0 {
            println!(
                "{n:>9} exchanges  {:>5} MiB resident  {:>6} MiB on disk  {:>4.0} s",
                rss_kib() / 1024,
                db.size_on_disk().expect("size") >> 20,
                started.elapsed().as_secs_f64()
            );
        }
    }
}

fn entries(batch: &mut sled::Batch, i: u64) {
    batch.insert(key(b"Le", &i.to_be_bytes()), vec![b'e'; 380]);
    if i % 16 == 15 {
        batch.insert(key(b"LE", &(i / 16).to_be_bytes()), vec![b'b'; 380 * 16]);
        for j in i - 15..=i {
            batch.remove(key(b"Le", &j.to_be_bytes()));
        }
    }
    batch.insert(b"Lz".to_vec(), (i + 1).to_be_bytes().to_vec());
}

fn inbox(batch: &mut sled::Batch, i: u64) {
    batch.insert(key(b"Gitreasury\0", &i.to_be_bytes()), vec![b'j'; 1_100]);
    batch.insert(key(b"Gd", &id(i).to_be_bytes()), vec![0; 14]);
    if let Some(j) = i.checked_sub(INBOX_LAG) {
        batch.remove(key(b"Gitreasury\0", &j.to_be_bytes()));
        batch.remove(key(b"Gd", &id(j).to_be_bytes()));
    }
}

fn replay_two_keys(batch: &mut sled::Batch, i: u64) {
    let put = |batch: &mut sled::Batch, i: u64, insert: bool| {
        let until = i + REPLAY_WINDOW;
        let by_id = key(b"Grstate\0", format!("{:032x}", id(i)).as_bytes());
        let by_expiry = key(b"Gx", &[&until.to_be_bytes()[..], &by_id[2..]].concat());
        if insert {
            batch.insert(by_id, until.to_be_bytes().to_vec());
            batch.insert(by_expiry, Vec::new());
        } else {
            batch.remove(by_id);
            batch.remove(by_expiry);
        }
    };
    put(batch, i, true);
    if let Some(j) = i.checked_sub(REPLAY_WINDOW) {
        put(batch, j, false);
    }
}

fn replay_one_key(batch: &mut sled::Batch, i: u64) {
    // Expiry in seconds: ids sharing a second sort by sender and jti.
    let expiry_key = |i: u64| {
        let until = (i + REPLAY_WINDOW) / RATE;
        let id = format!("state\0{:032x}", id(i));
        key(b"Gx", &[&until.to_be_bytes()[..], id.as_bytes()].concat())
    };
    batch.insert(expiry_key(i), Vec::new());
    if let Some(j) = i.checked_sub(REPLAY_WINDOW) {
        batch.remove(expiry_key(j));
    }
}

fn key(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    [prefix, rest].concat()
}

/// A well-mixed 128-bit id for exchange `i` (a jti, a digest).
fn id(i: u64) -> u128 {
    let x = u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    x ^ (x >> 61)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
