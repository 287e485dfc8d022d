//! One inbox page (`GET /v1/inbox?after=I&limit=100`, the store half:
//! `inbox::list`) at the start, the middle and the end of a long inbox. A
//! page is read from its cursor, so its cost must not grow with how far
//! into the inbox it is.
//!
//! ```text
//! cargo bench -p xgate --bench inbox
//! XGATE_BENCH_INBOX=20000 cargo bench -p xgate --bench inbox    # a quick run
//! ```
//!
//! The log is a fresh one (in a temporary directory) holding one
//! recipient's inbox of N records (`XGATE_BENCH_INBOX`, default 100,000)
//! written by `inbox::put` as the committer writes them, 10,000 per commit,
//! each a `record.send` of about 600 bytes (the index in sled, the JWS in
//! the body files); another agency's inbox of the same size sorts before
//! it, as a busy federation's would.
//!
//! - `inbox/page_100/from=P`: `inbox::list(log, treasury, Some(P), 100)`
//!   for P = 0, N/2 and N - 200: the index page and its 100 bodies.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion};
use xgate_ledger::{DiskStore, Log, OpenOptions, WriteBatch};
use xgate_server::envelope::Envelope;
use xgate_server::inbox;
use xgate_server::kind::Kind;
use xgate_server::registry::AgencyId;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn inbox_size() -> u64 {
    std::env::var("XGATE_BENCH_INBOX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// A `record.send` from `state` to `to` logged at `index`.
fn envelope(to: &AgencyId, index: u64) -> Envelope {
    let mut digest = [0u8; 32];
    digest[..8].copy_from_slice(&index.to_be_bytes());
    digest[8] = to.as_str().len() as u8;
    Envelope {
        iss: "state".parse().expect("id"),
        aud: to.clone(),
        jti: format!("j-{index}"),
        iat: 1_700_000_000,
        exp: 1_700_000_060,
        kind: Kind::RecordSend,
        body: serde_json::Map::new(),
        compact: "x".repeat(600),
        digest,
    }
}

fn fill(log: &Log<DiskStore>, size: u64) {
    let (gsa, treasury): (AgencyId, AgencyId) =
        ("gsa".parse().expect("id"), "treasury".parse().expect("id"));
    let mut index = 0;
    while index < size {
        let mut batch = WriteBatch::new();
        for i in index..(index + 10_000).min(size) {
            for to in [&gsa, &treasury] {
                inbox::put(&envelope(to, 2 * i), 2 * i, false, &mut batch).expect("inbox record");
            }
        }
        log.commit_writes(batch).expect("commit");
        index += 10_000;
    }
}

fn main() {
    let size = inbox_size();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
    fill(&log, size);
    let treasury: AgencyId = "treasury".parse().expect("id");
    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("inbox");
    for position in [0, size / 2, size.saturating_sub(200)] {
        // Log indices are 2i: the cursor is the index of the record at
        // `position`.
        let after = 2 * position;
        group.bench_with_input(
            BenchmarkId::new("page_100", format!("from={position}")),
            &after,
            |b, &after| {
                b.iter(|| {
                    let (page, more) =
                        inbox::list(&log, &treasury, Some(after), 100).expect("list");
                    assert!(more && page.len() == 100);
                    black_box(page)
                });
            },
        );
    }
    group.finish();
    criterion.final_summary();
}
