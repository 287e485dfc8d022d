//! An open-loop load run of emergency medical requests: how long a
//! `medical.request` that breaks the glass (purpose `ETREAT`, role
//! `medical-officer`, which the default policy grants at once) takes from
//! the moment it is due to its `201` (durable, receipted, granted), alone
//! and while the gateway also carries `record.send` traffic.
//!
//! ```text
//! cargo build --release -p xgate --bin xgate --example medical_load
//! ./target/release/xgate serve --data-dir /tmp/ml-data --listen 127.0.0.1:8443 &
//! cargo run --release -p xgate --example medical_load -- https://127.0.0.1:8443 /tmp/ml-data/pki [SECONDS] [REQ_PER_S] [RECORDS_PER_S]
//! ```
//!
//! Defaults: 20 s, 500 requests/s, 2,000 records/s (the issue's target: a
//! p99 under 50 ms at 500 requests/s alongside 2,000 records/s).
//!
//! Each run has two phases of SECONDS each, in this order:
//! 1. `baseline`: the request stream alone;
//! 2. `mixed`: the same request stream with the record stream alongside
//!    (records start a second earlier, so requests meet a steady load).
//!
//! Open loop: a stream sends on a fixed schedule (envelope `i` is due at
//! `start + i / rate`) from a scheduler thread that never waits for a
//! response. Each due envelope is posted by a task of its own, on the next
//! idle keep-alive mutual-TLS connection of its agency: each stream has a
//! pool per agency, opened before the phase, large enough to keep its rate
//! at 100 ms per response (at least 4 per agency). Only if all are busy
//! does a send wait for one (counted), rather than open ever more
//! connections, whose handshakes would swamp the gateway. A latency runs
//! from when the envelope was due to its `201`, so a late send counts
//! against the gateway (no coordinated omission); the send lag (due to
//! posted) is reported apart.
//!
//! Senders rotate over the four sample agencies, each sending to the next.
//! Every envelope is signed before its phase (random `jti`, 290 s lifetime,
//! so SECONDS is at most 240), so signing is not measured; its rate is
//! reported. A request's `reply_key` is the `kid` of the sender's
//! registered encryption key. Before the baseline, one request is sent and
//! its case read back to check it was granted as break-the-glass.
//!
//! Prints one JSON line: per phase and stream, the offered and achieved
//! rates, latency p50/p90/p99/max, send lag, connections, errors by
//! `status code`; then mixed/baseline ratios of the requests' percentiles.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Map, Value, json};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use xgate::client::{Client, EnvelopeSigner, Protocol, random_jti};
use xgate_server::pki::SAMPLE_AGENCIES;
use xgate_server::registry::{AgencyId, Registry};

/// Envelope lifetime: the gateway accepts at most 300 s.
const LIFETIME: i64 = 290;
/// Longest phase the lifetime leaves room for, after signing.
const MAX_SECONDS: u64 = 240;
/// Each stream gets enough connections (per agency, at least 4) to keep its
/// rate with this latency before a send waits for one.
const POOL_LATENCY: Duration = Duration::from_millis(100);
/// How long the records run before the requests in the mixed phase.
const RECORD_LEAD: Duration = Duration::from_secs(1);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned();
    let url = arg(1).unwrap_or_else(|| "https://127.0.0.1:8443".into());
    let pki = PathBuf::from(arg(2).unwrap_or_else(|| "xgate-data/pki".into()));
    let seconds: u64 = arg(3).and_then(|a| a.parse().ok()).unwrap_or(20);
    let request_rate: f64 = arg(4).and_then(|a| a.parse().ok()).unwrap_or(500.0);
    let record_rate: f64 = arg(5).and_then(|a| a.parse().ok()).unwrap_or(2000.0);
    assert!(
        (1..=MAX_SECONDS).contains(&seconds),
        "SECONDS must be 1-{MAX_SECONDS}: envelopes live {LIFETIME} s"
    );

    let fed = Federation::load(&url, &pki);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(check_grant(&fed));

    let window = Duration::from_secs(seconds);
    let requests =
        |fed: &Federation| fed.stream("medical.request", request_rate, window, Duration::ZERO);
    eprintln!("baseline: {request_rate}/s medical.request for {seconds} s...");
    let baseline = run_phase(&runtime, &fed, vec![requests(&fed)]);
    eprintln!("mixed: the same, with {record_rate}/s record.send...");
    let records = fed.stream(
        "record.send",
        record_rate,
        window + RECORD_LEAD,
        RECORD_LEAD,
    );
    let mixed = run_phase(&runtime, &fed, vec![requests(&fed), records]);

    let (alone, along) = (&baseline[0], &mixed[0]);
    let ratio = |q: &str| along[q].as_f64().unwrap_or(0.0) / alone[q].as_f64().unwrap_or(1.0);
    println!(
        "{}",
        json!({
            "seconds": seconds,
            "signing_per_s_2_threads": fed.signing_rate(),
            "baseline": {"requests": alone},
            "mixed": {"requests": along, "records": mixed[1]},
            "mixed_over_baseline": {
                "p50": ratio("p50_ms"), "p90": ratio("p90_ms"),
                "p99": ratio("p99_ms"), "max": ratio("max_ms"),
            },
            "target_p99_under_50ms": along["p99_ms"].as_f64().is_some_and(|p| p < 50.0),
        })
    );
}

/// The gateway, the sample agencies' keys, and how fast they sign.
struct Federation {
    url: String,
    pki: PathBuf,
    ids: Vec<AgencyId>,
    signers: Vec<EnvelopeSigner>,
    /// Each agency's `medical.request` body (its own reply key).
    request_bodies: Vec<Map<String, Value>>,
    /// Envelopes signed and the time it took.
    signed: Mutex<(usize, Duration)>,
}

impl Federation {
    fn load(url: &str, pki: &Path) -> Federation {
        let registry = Registry::load(&pki.join("registry.toml")).expect("registry");
        let ids: Vec<AgencyId> = SAMPLE_AGENCIES
            .iter()
            .map(|a| a.parse().expect("id"))
            .collect();
        let signers = ids
            .iter()
            .map(|id| EnvelopeSigner::for_agency(pki, id).expect("signer"))
            .collect();
        let request_bodies = ids
            .iter()
            .map(|id| {
                let agency = registry.get(id).expect("agency in the registry");
                let kid = agency.encryption_key["kid"].as_str().expect("kid");
                object(json!({
                    "subject": "load-subject-0001",
                    "purpose": "ETREAT",
                    "incident": "INC-LOAD",
                    "responder": {"name": "Dr Load Test", "role": "medical-officer"},
                    "sections": ["allergies", "medications"],
                    "reply_key": kid,
                }))
            })
            .collect();
        Federation {
            url: url.to_owned(),
            pki: pki.to_owned(),
            ids,
            signers,
            request_bodies,
            signed: Mutex::new((0, Duration::ZERO)),
        }
    }

    /// Who agency `a` sends to.
    fn recipient(&self, a: usize) -> &AgencyId {
        &self.ids[(a + 1) % self.ids.len()]
    }

    fn body(&self, kind: &str, a: usize) -> Map<String, Value> {
        match kind {
            "medical.request" => self.request_bodies[a].clone(),
            _ => object(json!({"record": "load run", "pages": 1})),
        }
    }

    /// A stream of `kind` at `rate` for `window`, starting `lead` before
    /// the phase's other streams; signed now.
    fn stream(&self, kind: &'static str, rate: f64, window: Duration, lead: Duration) -> Stream {
        let count = (rate * window.as_secs_f64()).round() as usize;
        let per_agency = count.div_ceil(self.ids.len());
        let t = Instant::now();
        let sign = |a: usize| -> Vec<String> {
            (0..per_agency)
                .map(|_| {
                    self.signers[a]
                        .sign(self.recipient(a), kind, self.body(kind, a), LIFETIME, None)
                        .expect("sign")
                })
                .collect()
        };
        // Two threads, two agencies each.
        let queues: Vec<Vec<String>> = std::thread::scope(|s| {
            let first = s.spawn(|| (0..2).map(sign).collect::<Vec<_>>());
            let second: Vec<Vec<String>> = (2..self.ids.len()).map(sign).collect();
            let mut all = first.join().expect("signing thread");
            all.extend(second);
            all
        });
        let mut signed = self.signed.lock().expect("signed");
        signed.0 += per_agency * self.ids.len();
        signed.1 += t.elapsed();
        Stream {
            kind,
            rate,
            count,
            lead,
            queues,
        }
    }

    /// Envelopes signed per second, on two threads, before the phases.
    fn signing_rate(&self) -> f64 {
        let (n, took) = *self.signed.lock().expect("signed");
        n as f64 / took.as_secs_f64()
    }

    fn client(&self, a: usize) -> Client {
        Client::for_agency(&self.pki, &self.ids[a], &self.url, Protocol::Http1).expect("client")
    }
}

/// Sends one `medical.request` and reads its case back: it must have been
/// granted at once, as break-the-glass.
async fn check_grant(fed: &Federation) {
    let jti = random_jti().expect("jti");
    let jws = fed.signers[0]
        .sign(
            fed.recipient(0),
            "medical.request",
            fed.body("medical.request", 0),
            LIFETIME,
            Some(jti.clone()),
        )
        .expect("sign");
    let mut client = fed.client(0);
    if let Err((what, body)) = post(&mut client, jws).await {
        panic!("a medical.request was refused ({what}): {body}");
    }
    let case = client
        .request(
            Method::GET,
            &format!("/v1/medical/requests/{jti}"),
            None,
            Vec::new(),
        )
        .await
        .expect("case");
    let case: Value = serde_json::from_slice(&case.body).expect("case JSON");
    assert!(
        case["status"] == "granted" && case["break_glass"] == true,
        "the check request was not granted as break-the-glass: {case}"
    );
    eprintln!("check: a medical.request is granted at once (break-the-glass)");
}

/// Envelopes of one kind, due at a fixed rate, pre-signed per agency.
struct Stream {
    kind: &'static str,
    rate: f64,
    count: usize,
    /// How long before the phase's other streams this one starts.
    lead: Duration,
    /// Agency `a` sends envelopes `a`, `a + 4`, ... of the schedule.
    queues: Vec<Vec<String>>,
}

/// Runs `streams` together, each on its own schedule and connections, and
/// reports each.
fn run_phase(runtime: &Runtime, fed: &Federation, streams: Vec<Stream>) -> Vec<Value> {
    let agencies = fed.ids.len();
    let pools: Vec<Vec<Arc<Pool>>> = streams
        .iter()
        .map(|s| {
            let size = ((s.rate * POOL_LATENCY.as_secs_f64()) as usize)
                .div_ceil(agencies)
                .max(4);
            (0..agencies)
                .map(|a| Arc::new(runtime.block_on(Pool::open(fed, a, size))))
                .collect()
        })
        .collect();
    let latest_lead = streams.iter().map(|s| s.lead).max().unwrap_or_default();
    let zero = Instant::now() + Duration::from_millis(100);
    let runs: Vec<(Instant, Arc<Tally>)> = streams
        .iter()
        .map(|s| {
            let tally = Tally {
                kind: s.kind,
                rate: s.rate,
                ..Tally::default()
            };
            (zero + latest_lead - s.lead, Arc::new(tally))
        })
        .collect();
    eprintln!("  sending (connections open)...");
    let tasks: Vec<JoinHandle<()>> = std::thread::scope(|s| {
        let threads: Vec<_> = streams
            .into_iter()
            .zip(&pools)
            .zip(&runs)
            .map(|((stream, pools), (start, tally))| {
                let handle = runtime.handle().clone();
                s.spawn(move || schedule(&handle, stream, *start, pools, tally))
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("scheduler"))
            .collect()
    });
    runtime.block_on(async {
        for t in tasks {
            t.await.expect("send task");
        }
    });
    eprintln!("  done");
    runs.iter()
        .zip(&pools)
        .map(|((start, tally), pools)| tally.report(*start, pools))
        .collect()
}

/// Posts each envelope of `stream` when it is due, each from a task of its
/// own: never waits for a response.
fn schedule(
    runtime: &Handle,
    stream: Stream,
    start: Instant,
    pools: &[Arc<Pool>],
    tally: &Arc<Tally>,
) -> Vec<JoinHandle<()>> {
    let agencies = stream.queues.len();
    let mut queues: Vec<_> = stream.queues.into_iter().map(Vec::into_iter).collect();
    let mut tasks = Vec::with_capacity(stream.count);
    for i in 0..stream.count {
        let due = start + Duration::from_secs_f64(i as f64 / stream.rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let a = i % agencies;
        let jws = queues[a].next().expect("signed enough");
        let (pool, tally) = (Arc::clone(&pools[a]), Arc::clone(tally));
        tasks.push(runtime.spawn(send(pool, jws, due, tally)));
    }
    tasks
}

/// Posts one envelope due at `due` on a connection of `pool`.
async fn send(pool: Arc<Pool>, jws: String, due: Instant, tally: Arc<Tally>) {
    let outcome = pool
        .with(async |client| {
            tally.started(due);
            post(client, jws).await
        })
        .await;
    tally.finished(due, outcome.err());
}

/// Submits one envelope: `Ok` if `201`, else the status with the error
/// code, and the body.
async fn post(client: &mut Client, jws: String) -> Result<(), (String, String)> {
    let reply = client.submit(jws).await;
    match reply {
        Ok(r) if r.status == StatusCode::CREATED => Ok(()),
        Ok(r) => {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            let code = r.error_code().unwrap_or_default();
            Err((format!("{} {code}", r.status.as_u16()), body))
        }
        Err(e) => Err(("transport".into(), e.to_string())),
    }
}

/// One agency's keep-alive connections for one stream, used in turn so
/// none idles long; a send waits for one when all are busy.
struct Pool {
    idle: Mutex<VecDeque<Client>>,
    /// A permit per idle connection, handed out first come, first served.
    free: Semaphore,
    size: usize,
    /// Sends that found every connection busy.
    waited: AtomicUsize,
}

impl Pool {
    async fn open(fed: &Federation, a: usize, size: usize) -> Pool {
        let mut idle = VecDeque::with_capacity(size);
        for _ in 0..size {
            let mut client = fed.client(a);
            client.connect().await.expect("connect");
            idle.push_back(client);
        }
        Pool {
            idle: Mutex::new(idle),
            free: Semaphore::new(size),
            size,
            waited: AtomicUsize::new(0),
        }
    }

    /// Runs `f` on the next idle connection.
    async fn with<T>(&self, f: impl AsyncFnOnce(&mut Client) -> T) -> T {
        let permit = match self.free.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                self.waited.fetch_add(1, Ordering::Relaxed);
                self.free.acquire().await.expect("pool open")
            }
        };
        let next = self.idle.lock().expect("pool").pop_front();
        let mut client = next.expect("a permit means an idle connection");
        let out = f(&mut client).await;
        self.idle.lock().expect("pool").push_back(client);
        drop(permit);
        out
    }
}

/// What one stream's tasks measured.
#[derive(Default)]
struct Tally {
    kind: &'static str,
    rate: f64,
    /// Due to `201`, microseconds.
    latency_us: Mutex<Vec<u64>>,
    /// Due to posted, microseconds.
    lag_us: Mutex<Vec<u64>>,
    errors: Mutex<BTreeMap<String, usize>>,
    first_error: Mutex<Option<String>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// When the last response came.
    last: Mutex<Option<Instant>>,
}

impl Tally {
    fn started(&self, due: Instant) {
        self.lag_us
            .lock()
            .expect("tally")
            .push(micros(due.elapsed()));
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
    }

    fn finished(&self, due: Instant, error: Option<(String, String)>) {
        let latency = due.elapsed();
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let mut last = self.last.lock().expect("tally");
        *last = (*last).max(Some(due + latency));
        drop(last);
        match error {
            None => self.latency_us.lock().expect("tally").push(micros(latency)),
            Some((what, body)) => {
                *self.errors.lock().expect("tally").entry(what).or_default() += 1;
                self.first_error.lock().expect("tally").get_or_insert(body);
            }
        }
    }

    /// The stream's figures; `start` is when its first envelope was due.
    /// The achieved rate is `201`s per second from then to the last
    /// response.
    fn report(&self, start: Instant, pools: &[Arc<Pool>]) -> Value {
        let mut latency = std::mem::take(&mut *self.latency_us.lock().expect("tally"));
        let mut lag = std::mem::take(&mut *self.lag_us.lock().expect("tally"));
        latency.sort_unstable();
        lag.sort_unstable();
        let last = self.last.lock().expect("tally").unwrap_or(start);
        let span = last.duration_since(start).as_secs_f64();
        let waited: usize = pools.iter().map(|p| p.waited.load(Ordering::Relaxed)).sum();
        json!({
            "kind": self.kind,
            "offered_per_s": self.rate,
            "sent": lag.len(),
            "ok": latency.len(),
            "achieved_per_s": latency.len() as f64 / span,
            "p50_ms": percentile(&latency, 0.50),
            "p90_ms": percentile(&latency, 0.90),
            "p99_ms": percentile(&latency, 0.99),
            "max_ms": percentile(&latency, 1.0),
            "send_lag_p99_ms": percentile(&lag, 0.99),
            "send_lag_max_ms": percentile(&lag, 1.0),
            "max_in_flight": self.max_in_flight.load(Ordering::Relaxed),
            "connections": pools.iter().map(|p| p.size).sum::<usize>(),
            "sends_that_waited_for_a_connection": waited,
            "errors": self.errors.lock().expect("tally").clone(),
            "first_error": self.first_error.lock().expect("tally").clone(),
        })
    }
}

/// The `q` quantile of sorted microseconds, in milliseconds (nearest rank).
fn percentile(sorted_us: &[u64], q: f64) -> f64 {
    let rank = ((sorted_us.len() as f64 * q).ceil() as usize).clamp(1, sorted_us.len().max(1));
    sorted_us
        .get(rank - 1)
        .map_or(0.0, |us| *us as f64 / 1000.0)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
