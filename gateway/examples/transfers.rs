//! A load run of asset custody transfers against a running gateway, next to
//! `record.send` exchanges driven the same way in the same process.
//!
//! ```text
//! xgate serve --data-dir /tmp/xfer-data --listen 127.0.0.1:8443 &
//! cargo run --release -p xgate --example transfers -- https://127.0.0.1:8443 /tmp/xfer-data/pki [CONNECTIONS] [SECONDS]
//! ```
//!
//! A transfer is an `asset.transfer.offer` from the holder's agency and the
//! `asset.transfer.accept` that answers it from the receiving agency, both
//! acknowledged `201` (durable, receipted). The accept can only follow its
//! offer's receipt, so one asset moves at one round trip per envelope.
//!
//! How the connections are used: CONNECTIONS (default 64, even) keep-alive
//! mutual-TLS connections form CONNECTIONS/2 pairs. A pair is one
//! connection as agency A and one as agency B (the four sample agencies,
//! every ordered combination in turn) and owns four assets, two first held
//! by each side, which it passes back and forth. Each connection is one
//! task with one envelope in flight at a time, working through a queue of
//! what it can do next: offer an asset it holds to the other side, or
//! accept an offer the other side has had acknowledged (the other task
//! tells it over a channel). With two assets per side the queue is
//! practically never empty, so, as in the `record.send` baseline (the
//! closed loop of `xgate bench`), every connection always has an envelope in flight
//! and the two runs differ only in what the envelopes ask for. (One task
//! per asset with two connections of its own would need 128 connections
//! for 64 envelopes in flight; two connections moving one asset in lock
//! step leave one of them idle half the time.)
//!
//! Every envelope is signed before its phase starts, so signing is not
//! measured: each offer's `jti` is chosen here, so its accept can be signed
//! in advance too. Each asset's moves are known in advance (round r offers
//! it from its first holder's side if r is even, else from the other side,
//! and the other side accepts). Enough rounds are signed for 4,000
//! transfers/s (`XGATE_PRESIGN_TRANSFERS` per second overrides); an asset
//! that uses up its rounds stops moving, and the output counts it. Envelopes
//! live 290 s, so a phase may last at most 240 s. The assets are
//! registered first (tags unique to this run), outside the timing.
//!
//! Prints one JSON line: transfers/s, envelope latency percentiles (offers
//! and accepts alike) and transfer latency (offer sent to accept
//! acknowledged), errors by status and error code with the first error
//! body, then the baseline: `record.send` exchanges/s over the same number
//! of connections for the same time, run right after, and the ratio of
//! envelopes/s (two per transfer) to baseline exchanges/s.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use xgate::client::{Client, EnvelopeSigner, Protocol, random_jti};
use xgate_server::registry::AgencyId;

const AGENCIES: [&str; 4] = ["state", "treasury", "gsa", "hhs"];
/// Envelope lifetime: the gateway accepts at most 300 s.
const LIFETIME: i64 = 290;
/// Longest phase the lifetime leaves room for, after signing.
const MAX_SECONDS: u64 = 240;
/// Assets each side of a pair holds at the start.
const ASSETS_PER_SIDE: usize = 2;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "https://127.0.0.1:8443".into());
    let pki = PathBuf::from(
        args.get(2)
            .cloned()
            .unwrap_or_else(|| "xgate-data/pki".into()),
    );
    let connections: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(20);
    assert!(
        connections >= 2 && connections.is_multiple_of(2),
        "CONNECTIONS must be even: they work in pairs"
    );
    assert!(
        (1..=MAX_SECONDS).contains(&seconds),
        "SECONDS must be 1-{MAX_SECONDS}: envelopes live {LIFETIME} s"
    );
    let rate: usize = std::env::var("XGATE_PRESIGN_TRANSFERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000);

    let ids: Vec<AgencyId> = AGENCIES.iter().map(|a| a.parse().expect("id")).collect();
    let signers: Vec<EnvelopeSigner> = ids
        .iter()
        .map(|id| EnvelopeSigner::for_agency(&pki, id).expect("signer"))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // Transfers.
    let run = random_jti().expect("run id");
    let run = &run[..10];
    let pairs: Vec<Pair> = (0..connections / 2)
        .map(|p| Pair::new(p, run, ids.len()))
        .collect();
    let assets = pairs.len() * 2 * ASSETS_PER_SIDE;
    let rounds = (rate * seconds as usize).div_ceil(assets).max(1);
    eprintln!(
        "run {run}: {} pairs, {assets} assets, signing {rounds} rounds each ({} envelopes)...",
        pairs.len(),
        2 * rounds * assets
    );
    let signed = presign(&pairs, rounds, &signers);
    let transfers = runtime.block_on(transfer_phase(
        &url, &pki, &ids, &signers, pairs, signed, seconds,
    ));

    // Baseline: record.send over as many connections, for as long.
    let total = 12_000 * seconds as usize;
    eprintln!("signing {total} record.send envelopes...");
    let queues = presign_records(&ids, &signers, total);
    let baseline = runtime.block_on(record_phase(&url, &pki, &ids, queues, connections, seconds));

    let (t, b) = (&transfers, &baseline);
    println!(
        "{}",
        json!({
            "connections": connections,
            "pairs": connections / 2,
            "protocol": "http/1.1",
            "seconds": t.seconds,
            "transfers": t.done,
            "transfers_per_s": t.per_s,
            "envelopes_per_s": 2.0 * t.per_s,
            "envelope_p50_ms": t.envelope.p50, "envelope_p90_ms": t.envelope.p90,
            "envelope_p99_ms": t.envelope.p99, "envelope_p999_ms": t.envelope.p999,
            "transfer_p50_ms": t.transfer.p50, "transfer_p99_ms": t.transfer.p99,
            "exhausted_assets": t.exhausted,
            "errors": t.errors.counts,
            "first_error": t.errors.first,
            "baseline_record_send_seconds": b.seconds,
            "baseline_record_send_per_s": b.per_s,
            "baseline_p50_ms": b.envelope.p50, "baseline_p99_ms": b.envelope.p99,
            "baseline_errors": b.errors.counts,
            "baseline_first_error": b.errors.first,
            "baseline_exhausted_connections": b.exhausted,
            "transfers_per_baseline_exchange": t.per_s / b.per_s,
            "envelopes_per_baseline_exchange": 2.0 * t.per_s / b.per_s,
        })
    );
}

/// Two connections' agencies and the assets they pass back and forth.
struct Pair {
    /// The agencies of side 0 (A) and side 1 (B).
    agencies: [usize; 2],
    /// Each asset's tag and the side that registers it.
    assets: Vec<(String, usize)>,
    /// Prefix of this pair's offer `jti`s.
    jti: String,
}

impl Pair {
    fn new(p: usize, run: &str, agencies: usize) -> Pair {
        // Every ordered pair of distinct agencies in turn.
        let a = p % agencies;
        let b = (a + 1 + (p / agencies) % (agencies - 1)) % agencies;
        Pair {
            agencies: [a, b],
            assets: (0..2 * ASSETS_PER_SIDE)
                .map(|i| (format!("XF-{run}-{p}-{i}"), i % 2))
                .collect(),
            jti: format!("{run}-{p}"),
        }
    }
}

/// What one side of a pair sends: for each asset, the envelope of each
/// round (its offer if the round's offer is this side's, else its accept).
type Script = Vec<Vec<String>>;

/// Signs `rounds` rounds of every asset of every pair on two threads.
fn presign(pairs: &[Pair], rounds: usize, signers: &[EnvelopeSigner]) -> Vec<[Script; 2]> {
    let sign_pair = |pair: &Pair| -> [Script; 2] {
        let mut sides: [Script; 2] = [Vec::new(), Vec::new()];
        for (i, (tag, first)) in pair.assets.iter().enumerate() {
            let mut steps: [Vec<String>; 2] = [Vec::new(), Vec::new()];
            for r in 0..rounds {
                let from = first ^ (r % 2);
                let to = 1 - from;
                let (offerer, receiver) =
                    (&signers[pair.agencies[from]], &signers[pair.agencies[to]]);
                let jti = format!("{}-{i}-{r}", pair.jti);
                let offer = object(json!({
                    "tag": tag,
                    "to": {"agency": receiver.iss().as_str(), "person": format!("emp-{r}")},
                    "reason": "load run",
                }));
                steps[from].push(
                    offerer
                        .sign(
                            receiver.iss(),
                            "asset.transfer.offer",
                            offer,
                            LIFETIME,
                            Some(jti.clone()),
                        )
                        .expect("sign offer"),
                );
                let accept = object(json!({"tag": tag, "offer": jti}));
                steps[to].push(
                    receiver
                        .sign(
                            offerer.iss(),
                            "asset.transfer.accept",
                            accept,
                            LIFETIME,
                            None,
                        )
                        .expect("sign accept"),
                );
            }
            let [s0, s1] = steps;
            sides[0].push(s0);
            sides[1].push(s1);
        }
        sides
    };
    let half = pairs.len().div_ceil(2);
    std::thread::scope(|s| {
        let first = s.spawn(|| pairs[..half].iter().map(sign_pair).collect::<Vec<_>>());
        let mut second: Vec<[Script; 2]> = pairs[half..].iter().map(sign_pair).collect();
        let mut all = first.join().expect("signing thread");
        all.append(&mut second);
        all
    })
}

/// The next thing a side can do: move `asset` in `round`, by offering it
/// (`offered` is `None`) or by accepting the other side's offer,
/// acknowledged after being sent at `offered`.
#[derive(Clone, Copy)]
struct Move {
    asset: usize,
    round: usize,
    offered: Option<Instant>,
}

/// Latency percentiles in milliseconds.
#[derive(Default)]
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
}

impl Percentiles {
    fn of(mut micros: Vec<u64>) -> Percentiles {
        micros.sort_unstable();
        let at = |q: f64| {
            let i = ((micros.len() as f64 * q) as usize).min(micros.len().saturating_sub(1));
            micros.get(i).map_or(0.0, |us| *us as f64 / 1000.0)
        };
        Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
        }
    }
}

/// Errors by `status code` (e.g. `409 offer_pending`), and the first body.
#[derive(Default)]
struct Errors {
    counts: BTreeMap<String, usize>,
    first: Option<String>,
}

impl Errors {
    fn note(&mut self, what: String, body: String) {
        *self.counts.entry(what).or_default() += 1;
        if self.first.is_none() {
            eprintln!("first error: {body}");
            self.first = Some(body);
        }
    }
}

/// Shared by the tasks of one phase.
#[derive(Default)]
struct Tally {
    envelope_us: Mutex<Vec<u64>>,
    transfer_us: Mutex<Vec<u64>>,
    errors: Mutex<Errors>,
    /// Transfers, or `record.send` exchanges.
    done: AtomicUsize,
    /// Assets out of signed rounds, or connections out of envelopes.
    exhausted: AtomicUsize,
}

/// What one phase measured.
struct Measured {
    seconds: f64,
    done: usize,
    per_s: f64,
    envelope: Percentiles,
    transfer: Percentiles,
    exhausted: usize,
    errors: Errors,
}

impl Tally {
    fn measured(&self, started: Instant) -> Measured {
        let seconds = started.elapsed().as_secs_f64();
        let done = self.done.load(Ordering::Relaxed);
        let take = |v: &Mutex<Vec<u64>>| std::mem::take(&mut *v.lock().expect("latencies"));
        Measured {
            seconds,
            done,
            per_s: done as f64 / seconds,
            envelope: Percentiles::of(take(&self.envelope_us)),
            transfer: Percentiles::of(take(&self.transfer_us)),
            exhausted: self.exhausted.load(Ordering::Relaxed),
            errors: std::mem::take(&mut *self.errors.lock().expect("errors")),
        }
    }
}

/// Registers every pair's assets, then runs both sides of every pair
/// until `seconds` have passed.
async fn transfer_phase(
    url: &str,
    pki: &Path,
    ids: &[AgencyId],
    signers: &[EnvelopeSigner],
    pairs: Vec<Pair>,
    scripts: Vec<[Script; 2]>,
    seconds: u64,
) -> Measured {
    let mut sides = Vec::new();
    for (pair, [script_a, script_b]) in pairs.iter().zip(scripts) {
        let mut clients = Vec::new();
        for side in 0..2 {
            let agency = pair.agencies[side];
            let mut client =
                Client::for_agency(pki, &ids[agency], url, Protocol::Http1).expect("client");
            for (tag, first) in &pair.assets {
                if *first == side {
                    register(&mut client, &signers[agency], tag).await;
                }
            }
            clients.push(client);
        }
        let firsts: Vec<usize> = pair.assets.iter().map(|(_, f)| *f).collect();
        let (to_b, from_a) = tokio::sync::mpsc::unbounded_channel();
        let (to_a, from_b) = tokio::sync::mpsc::unbounded_channel();
        let client_b = clients.pop().expect("client B");
        let client_a = clients.pop().expect("client A");
        sides.push(Side::new(0, client_a, script_a, &firsts, (from_b, to_b)));
        sides.push(Side::new(1, client_b, script_b, &firsts, (from_a, to_a)));
    }
    eprintln!(
        "registered {} assets; transferring...",
        pairs.len() * 2 * ASSETS_PER_SIDE
    );

    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = sides
        .into_iter()
        .map(|side| tokio::spawn(side.run(deadline, Arc::clone(&tally))))
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    tally.measured(started)
}

/// One connection of a pair and what it does.
struct Side {
    client: Client,
    script: Script,
    ready: VecDeque<Move>,
    /// The other side's acknowledged offers to this one.
    offered: UnboundedReceiver<Move>,
    /// This side's acknowledged offers, to the other.
    offers: UnboundedSender<Move>,
}

impl Side {
    fn new(
        side: usize,
        client: Client,
        script: Script,
        firsts: &[usize],
        (offered, offers): (UnboundedReceiver<Move>, UnboundedSender<Move>),
    ) -> Side {
        let ready = (0..firsts.len())
            .filter(|&asset| firsts[asset] == side)
            .map(|asset| Move {
                asset,
                round: 0,
                offered: None,
            })
            .collect();
        Side {
            client,
            script,
            ready,
            offered,
            offers,
        }
    }

    /// Offers and accepts until `deadline`; stops at the first refusal
    /// (custody would no longer be known).
    async fn run(mut self, deadline: Instant, tally: Arc<Tally>) {
        let (mut envelope_us, mut transfer_us) = (Vec::new(), Vec::new());
        while Instant::now() < deadline {
            while let Ok(accept) = self.offered.try_recv() {
                self.ready.push_back(accept);
            }
            let next = match self.ready.pop_front() {
                Some(next) => next,
                None => match tokio::time::timeout_at(deadline.into(), self.offered.recv()).await {
                    Ok(Some(accept)) => accept,
                    _ => break,
                },
            };
            let Some(jws) = self.script[next.asset]
                .get_mut(next.round)
                .map(std::mem::take)
            else {
                tally.exhausted.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let sent = Instant::now();
            match post(&mut self.client, jws).await {
                Ok(us) => envelope_us.push(us),
                Err((what, body)) => {
                    tally.errors.lock().expect("errors").note(what, body);
                    break;
                }
            }
            match next.offered {
                // The other side may be gone at the end of the run.
                None => drop(self.offers.send(Move {
                    offered: Some(sent),
                    ..next
                })),
                Some(offered) => {
                    transfer_us.push(offered.elapsed().as_micros() as u64);
                    self.ready.push_back(Move {
                        asset: next.asset,
                        round: next.round + 1,
                        offered: None,
                    });
                }
            }
        }
        tally.done.fetch_add(transfer_us.len(), Ordering::Relaxed);
        tally
            .envelope_us
            .lock()
            .expect("latencies")
            .extend(envelope_us);
        tally
            .transfer_us
            .lock()
            .expect("latencies")
            .extend(transfer_us);
    }
}

/// Registers `tag` to the signer's agency; anything but `201` ends the run
/// with the gateway's answer.
///
/// A transport error is retried once: `Client::request` does not wait for
/// hyper's `SendRequest::ready()`, so a request sent right after the last
/// response on the same connection can fail with "operation was canceled"
/// (hyper's "connection was not ready") without having been sent. A
/// registration that did get through is refused the second time
/// (`409 asset_exists`), which ends the run with that answer.
async fn register(client: &mut Client, signer: &EnvelopeSigner, tag: &str) {
    let me = signer.iss();
    let body = object(json!({
        "tag": tag,
        "serial": format!("SN-{tag}"),
        "category": "laptop",
        "description": "load run asset",
        "holder": {"agency": me.as_str(), "person": "emp-first"},
        "location": "HQ",
    }));
    let jws = signer
        .sign(me, "asset.register", body, LIFETIME, None)
        .expect("sign register");
    let outcome = match post(client, jws.clone()).await {
        Err((what, _)) if what == "transport" => post(client, jws).await,
        outcome => outcome,
    };
    if let Err((what, body)) = outcome {
        panic!("registering {tag} as {me}: {what}: {body}");
    }
}

/// Submits one envelope: its latency in microseconds if `201`, else the
/// status with the error code, and the body.
async fn post(client: &mut Client, jws: String) -> Result<u64, (String, String)> {
    let t = Instant::now();
    let reply = client.submit(jws).await;
    match reply {
        Ok(r) if r.status == StatusCode::CREATED => Ok(t.elapsed().as_micros() as u64),
        Ok(r) => {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            let code = r.error_code().unwrap_or_default();
            Err((format!("{} {code}", r.status.as_u16()), body))
        }
        Err(e) => Err(("transport".into(), e.to_string())),
    }
}

/// Pre-signed `record.send` envelopes, one queue per agency, each to the
/// next agency, signed on two threads.
fn presign_records(
    ids: &[AgencyId],
    signers: &[EnvelopeSigner],
    total: usize,
) -> Vec<Arc<Mutex<Vec<String>>>> {
    let body = object(json!({"record": "load run", "pages": 1}));
    let sign = |a: usize| -> Vec<String> {
        let to = &ids[(a + 1) % ids.len()];
        (0..total / ids.len())
            .map(|_| {
                signers[a]
                    .sign(to, "record.send", body.clone(), LIFETIME, None)
                    .expect("sign")
            })
            .collect()
    };
    let queues: Vec<Vec<String>> = std::thread::scope(|s| {
        let first = s.spawn(|| (0..2).map(sign).collect::<Vec<_>>());
        let second: Vec<Vec<String>> = (2..ids.len()).map(sign).collect();
        let mut all = first.join().expect("signing thread");
        all.extend(second);
        all
    });
    queues
        .into_iter()
        .map(|q| Arc::new(Mutex::new(q)))
        .collect()
}

/// The closed loop of `xgate bench`: `connections` connections, connection `c` as
/// agency `c mod 4`, each submitting the next envelope of its agency's
/// queue as soon as the last one's receipt returns.
async fn record_phase(
    url: &str,
    pki: &Path,
    ids: &[AgencyId],
    queues: Vec<Arc<Mutex<Vec<String>>>>,
    connections: usize,
    seconds: u64,
) -> Measured {
    let tally = Arc::new(Tally::default());
    let mut clients = Vec::new();
    for c in 0..connections {
        let a = c % ids.len();
        let mut client = Client::for_agency(pki, &ids[a], url, Protocol::Http1).expect("client");
        client.connect().await.expect("connect");
        clients.push((client, Arc::clone(&queues[a])));
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (mut client, queue) in clients {
        let tally = Arc::clone(&tally);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while Instant::now() < deadline {
                let Some(jws) = queue.lock().expect("queue").pop() else {
                    tally.exhausted.fetch_add(1, Ordering::Relaxed);
                    break;
                };
                match post(&mut client, jws).await {
                    Ok(us) => mine.push(us),
                    Err((what, body)) => tally.errors.lock().expect("errors").note(what, body),
                }
            }
            tally.done.fetch_add(mine.len(), Ordering::Relaxed);
            tally.envelope_us.lock().expect("latencies").extend(mine);
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    tally.measured(started)
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
