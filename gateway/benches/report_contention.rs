//! How long a large inventory report holds up other agencies' commits: the
//! latency of small exchanges between two agencies while a third submits
//! 10,000-tag inventory reports back to back, against the same stream with
//! no reports, alternating in the same run; and while a fourth submits
//! 10,000-tag reports that change nothing, which tells the cost of reading
//! the tags' state from the cost of writing what a report finds.
//!
//! ```text
//! cargo bench -p xgate --bench report_contention
//! XGATE_CONTENTION_DIR=/dev/shm cargo bench -p xgate --bench report_contention
//! XGATE_CONTENTION_ROUNDS=5 XGATE_CONTENTION_SECS=20 XGATE_CONTENTION_RATE=100 cargo bench -p xgate --bench report_contention
//! ```
//!
//! The gateway runs in this process (`pipeline::Gateway` over a fresh data
//! directory in a tempdir, the gateway's default 128 MiB sled cache, the
//! default policy, real signatures, the real committer), without TLS or
//! HTTP: what is measured is `Gateway::submit`, from the call to the
//! durable receipt, so the figures are the commit path's alone (the
//! envelope check, the committer's queue and batch, the sync) and not the
//! network's.
//!
//! - Set-up, not timed: `treasury` (A) registers 10,000 assets at `HQ`,
//!   `state` (D) 10,000 at `Vault`; `gsa` (B) and `hhs` (C) register 200
//!   each at `Depot`.
//! - The others' stream, open loop: `XGATE_CONTENTION_RATE` slots a second
//!   (default 100), alternately a `record.send` (B to C or C to B) and a
//!   custody transfer (an `asset.transfer.offer` of one of B's or C's
//!   assets, then the `asset.transfer.accept` that answers it once the
//!   offer is acknowledged); 150 envelopes a second by default. Each slot
//!   starts on time whether or not earlier ones have finished, so time
//!   spent queued behind a report counts. A record's or an offer's latency
//!   runs from its slot, an accept's from its offer's acknowledgement.
//!   Every one of these envelopes is signed before the first phase.
//! - The reports, one in flight at a time, each signed just before it is
//!   submitted (the load generator's only work during a phase; its time is
//!   printed):
//!   - "changing": A's reports of `HQ`, alternately observing 9,000 of its
//!     10,000 assets (the 1,000 others open `missing`) and all 10,000
//!     (which resolves them), each with 100 unregistered tags: 10,100 tags
//!     read, some 2,000 state writes (the report, the discrepancies and
//!     their notices), per report;
//!   - "steady": D's reports of `Vault`, observing all its 10,000 assets
//!     and 100 unregistered tags every time: as many reads, and after the
//!     first (which opens the 100 `unknown_tag`) only the report itself
//!     to write.
//! - The data directory is a tempdir under `XGATE_CONTENTION_DIR` (default:
//!   the system's temporary directory). On a machine whose disk other work
//!   is using, syncs stall for hundreds of milliseconds at random, in every
//!   phase alike; a tmpfs (`/dev/shm`) leaves what the gateway itself does.
//! - `XGATE_CONTENTION_ROUNDS` rounds (default 3) of three phases of
//!   `XGATE_CONTENTION_SECS` seconds each (default 10): no reports,
//!   changing reports, steady reports, the order rotated every round, so
//!   that the machine's drift falls on all alike.
//!
//! Printed: per phase kind, the others' latency (count, p50, p90, p99,
//! max) and its ratios to the phases without reports, the reports' own
//! latency, the process's CPU and the commit thread's (from `/proc`), and
//! errors; how the reports surveyed off the commit thread fared
//! (`Gateway::ahead_counts`); and what the commit thread spent on each batch, from its
//! `batch committed` debug events (`prepare_us`: the jobs' steps, where a
//! report was reconciled before it was surveyed off the thread;
//! `append_us`: the log's append, the store's apply and sync): p50, p99
//! and max of each, and of their sum. Older builds emit no such event;
//! their batch columns stay empty. Then, with the gateway stopped, the
//! parts of each kind of report's cost on the same store, and of a count
//! that finds none of D's 10,000 assets (10,000 `missing`): its survey
//! (reading 10,100 tags' state and deciding: off the commit thread),
//! settling the survey (building its writes: on it), and `Store::apply`
//! plus `sync` of its writes (then undone), which is what writing its
//! batch costs the store.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt as _;
use xgate::client::{EnvelopeSigner, random_jti};
use xgate_ledger::StoreRead;
use xgate_ledger::{DiskStore, Log, OpenOptions, Store, WriteBatch};
use xgate_server::apply::asset::Op as AssetOp;
use xgate_server::apply::state::Stored;
use xgate_server::apply::{Facts, Op};
use xgate_server::assets::reconcile;
use xgate_server::entry::Stamp;
use xgate_server::envelope::Limits;
use xgate_server::kind::Kind;
use xgate_server::pipeline::Gateway;
use xgate_server::policy::{DEFAULT_POLICY, Policy};
use xgate_server::registry::AgencyId;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The reporter whose reports change the state (A), the two agencies
/// exchanging (B, C), and the reporter whose reports change nothing (D).
const AGENCIES: [&str; 4] = ["treasury", "gsa", "hhs", "state"];
/// A.
const CHANGING: usize = 0;
/// D.
const STEADY: usize = 3;
/// Assets A keeps at `HQ`, and D at `Vault`.
const REPORTED: usize = 10_000;
/// Unregistered tags in every report.
const UNKNOWN: usize = 100;
/// Assets B and C each hold at first, passed back and forth.
const POOL: usize = 200;
/// The gateway's default sled cache (`cache_bytes`).
const CACHE_BYTES: u64 = 128 << 20;
/// Envelope lifetime: the gateway accepts at most 300 s.
const LIFETIME: i64 = 290;

fn main() {
    let rounds = setting("XGATE_CONTENTION_ROUNDS", 3);
    let secs = setting("XGATE_CONTENTION_SECS", 10);
    let rate = setting("XGATE_CONTENTION_RATE", 100);
    assert!(
        rounds * 3 * secs < 240,
        "the others' envelopes are signed in advance and live {LIFETIME} s: \
         XGATE_CONTENTION_ROUNDS * 3 * XGATE_CONTENTION_SECS must stay under 240"
    );
    let batches = Batches::install();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fed = Federation::new();
    let gateway = fed.gateway();
    let t = Instant::now();
    runtime.block_on(fed.register(&gateway));
    eprintln!(
        "registered {} assets in {:.1} s",
        2 * REPORTED + 2 * POOL,
        t.elapsed().as_secs_f64()
    );

    let slots = (rounds * 3 * secs * rate) as usize;
    let mut others = fed.presign_others(slots);
    let mut phases: [Phase; 3] = Default::default();
    let mut changing = Reports::new(CHANGING);
    let mut steady = Reports::new(STEADY);
    for round in 0..rounds {
        for k in 0..3 {
            let kind = (k + round as usize) % 3;
            let n = (secs * rate) as usize;
            let items: Vec<Slot> = others.drain(..n.min(others.len())).collect();
            let reports = match kind {
                1 => Some(&mut changing),
                2 => Some(&mut steady),
                _ => None,
            };
            let phase = &mut phases[kind];
            let cpu = Cpu::now();
            let started = Instant::now();
            batches.take();
            runtime.block_on(run_phase(&fed, &gateway, items, rate, reports, phase));
            phase.add_cpu(&cpu, started.elapsed());
            phase.batches.extend(batches.take());
            eprintln!(
                "round {round}: {} phase done in {:.1} s",
                PHASES[kind],
                started.elapsed().as_secs_f64()
            );
        }
    }
    let counts = gateway.ahead_counts();
    drop(gateway);
    summary(rounds, secs, rate, &phases, [&changing, &steady]);
    println!(
        "reports surveyed off the commit thread: {} current at their turn, {} stale (surveyed again), {} applied whole on it",
        counts.current, counts.stale, counts.fallbacks
    );
    println!();
    breakdown(&fed, &changing);
    breakdown(&fed, &steady);
    breakdown_empty(&fed);
}

/// The kinds of phase, in the order of `phases`.
const PHASES: [&str; 3] = ["no reports", "changing reports", "steady reports"];

/// An integer setting from the environment, or `default`.
fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} is a whole number"))
        })
        .unwrap_or(default)
}

/// The agencies, their keys, and the data directory.
struct Federation {
    _dir: tempfile::TempDir,
    log: Arc<Log<DiskStore>>,
    registry: Arc<xgate_server::registry::Registry>,
    ids: Vec<AgencyId>,
    signers: Vec<EnvelopeSigner>,
}

impl Federation {
    fn new() -> Federation {
        let dir = match std::env::var_os("XGATE_CONTENTION_DIR") {
            Some(parent) => tempfile::tempdir_in(parent),
            None => tempfile::tempdir(),
        }
        .expect("tempdir");
        let pki = dir.path().join("pki");
        let ids: Vec<AgencyId> = AGENCIES.iter().map(|a| a.parse().expect("id")).collect();
        let registry = xgate_server::pki::init(&pki, &ids, &[], false).expect("pki");
        let signers = ids
            .iter()
            .map(|id| EnvelopeSigner::for_agency(&pki, id).expect("signer"))
            .collect();
        let options = OpenOptions {
            cache_bytes: CACHE_BYTES,
            ..OpenOptions::default()
        };
        let log = Arc::new(
            Log::create_or_open(&dir.path().join("data"), &options).expect("open the log"),
        );
        Federation {
            _dir: dir,
            log,
            registry: Arc::new(registry),
            ids,
            signers,
        }
    }

    fn gateway(&self) -> Arc<Gateway> {
        let policy = Policy::parse(DEFAULT_POLICY, "default", &self.registry).expect("policy");
        Arc::new(
            Gateway::new(
                Arc::clone(&self.log) as Arc<dyn xgate_ledger::Ledger>,
                Arc::clone(&self.registry),
                policy,
                Limits::default(),
            )
            .expect("gateway"),
        )
    }

    /// A signed envelope of `kind` from agency `by` to agency `to`.
    fn sign(&self, by: usize, to: usize, kind: &str, body: Value, jti: Option<String>) -> Signed {
        let Value::Object(body) = body else {
            unreachable!("bodies are objects")
        };
        let jws = self.signers[by]
            .sign(&self.ids[to], kind, body, LIFETIME, jti)
            .expect("sign");
        Signed { by, jws }
    }

    /// Registers A's assets at `HQ` and B's and C's at `Depot`, 64 at a time.
    async fn register(&self, gateway: &Arc<Gateway>) {
        let mut all = Vec::new();
        for by in [CHANGING, STEADY] {
            for i in 0..REPORTED {
                let (tag, location) = (reported(by, i), Reports::location(by));
                let body = register_body(&tag, AGENCIES[by], location);
                all.push(self.sign(by, by, "asset.register", body, None));
            }
        }
        for side in [1, 2] {
            for i in 0..POOL {
                let tag = pooled(side, i);
                all.push(self.sign(
                    side,
                    side,
                    "asset.register",
                    register_body(&tag, AGENCIES[side], "Depot"),
                    None,
                ));
            }
        }
        for chunk in all.chunks(64) {
            let tasks: Vec<_> = chunk
                .iter()
                .map(|s| submit(gateway, &self.ids[s.by], s.jws.clone()))
                .collect();
            for t in tasks {
                t.await.expect("task").expect("registration accepted");
            }
        }
    }

    /// The others' stream: `n` slots, alternately a record and a transfer.
    fn presign_others(&self, n: usize) -> Vec<Slot> {
        let mut uses = vec![0usize; 2 * POOL];
        (0..n)
            .map(|k| {
                let (b, c) = if k % 4 < 2 { (1, 2) } else { (2, 1) };
                if k % 2 == 0 {
                    let body = json!({"record": format!("note-{k}"), "pages": 1});
                    return Slot::Record(self.sign(b, c, "record.send", body, None));
                }
                // Transfer number j moves pooled asset j mod 400, away from
                // whoever holds it after its earlier moves.
                let j = k / 2;
                let asset = j % (2 * POOL);
                let first = 1 + asset / POOL;
                let tag = pooled(first, asset % POOL);
                let holder = if uses[asset].is_multiple_of(2) { first } else { 3 - first };
                let other = 3 - holder;
                uses[asset] += 1;
                let jti = random_jti().expect("jti");
                let offer = self.sign(
                    holder,
                    other,
                    "asset.transfer.offer",
                    json!({"tag": tag, "to": {"agency": AGENCIES[other], "person": "courier"}, "reason": "rotation"}),
                    Some(jti.clone()),
                );
                let accept = self.sign(
                    other,
                    holder,
                    "asset.transfer.accept",
                    json!({"tag": tag, "offer": jti}),
                    None,
                );
                Slot::Transfer(offer, accept)
            })
            .collect()
    }
}

fn register_body(tag: &str, agency: &str, location: &str) -> Value {
    let i: usize = tag
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    json!({"tag": tag, "serial": format!("SN-{tag}"), "category": "laptop",
        "description": "standard issue", "location": location,
        "holder": {"agency": agency, "person": person(i)}})
}

/// Reporter `by`'s `i`th asset.
fn reported(by: usize, i: usize) -> String {
    format!("R{by}-{i:05}")
}

/// The `i`th asset first held by B (`side` 1) or C (2).
fn pooled(side: usize, i: usize) -> String {
    format!("P{side}-{i:03}")
}

fn person(i: usize) -> String {
    format!("emp-{:04}", i % 997)
}

/// A signed envelope and its sender.
#[derive(Clone)]
struct Signed {
    by: usize,
    jws: String,
}

/// One slot of the others' stream.
enum Slot {
    Record(Signed),
    Transfer(Signed, Signed),
}

fn submit(
    gateway: &Arc<Gateway>,
    sender: &AgencyId,
    jws: String,
) -> tokio::task::JoinHandle<Result<(), String>> {
    let (gateway, sender) = (Arc::clone(gateway), sender.clone());
    tokio::spawn(async move {
        gateway
            .submit(&sender, jws.as_bytes())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

/// What one kind of phase measured, over every round.
#[derive(Default)]
struct Phase {
    /// The others' latencies, seconds.
    latencies: Vec<f64>,
    /// The commit thread's batches.
    batches: Vec<Batch>,
    errors: Vec<String>,
    seconds: f64,
    /// Process CPU seconds, and the commit thread's.
    cpu: f64,
    commit_cpu: f64,
}

impl Phase {
    fn add_cpu(&mut self, before: &Cpu, wall: Duration) {
        let after = Cpu::now();
        self.seconds += wall.as_secs_f64();
        self.cpu += after.process - before.process;
        self.commit_cpu += after.commit - before.commit;
    }
}

/// One reporter's reports, and their own figures.
struct Reports {
    /// The reporter: [`CHANGING`] or [`STEADY`].
    by: usize,
    latencies: Vec<f64>,
    /// Time spent signing them (the load generator's work during a phase).
    signing: f64,
    errors: Vec<String>,
    /// How many were made.
    made: usize,
}

impl Reports {
    fn new(by: usize) -> Reports {
        Reports {
            by,
            latencies: Vec::new(),
            signing: 0.0,
            errors: Vec::new(),
            made: 0,
        }
    }

    fn location(by: usize) -> &'static str {
        if by == CHANGING { "HQ" } else { "Vault" }
    }

    fn name(&self) -> &'static str {
        if self.by == CHANGING {
            "changing"
        } else {
            "steady"
        }
    }

    /// The next report's body: D's observe all its assets; A's every other
    /// one leaves out every tenth asset, starting with the first.
    fn next_body(&self) -> Value {
        let partial = self.by == CHANGING && self.made.is_multiple_of(2);
        let mut observed: Vec<Value> = (0..REPORTED)
            .filter(|i| !partial || i % 10 != 0)
            .map(|i| {
                let tag = reported(self.by, i);
                if i % 2 == 0 {
                    json!({"tag": tag, "person": person(i)})
                } else {
                    json!({"tag": tag})
                }
            })
            .collect();
        observed.extend((0..UNKNOWN).map(|i| json!({"tag": format!("UNKNOWN-{i:03}")})));
        json!({"location": Reports::location(self.by), "reported_by": "counter", "observed": observed})
    }
}

/// Runs the others' `items` at `rate` slots a second and, if `reports` is
/// given, A's reports back to back until the slots are all started.
async fn run_phase(
    fed: &Federation,
    gateway: &Arc<Gateway>,
    items: Vec<Slot>,
    rate: u64,
    reports: Option<&mut Reports>,
    phase: &mut Phase,
) {
    let done = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reporting = async {
        let Some(reports) = reports else { return };
        while !finished.load(std::sync::atomic::Ordering::Acquire) {
            let t = Instant::now();
            let by = reports.by;
            let signed = fed.sign(by, by, "inventory.report", reports.next_body(), None);
            reports.signing += t.elapsed().as_secs_f64();
            reports.made += 1;
            let t = Instant::now();
            match submit(gateway, &fed.ids[by], signed.jws)
                .await
                .expect("task")
            {
                Ok(()) => reports.latencies.push(t.elapsed().as_secs_f64()),
                Err(e) => reports.errors.push(e),
            }
        }
    };
    let stream = async {
        let start = tokio::time::Instant::now();
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let mut tasks = Vec::with_capacity(items.len());
        for (k, slot) in items.into_iter().enumerate() {
            let due = start + interval * k as u32;
            tokio::time::sleep_until(due).await;
            let due = due.into_std();
            let (gateway, done) = (Arc::clone(gateway), Arc::clone(&done));
            let ids = fed.ids.clone();
            tasks.push(tokio::spawn(async move {
                let record = |r: Result<(), String>, since: Instant| {
                    let mut d = done.lock().expect("lock");
                    match r {
                        Ok(()) => d.0.push(since.elapsed().as_secs_f64()),
                        Err(e) => d.1.push(e),
                    }
                };
                match slot {
                    Slot::Record(s) => {
                        let r = submit(&gateway, &ids[s.by], s.jws).await.expect("task");
                        record(r, due);
                    }
                    Slot::Transfer(offer, accept) => {
                        let r = submit(&gateway, &ids[offer.by], offer.jws)
                            .await
                            .expect("task");
                        let ok = r.is_ok();
                        record(r, due);
                        if ok {
                            let since = Instant::now();
                            let r = submit(&gateway, &ids[accept.by], accept.jws)
                                .await
                                .expect("task");
                            record(r, since);
                        }
                    }
                }
            }));
        }
        finished.store(true, std::sync::atomic::Ordering::Release);
        for t in tasks {
            t.await.expect("task");
        }
    };
    tokio::join!(reporting, stream);
    let (latencies, errors) = std::mem::take(&mut *done.lock().expect("lock"));
    phase.latencies.extend(latencies);
    phase.errors.extend(errors);
}

/// What the commit thread spent on one batch, seconds.
#[derive(Clone, Copy, Debug, Default)]
struct Batch {
    prepare: f64,
    append: f64,
}

/// The commit thread's `batch committed` events, as they come.
#[derive(Clone, Default)]
struct Batches(Arc<Mutex<Vec<Batch>>>);

impl Batches {
    /// Collects the committer's debug events from now on (nothing else is
    /// logged).
    fn install() -> Batches {
        let batches = Batches::default();
        let only = tracing_subscriber::filter::Targets::new()
            .with_target("xgate_server::committer", tracing::Level::DEBUG);
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::Layer::with_filter(batches.clone(), only),
        );
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        batches
    }

    /// The batches since the last call.
    fn take(&self) -> Vec<Batch> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Batches {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Fields(Option<u64>, Option<u64>);
        impl tracing::field::Visit for Fields {
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                match field.name() {
                    "prepare_us" => self.0 = Some(value),
                    "append_us" => self.1 = Some(value),
                    _ => {}
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        let mut fields = Fields(None, None);
        event.record(&mut fields);
        if let Fields(Some(prepare), Some(append)) = fields {
            self.0.lock().expect("lock").push(Batch {
                prepare: prepare as f64 / 1e6,
                append: append as f64 / 1e6,
            });
        }
    }
}

/// CPU seconds used so far: by the process, and by its commit thread.
struct Cpu {
    process: f64,
    commit: f64,
}

impl Cpu {
    fn now() -> Cpu {
        // utime and stime, fields 14 and 15, in clock ticks (100 a second
        // on Linux).
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let after_comm = stat.rsplit(')').next().unwrap_or_default();
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // Fields 14 and 15 are the 12th and 13th after the command name.
        let process = (ticks(11) + ticks(12)) / 100.0;
        Cpu {
            process,
            commit: commit_thread_cpu(),
        }
    }
}

/// The CPU time of the thread named `xgate-commit`, from its schedstat
/// (nanoseconds on the CPU).
fn commit_thread_cpu() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() == "xgate-commit" {
            let stat = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
            return stat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<f64>().ok())
                .map_or(0.0, |ns| ns / 1e9);
        }
    }
    0.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(rounds: u64, secs: u64, rate: u64, phases: &[Phase; 3], reports: [&Reports; 2]) {
    let ms = |s: f64| format!("{:.1}", s * 1e3);
    let sorted = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    println!(
        "\n## Others' commit latency while reports are made ({rounds} rounds of {secs} s per phase kind, {rate} slots/s: {} envelopes/s)\n",
        rate * 3 / 2
    );
    println!(
        "| phase | exchanges | p50 ms | p90 ms | p99 ms | max ms | process CPU | commit thread CPU | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let all: Vec<Vec<f64>> = phases.iter().map(|p| sorted(&p.latencies)).collect();
    for ((name, p), s) in PHASES.iter().zip(phases).zip(&all) {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {:.2} cores | {:.2} cores | {} |",
            s.len(),
            ms(percentile(s, 50.0)),
            ms(percentile(s, 90.0)),
            ms(percentile(s, 99.0)),
            ms(percentile(s, 100.0)),
            p.cpu / p.seconds,
            p.commit_cpu / p.seconds,
            p.errors.len()
        );
    }
    for (name, s) in PHASES.iter().zip(&all).skip(1) {
        let ratio = |pc: f64| percentile(s, pc) / percentile(&all[0], pc);
        println!(
            "| {name} / no reports | | {:.2}x | {:.2}x | {:.2}x | {:.2}x | | | |",
            ratio(50.0),
            ratio(90.0),
            ratio(99.0),
            ratio(100.0)
        );
    }
    println!("\nThe commit thread's batches (ms: the jobs' steps, the log's append, and both):\n");
    println!(
        "| phase | batches | prepare p50 | p99 | max | append p50 | p99 | max | batch p50 | p99 | max |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, p) in PHASES.iter().zip(phases) {
        let prepare = sorted(&p.batches.iter().map(|b| b.prepare).collect::<Vec<_>>());
        let append = sorted(&p.batches.iter().map(|b| b.append).collect::<Vec<_>>());
        let both = sorted(
            &p.batches
                .iter()
                .map(|b| b.prepare + b.append)
                .collect::<Vec<_>>(),
        );
        let three = |v: &[f64]| {
            format!(
                "{} | {} | {}",
                ms(percentile(v, 50.0)),
                ms(percentile(v, 99.0)),
                ms(percentile(v, 100.0))
            )
        };
        println!(
            "| {name} | {} | {} | {} | {} |",
            p.batches.len(),
            three(&prepare),
            three(&append),
            three(&both)
        );
    }
    println!();
    for (r, phase) in reports.iter().zip(&phases[1..]) {
        let l = sorted(&r.latencies);
        println!(
            "{} reports: {} accepted, latency p50 {} ms, max {} ms; signing them took {:.2} s of {:.0} s ({:.1} % of one core); {} refused",
            r.name(),
            l.len(),
            ms(percentile(&l, 50.0)),
            ms(percentile(&l, 100.0)),
            r.signing,
            phase.seconds,
            100.0 * r.signing / phase.seconds,
            r.errors.len()
        );
    }
    let errors = phases.iter().flat_map(|p| &p.errors);
    for e in errors.chain(reports.iter().flat_map(|r| &r.errors)).take(3) {
        println!("error: {e}");
    }
}

/// The parts of the next report's cost, on the store the run left, with
/// the gateway stopped: surveying it (the reads, off the commit thread
/// since issue 19), settling the survey (building its writes, on the commit
/// thread), and writing its writes.
fn breakdown(fed: &Federation, reports: &Reports) {
    let Value::Object(body) = reports.next_body() else {
        unreachable!("an object")
    };
    parts(fed, reports.by, reports.name(), &body);
}

/// [`breakdown`] of a count at D's `Vault` that finds none of its 10,000
/// assets there: every one of them opens `missing`.
fn breakdown_empty(fed: &Federation) {
    let body = json!({"location": Reports::location(STEADY), "reported_by": "counter",
        "observed": [{"tag": "UNKNOWN-000"}]});
    let Value::Object(body) = body else {
        unreachable!("an object")
    };
    parts(fed, STEADY, "empty", &body);
}

fn parts(fed: &Federation, by: usize, name: &str, body: &serde_json::Map<String, Value>) {
    let store = fed.log.store();
    let Ok(Op::Asset(AssetOp::Report(report))) = Op::parse(Kind::InventoryReport, body) else {
        unreachable!("a report")
    };
    let by = &fed.ids[by];
    let stamp = Stamp {
        time: 1_800_000_000,
        ..Stamp::default()
    };
    let index = fed.log.size();
    let facts = Facts::new(by, by, "breakdown", "00", stamp, index);
    let median = |f: &mut dyn FnMut()| {
        let mut t: Vec<f64> = (0..5)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed().as_secs_f64()
            })
            .collect();
        t.sort_by(f64::total_cmp);
        t[2]
    };
    let survey = reconcile::survey(&report, by, &Stored(store)).expect("survey");
    let survey_s = median(&mut || {
        reconcile::survey(&report, by, &Stored(store)).expect("survey");
    });
    let mut batch = WriteBatch::new();
    let settle_s = median(&mut || {
        batch = WriteBatch::new();
        reconcile::settle(&survey, &report, &facts, &mut batch).expect("settle");
    });
    let ops: Vec<(Vec<u8>, Option<Vec<u8>>)> = batch.clone().into_ops().collect();
    let bytes: usize = ops
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    let mut undo = WriteBatch::new();
    for (k, _) in &ops {
        match store.get(k).expect("read") {
            Some(v) => undo.put(k.clone(), v.clone()),
            None => undo.delete(k.clone()),
        }
    }
    let t = Instant::now();
    store.apply(batch).expect("apply");
    let apply_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    store.sync().expect("sync");
    let sync_s = t.elapsed().as_secs_f64();
    store.apply(undo).expect("undo");
    store.sync().expect("sync");
    println!(
        "next {name} report ({} tags) on the final store, gateway stopped, medians of 5: survey {:.1} ms, \
         settle {:.1} ms; its {} writes ({} bytes): Store::apply {:.1} ms, sync {:.1} ms",
        report.observed.len(),
        survey_s * 1e3,
        settle_s * 1e3,
        ops.len(),
        bytes,
        apply_s * 1e3,
        sync_s * 1e3
    );
}
