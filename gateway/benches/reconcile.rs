//! Reconciling one location's inventory count against a large register,
//! next to the plain sled reads the same run can do in the same time.
//!
//! ```text
//! cargo bench -p xgate --bench reconcile
//! XGATE_BENCH_ASSETS=100000 cargo bench -p xgate --bench reconcile    # a quick run
//! ```
//!
//! The register is a sled store of N assets (`XGATE_BENCH_ASSETS`, default
//! 1,000,000) made the way the gateway makes it: `apply::apply` of
//! `Op::Register`, 10,000 registrations per `WriteBatch`, each batch
//! written with `Store::apply` and synced. Tags are 64-bit hashes of the
//! asset number, so the assets of one location are spread all over the key
//! space, as tags issued by many agencies over years would be. Asset `i`
//! is kept at location `site-(i mod N/10,000)` by one of the four sample
//! agencies, so every (agency, location) pair holds 10,000 assets. The
//! store is built once into `target/bench-assets/<N>` (80 s and 2 GB per
//! million assets here) and reused while its `complete` marker exists; it is
//! then reopened with the gateway's own sled page cache
//! (`OpenOptions::default().cache_bytes`, 16 MiB; `XGATE_CACHE_BYTES`
//! overrides).
//!
//! - `reconcile/report_10k/N`: `reconcile::reconcile` of one inventory
//!   report by `state` at `site-000` (10,000 assets expected there)
//!   observing 10,000 tags: 9,600 confirmed (half with their holder noted),
//!   100 noted with another person (`holder_mismatch`), 200 kept elsewhere
//!   (`unexpected`), 100 never registered (`unknown_tag`); 300 of the
//!   expected assets are not observed (`missing`). The writes go to a
//!   fresh `WriteBatch` that is dropped, so every iteration does the same
//!   work.
//! - `reconcile/get_10k/N` (the baseline): 10,000 `SledStore::get`s of the
//!   asset keys (`state::asset_key`) of 10,000 random registered assets
//!   (fixed seed), the same set every iteration, as the report's tags are.
//!
//! Before criterion runs, one reconciliation is timed alone on the freshly
//! opened store (the cold figure), and after it the full cost the
//! committer would pay is timed once: reconcile, then `Store::apply` and
//! `sync` of its batch (then undone, so the store stays as built). A
//! "Same-run summary" with the ratio follows criterion's output.
//!
//! `XGATE_BENCH_DIAG=1` also times the parts of a reconciliation one by one
//! (sled gets of the report's tags, the JSON decoding, the `open_key`
//! lookups, the location scan), counts the read syscalls per sled get, and
//! times a sketch of the location index carrying what a reconciliation
//! needs (the asset read only for tags not kept at the location).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode};
use xgate_ledger::StoreRead;
use xgate_ledger::{OpenOptions, SledStore, Store, WriteBatch};
use xgate_server::apply::Facts;
use xgate_server::apply::asset::{Op, apply};
use xgate_server::apply::state::{StateRead, Stored};
use xgate_server::assets::model::{Holder, Observed, Register, Report};
use xgate_server::assets::reconcile::{self, reconcile};
use xgate_server::assets::state::asset_key;
use xgate_server::entry::Stamp;
use xgate_server::registry::AgencyId;

// The gateway's allocator, so sled's node decoding costs here what it costs
// there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Assets per (agency, location) pair, and tags in the report.
const PER_LOCATION: u64 = 10_000;
/// Registrations per `WriteBatch` while building.
const BUILD_BATCH: u64 = 10_000;
/// The brief's target for one reconciliation.
const TARGET_S: f64 = 0.100;
/// Agencies of the dev gateway that hold assets.
const AGENCIES: [&str; 4] = ["state", "treasury", "gsa", "hhs"];
/// Bumped when the layout of the built store changes, so old ones are rebuilt.
const LAYOUT: &str = "assets-v1";

fn main() {
    let started = std::time::SystemTime::now();
    let n = assets();
    let mut c = Criterion::default().configure_from_args();
    let dir = prefilled(n);
    let store = open_retrying(&dir.join("db"), cache_bytes());
    let ids: Vec<AgencyId> = AGENCIES
        .iter()
        .map(|a| a.parse().expect("agency id"))
        .collect();
    let groups = n / PER_LOCATION;
    let body = report(groups);
    let reporter = &ids[0];
    let stamp = Stamp {
        time: 1_800_000_000,
        ..Stamp::default()
    };
    let ctx = Facts::new(reporter, reporter, "inventory-bench", "00", stamp, n);

    // Cold: the first reconciliation on the store as just opened.
    let t = Instant::now();
    let mut batch = WriteBatch::new();
    let first = reconcile(&body, &ctx, &Stored(&store), &mut batch).expect("reconcile");
    let cold = t.elapsed().as_secs_f64();
    check_report(&first);

    // What the committer would pay: reconcile, apply and sync its writes.
    let committed = commit_once(&dir, &store, &body, &ctx);

    let keys: Vec<Vec<u8>> = random_indices(n, PER_LOCATION as usize)
        .into_iter()
        .map(|i| asset_key(&tag(i)))
        .collect();

    if std::env::var_os("XGATE_BENCH_DIAG").is_some() {
        diagnose(&store, &body, &ctx, &keys);
    }

    let mut group = c.benchmark_group("reconcile");
    // Iterations take 10-300 ms: ten flat samples of a few iterations each.
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function(BenchmarkId::new("report_10k", n), |b| {
        b.iter(|| {
            let mut batch = WriteBatch::new();
            reconcile(&body, &ctx, &Stored(&store), &mut batch).expect("reconcile")
        })
    });
    group.bench_function(BenchmarkId::new("get_10k", n), |b| {
        b.iter(|| {
            let mut found = 0usize;
            for k in &keys {
                found += usize::from(store.get(k).expect("get").is_some());
            }
            assert_eq!(found, keys.len(), "every key is registered");
            found
        })
    });
    group.finish();
    c.final_summary();
    summary(started, n, cold, &committed, &first);
}

/// The register's size: `XGATE_BENCH_ASSETS`, or a million.
fn assets() -> u64 {
    let n = match std::env::var("XGATE_BENCH_ASSETS") {
        Ok(v) => v
            .replace(['_', ','], "")
            .parse()
            .expect("XGATE_BENCH_ASSETS is a number of assets"),
        Err(_) => 1_000_000,
    };
    assert!(
        n >= 2 * PER_LOCATION && n % PER_LOCATION == 0,
        "XGATE_BENCH_ASSETS must be a multiple of {PER_LOCATION}, at least {}",
        2 * PER_LOCATION
    );
    n
}

/// The gateway's sled page cache, or `XGATE_CACHE_BYTES`.
fn cache_bytes() -> u64 {
    match std::env::var("XGATE_CACHE_BYTES") {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .expect("XGATE_CACHE_BYTES is a number of bytes"),
        Err(_) => OpenOptions::default().cache_bytes,
    }
}

/// Asset `i`'s tag: a hash of `i`, so tags sort in no relation to where
/// the assets are kept.
fn tag(i: u64) -> String {
    format!("AS-{:016x}", splitmix64(i))
}

/// The agency and location of asset `i`, with `groups` locations.
fn place(i: u64, groups: u64) -> (usize, String) {
    let g = i % groups;
    ((g % AGENCIES.len() as u64) as usize, format!("site-{g:03}"))
}

/// The person who holds asset `i`.
fn person(i: u64) -> String {
    format!("emp-{:05}", i % 20_011)
}

/// `target/bench-assets/<n>`, built unless its marker says it is complete.
fn prefilled(n: u64) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("bench-assets").join(n.to_string());
    let marker = dir.join("complete");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == LAYOUT) {
        return dir;
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("remove an incomplete register");
    }
    std::fs::create_dir_all(&dir).expect("create the register directory");
    build(&dir, n);
    std::fs::write(&marker, LAYOUT).expect("write the marker");
    dir
}

/// Registers `n` assets through `apply`, in batches of [`BUILD_BATCH`].
fn build(dir: &Path, n: u64) {
    eprintln!("registering {n} assets into {} ...", dir.display());
    // A large cache while building only; the benchmark reopens with the
    // gateway's.
    let store = SledStore::open(&dir.join("db"), 1 << 30).expect("open the register");
    let ids: Vec<AgencyId> = AGENCIES
        .iter()
        .map(|a| a.parse().expect("agency id"))
        .collect();
    let groups = n / PER_LOCATION;
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let mut batch = WriteBatch::new();
        for i in i..(i + BUILD_BATCH).min(n) {
            let (a, location) = place(i, groups);
            let op = Op::Register(Register {
                tag: tag(i),
                serial: format!("SN-{i:010}"),
                category: ["laptop", "phone", "radio", "vehicle"][(i % 4) as usize].into(),
                description: format!("Standard issue equipment, lot {}", i / 1_000),
                holder: Holder {
                    agency: ids[a].clone(),
                    person: person(i),
                },
                location,
            });
            let (jti, envelope) = (format!("reg-{i}"), format!("{:064x}", i));
            let stamp = Stamp {
                time: 1_700_000_000 + (i / 1_000) as i64,
                ..Stamp::default()
            };
            let ctx = Facts::new(&ids[a], &ids[a], &jti, &envelope, stamp, i);
            apply(&op, &ctx, &Stored(&store), &mut batch).expect("register");
        }
        store.apply(batch).expect("apply batch");
        store.sync().expect("sync");
        i = (i + BUILD_BATCH).min(n);
        if i % 100_000 == 0 || i == n {
            eprintln!(
                "  {i} assets, {:.0} registrations/s",
                i as f64 / t.elapsed().as_secs_f64()
            );
        }
    }
    drop(store);
}

/// The inventory report of `site-000` by `state` (module docs).
fn report(groups: u64) -> Report {
    let expected = |k: u64| k * groups; // the k-th asset kept at site-000
    let mut observed = Vec::with_capacity(PER_LOCATION as usize);
    for k in 0..9_600 {
        let i = expected(k);
        observed.push(Observed {
            tag: tag(i),
            person: (k % 2 == 0).then(|| person(i)),
        });
    }
    for k in 9_600..9_700 {
        observed.push(Observed {
            tag: tag(expected(k)),
            person: Some("emp-somebody-else".into()),
        });
    }
    // k = 9,700..10,000 are missing. Kept elsewhere: at site-001
    // (treasury's) and, if there is one, site-004 (state's own).
    for k in 0..200 {
        let other = if k % 2 == 0 || groups <= 4 { 1 } else { 4 };
        observed.push(Observed {
            tag: tag(k * groups + other),
            person: None,
        });
    }
    for k in 0..100 {
        observed.push(Observed {
            tag: format!("NEVER-REGISTERED-{k:04}"),
            person: None,
        });
    }
    // Scanners report in the order they walk the floor, not in tag order.
    let mut order: Vec<(u64, Observed)> = observed
        .into_iter()
        .enumerate()
        .map(|(j, o)| (splitmix64(j as u64 ^ 0x5eed), o))
        .collect();
    order.sort_by_key(|(h, _)| *h);
    Report {
        location: "site-000".into(),
        reported_by: "emp-counter".into(),
        observed: order.into_iter().map(|(_, o)| o).collect(),
    }
}

/// The reconciliation finds exactly what the report was built to contain.
fn check_report(r: &reconcile::Report) {
    assert_eq!(r.observed, PER_LOCATION as usize);
    assert_eq!(
        (
            r.counts.missing,
            r.counts.unexpected,
            r.counts.holder_mismatch,
            r.counts.unknown_tag
        ),
        (300, 200, 100, 100),
        "the report's discrepancies"
    );
}

/// What one committed reconciliation costs.
struct Committed {
    /// Earlier commit-and-undo cycles on this store.
    undone: u64,
    reconcile_s: f64,
    apply_s: f64,
    sync_s: f64,
    ops: usize,
    bytes: usize,
}

/// Reconciles, applies and syncs the writes once, then deletes them again
/// (every key the batch writes is new: the built store has no reports,
/// notices or open discrepancies). The marker is removed meanwhile, so an
/// interrupted run rebuilds rather than reuse a changed store.
///
/// The apply is timed on a store that earlier runs may already have put
/// these keys into and deleted them from; sled then completes merges of
/// the emptied leaves on the next inserts, which is slower than the first
/// time. `undone` counts those earlier cycles, and the summary shows it.
fn commit_once(dir: &Path, store: &SledStore, body: &Report, ctx: &Facts<'_>) -> Committed {
    let marker = dir.join("complete");
    let cycles = dir.join("undone");
    let undone = std::fs::read_to_string(&cycles)
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(0u64);
    std::fs::remove_file(&marker).expect("lift the marker");
    let t = Instant::now();
    let mut batch = WriteBatch::new();
    reconcile(body, ctx, &Stored(store), &mut batch).expect("reconcile");
    let reconcile_s = t.elapsed().as_secs_f64();
    let ops: Vec<(Vec<u8>, Option<Vec<u8>>)> = batch.clone().into_ops().collect();
    let bytes = ops
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    let t = Instant::now();
    store.apply(batch).expect("apply");
    let apply_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    store.sync().expect("sync");
    let sync_s = t.elapsed().as_secs_f64();
    let mut undo = WriteBatch::new();
    for (k, v) in &ops {
        assert!(
            v.is_some(),
            "a reconciliation of a clean register only adds"
        );
        undo.delete(k.clone());
    }
    store.apply(undo).expect("undo");
    store.sync().expect("sync");
    std::fs::write(&cycles, (undone + 1).to_string()).expect("count the cycle");
    std::fs::write(&marker, LAYOUT).expect("restore the marker");
    Committed {
        undone,
        reconcile_s,
        apply_s,
        sync_s,
        ops: ops.len(),
        bytes,
    }
}

/// `count` distinct random asset numbers below `n` (fixed seed).
fn random_indices(n: u64, count: usize) -> Vec<u64> {
    let mut seen = std::collections::BTreeSet::new();
    let mut x = 42u64;
    while seen.len() < count {
        x = splitmix64(x);
        seen.insert(x % n);
    }
    let mut v: Vec<u64> = seen.into_iter().collect();
    v.sort_by_key(|&i| splitmix64(i ^ 7));
    v
}

/// sled lets go of a dropped database's lock a moment after `drop`.
fn open_retrying(path: &Path, cache: u64) -> SledStore {
    let mut last = None;
    for _ in 0..500 {
        match SledStore::open(path, cache) {
            Ok(s) => return s,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("cannot open {}: {last:?}", path.display());
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Criterion's median time per iteration for `id`, if measured in this run.
fn median_s(started: std::time::SystemTime, id: &str) -> Option<f64> {
    let root = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR").map(|t| PathBuf::from(t).join("criterion"))
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"));
    let path = root.join(id).join("new").join("estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < started {
        return None;
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64().map(|ns| ns / 1e9)
}

fn summary(
    started: std::time::SystemTime,
    n: u64,
    cold: f64,
    committed: &Committed,
    first: &reconcile::Report,
) {
    let ms = |s: f64| format!("{:.1} ms", s * 1e3);
    println!(
        "\n## Same-run summary ({n} assets, sled cache {} bytes)",
        cache_bytes()
    );
    println!(
        "\nreport: {} observed; missing {}, unexpected {}, holder_mismatch {}, unknown_tag {}",
        first.observed,
        first.counts.missing,
        first.counts.unexpected,
        first.counts.holder_mismatch,
        first.counts.unknown_tag
    );
    println!(
        "cold first reconciliation: {}; committed once (after {} earlier commit-and-undo cycles): reconcile {} + apply {} + sync {} ({} writes, {} bytes)",
        ms(cold),
        committed.undone,
        ms(committed.reconcile_s),
        ms(committed.apply_s),
        ms(committed.sync_s),
        committed.ops,
        committed.bytes
    );
    let ours = median_s(started, &format!("reconcile/report_10k/{n}"));
    let base = median_s(started, &format!("reconcile/get_10k/{n}"));
    println!(
        "\n| assets | reconcile 10k (criterion median) | 10,000 random gets | reconcile / gets | target < 100 ms |"
    );
    println!("|---:|---:|---:|---:|:---|");
    let ratio = match (ours, base) {
        (Some(o), Some(b)) => format!("{:.2}x", o / b),
        _ => "-".into(),
    };
    println!(
        "| {n} | {} | {} | {ratio} | {} |",
        ours.map_or("-".into(), ms),
        base.map_or("-".into(), ms),
        ours.map_or("-", |o| if o < TARGET_S { "pass" } else { "FAIL" })
    );
}

/// Times the parts of a reconciliation one by one (median of 5).
fn diagnose(store: &SledStore, body: &Report, ctx: &Facts<'_>, random: &[Vec<u8>]) {
    use xgate_server::assets::state;
    let time = |name: &str, f: &mut dyn FnMut() -> usize| {
        let mut t: Vec<f64> = (0..5)
            .map(|_| {
                let s = Instant::now();
                std::hint::black_box(f());
                s.elapsed().as_secs_f64()
            })
            .collect();
        t.sort_by(f64::total_cmp);
        eprintln!("diag {name}: {:.1} ms", t[2] * 1e3);
    };
    let mut sorted: Vec<String> = body.observed.iter().map(|o| o.tag.clone()).collect();
    sorted.sort();
    let walk: Vec<String> = body.observed.iter().map(|o| o.tag.clone()).collect();
    time("gets, report tags, sorted", &mut || {
        sorted
            .iter()
            .filter(|t| store.get(&asset_key(t)).expect("get").is_some())
            .count()
    });
    time("gets, report tags, report order", &mut || {
        walk.iter()
            .filter(|t| store.get(&asset_key(t)).expect("get").is_some())
            .count()
    });
    time("gets, random registered", &mut || {
        random
            .iter()
            .filter(|k| store.get(k).expect("get").is_some())
            .count()
    });
    time("state::asset (get+parse), sorted", &mut || {
        sorted
            .iter()
            .filter(|t| state::asset(&Stored(store), t).expect("get").is_some())
            .count()
    });
    time("open_key gets, sorted", &mut || {
        sorted
            .iter()
            .filter(|t| store.get(&state::open_key(t)).expect("get").is_some())
            .count()
    });
    time("location scan", &mut || {
        Stored(store)
            .keys(&state::located_prefix(ctx.sender, &body.location))
            .expect("scan")
            .len()
    });
    let syscr = || {
        std::fs::read_to_string("/proc/self/io")
            .ok()
            .and_then(|io| {
                io.lines().find_map(|l| {
                    l.strip_prefix("syscr: ")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
            })
            .unwrap_or(0)
    };
    let before = syscr();
    let found = random
        .iter()
        .filter(|k| store.get(k).expect("get").is_some())
        .count();
    eprintln!(
        "diag read syscalls per random get: {:.2}",
        (syscr() - before) as f64 / found as f64
    );
    time(
        "sketch: location scan, then asset gets only for tags not found there",
        &mut || {
            let here: std::collections::HashSet<String> = Stored(store)
                .keys(&state::located_prefix(ctx.sender, &body.location))
                .expect("scan")
                .iter()
                .filter_map(|k| xgate_server::store_keys::last_part(k))
                .collect();
            let mut n = 0;
            for t in &sorted {
                if !here.contains(t.as_str()) {
                    n += usize::from(state::asset(&Stored(store), t).expect("get").is_some());
                }
                n += usize::from(store.get(&state::open_key(t)).expect("get").is_some());
            }
            n
        },
    );
    time("reconcile", &mut || {
        let mut batch = WriteBatch::new();
        reconcile(body, ctx, &Stored(store), &mut batch)
            .expect("reconcile")
            .observed
    });
}
