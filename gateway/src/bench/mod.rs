//! `xgate bench`: a load generator built on the gateway's own client stack
//! (hyper and rustls with the agencies' client certificates).
//!
//! It signs every envelope before the run (so signing is not measured),
//! then drives the gateway from N keep-alive connections (HTTP/1.1, or
//! HTTP/2 when negotiated), each sending its next envelope as soon as the
//! previous one's receipt is back (closed loop), with the envelope kinds
//! mixed by ratio ([`mix`]). It reports throughput, latency percentiles
//! from an HDR histogram (each latency is one durable, receipted exchange)
//! and errors by status and code ([`report`]). A connection that gets no
//! answer three times in a row (the gateway is down) stops, so the run
//! ends early instead of spinning on refused connects. With `--timings` it
//! also writes when each acknowledged request was sent and answered
//! ([`timings`]).

pub mod drain;
pub mod error;
pub mod mix;
pub mod plan;
pub mod presign;
pub mod report;
pub mod timings;

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::client::{Client, ClientError, Protocol};
pub use error::{BenchError, Failure};
pub use mix::Mix;
pub use plan::Plan;
pub use report::Report;
pub use timings::Timings;
use xgate_server::kind::Kind;

/// A connection whose exchanges fail this many times in a row without an
/// answer (the gateway is down) stops.
const GIVE_UP_AFTER: u32 = 3;

/// Receipts written as they arrive, one per line.
type ReceiptFile = Mutex<std::io::BufWriter<std::fs::File>>;

/// What every connection of a run shares.
struct Shared {
    /// The pre-signed envelopes, by kind and sender.
    queues: Arc<presign::Queues>,
    report: Mutex<Report>,
    /// Exchanges finished, for the progress bar.
    done: AtomicU64,
    /// Set when the run's time is up.
    stop: Arc<AtomicBool>,
    receipts: Option<ReceiptFile>,
    timings: Option<Arc<Timings>>,
}

/// Runs `plan`; `progress` is told the count of exchanges as they finish.
///
/// # Errors
/// Keys or certificates that cannot be loaded, or no envelope to send.
pub fn run(plan: &Plan, progress: &(dyn Fn(u64) + Sync)) -> Result<Report, BenchError> {
    let queues = if plan.handshakes {
        Arc::new(presign::Queues::default())
    } else {
        presign::presign(plan)?
    };
    let receipts = match &plan.receipts {
        Some(path) => Some(Mutex::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|source| BenchError::Receipts {
                path: path.display().to_string(),
                source,
            })?,
        ))),
        None => None,
    };
    let timings = match &plan.timings {
        Some(path) => Some(Arc::new(Timings::create(path)?)),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let shared = Arc::new(Shared {
        queues,
        report: Mutex::new(Report::new(plan)),
        done: AtomicU64::new(0),
        stop: Arc::new(AtomicBool::new(false)),
        receipts,
        timings,
    });
    let protocol = if plan.http2 {
        Protocol::Auto
    } else {
        Protocol::Http1
    };
    let started = Instant::now();
    let drained = Arc::new(AtomicU64::new(0));
    runtime.block_on(async {
        let mut readers = Vec::new();
        if plan.drain {
            for agency in &plan.agencies {
                let client = Client::for_agency(&plan.pki, agency, &plan.url, protocol)?;
                readers.push(tokio::spawn(drain::drain(
                    client,
                    Arc::clone(&shared.stop),
                    Arc::clone(&drained),
                    shared.timings.clone(),
                )));
            }
        }
        let mut tasks = Vec::with_capacity(plan.connections);
        for c in 0..plan.connections {
            let connection = Connection::open(plan, c, protocol, Arc::clone(&shared))?;
            tasks.push(tokio::spawn(connection.run()));
        }
        while started.elapsed() < plan.duration && !tasks.iter().all(|t| t.is_finished()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            progress(shared.done.load(Ordering::Relaxed));
        }
        shared.stop.store(true, Ordering::Relaxed);
        for t in tasks.into_iter().chain(readers) {
            let _ = t.await;
        }
        Ok::<(), BenchError>(())
    })?;
    let elapsed = started.elapsed();
    let shared = Arc::try_unwrap(shared).map_err(|_| BenchError::Panicked("connection task"))?;
    if let (Some(file), Some(path)) = (shared.receipts, &plan.receipts) {
        let mut file = file
            .into_inner()
            .map_err(|_| BenchError::Panicked("connection task"))?;
        file.flush().map_err(|source| BenchError::Receipts {
            path: path.display().to_string(),
            source,
        })?;
    }
    if let Some(timings) = &shared.timings {
        timings.finish()?;
    }
    let mut report = shared
        .report
        .into_inner()
        .map_err(|_| BenchError::Panicked("connection task"))?;
    report.finish(elapsed, plan.drain.then(|| drained.load(Ordering::Relaxed)));
    Ok(report)
}

/// One connection's closed loop: send the next envelope of its schedule
/// when the previous answer is back (or, with a rate, when its turn comes).
struct Connection {
    client: Client,
    shared: Arc<Shared>,
    /// Kinds in the order this connection sends them, cycled.
    schedule: Vec<Kind>,
    /// Which agency this connection sends as (an index into the plan's).
    sender: usize,
    /// This connection's share of the rate, as a gap between sends.
    gap: Option<Duration>,
    handshakes: bool,
}

impl Connection {
    /// The `index`th connection of `plan`.
    fn open(
        plan: &Plan,
        index: usize,
        protocol: Protocol,
        shared: Arc<Shared>,
    ) -> Result<Connection, BenchError> {
        let sender = index % plan.agencies.len();
        let mut client =
            Client::for_agency(&plan.pki, &plan.agencies[sender], &plan.url, protocol)?;
        if plan.handshakes {
            client = client.without_resumption();
        }
        Ok(Connection {
            client,
            shared,
            schedule: plan.mix.schedule(),
            sender,
            gap: plan
                .rate
                .filter(|r| *r > 0.0)
                .map(|r| Duration::from_secs_f64(plan.connections as f64 / r)),
            handshakes: plan.handshakes,
        })
    }

    /// Sends until the run stops, the envelopes run out, or the gateway
    /// stops answering.
    async fn run(mut self) {
        let mut next = tokio::time::Instant::now();
        let mut failing = 0;
        for at in (0..self.schedule.len()).cycle() {
            // A gateway that is gone is not hammered with connects.
            if self.shared.stop.load(Ordering::Relaxed) || failing == GIVE_UP_AFTER {
                break;
            }
            if let Some(gap) = self.gap {
                tokio::time::sleep_until(next).await;
                next += gap;
            }
            let kind = self.schedule[at];
            let sent = Instant::now();
            let Some(outcome) = self.exchange(kind).await else {
                break;
            };
            let took = sent.elapsed();
            failing = match &outcome {
                Err(Failure::Transport) => failing + 1,
                _ => 0,
            };
            if let Ok(mut r) = self.shared.report.lock() {
                r.record((!self.handshakes).then_some(kind), took, outcome);
            }
            self.shared.done.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One exchange: `Ok`, or the error as the report counts it (status and
    /// code, or `transport`); `None` when no envelope of `kind` is left.
    async fn exchange(&mut self, kind: Kind) -> Option<Result<(), Failure>> {
        if self.handshakes {
            return Some(answered(handshake(&mut self.client).await, |_| Ok(())));
        }
        let jws = self.shared.queues.take(kind, self.sender)?;
        // The window the gateway's work for this envelope lies in, as wide
        // as the client can see it: taken around the whole exchange.
        let sent = SystemTime::now();
        let outcome = self.client.submit(jws).await;
        let received = SystemTime::now();
        let shared = &self.shared;
        Some(answered(outcome, |body| {
            acknowledged(shared, kind, body, sent, received)
        }))
    }
}

/// The outcome of an exchange as the report counts it; `ok` handles the
/// body of a success.
fn answered(
    outcome: Result<crate::client::Reply, ClientError>,
    ok: impl FnOnce(&[u8]) -> Result<(), Failure>,
) -> Result<(), Failure> {
    match outcome {
        Ok(reply) if reply.status.is_success() => ok(&reply.body),
        Ok(reply) => Err(Failure::Refused {
            status: reply.status.as_u16(),
            code: reply.error_code().unwrap_or_default(),
        }),
        Err(_) => Err(Failure::Transport),
    }
}

/// Keeps what the run keeps of an acknowledged exchange: its receipt and
/// its timings. A body that is not JSON counts as an error of its own.
fn acknowledged(
    shared: &Shared,
    kind: Kind,
    body: &[u8],
    sent: SystemTime,
    received: SystemTime,
) -> Result<(), Failure> {
    if shared.receipts.is_none() && shared.timings.is_none() {
        return Ok(());
    }
    let receipt: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| Failure::ReceiptNotJson)?;
    if let Some(timings) = &shared.timings {
        let id = receipt["id"].as_str().unwrap_or_default();
        timings.exchange(kind, id, sent, received);
    }
    keep_receipt(shared.receipts.as_ref(), &receipt)
}

/// Opens a new connection (a full handshake) and asks `GET /healthz` on it.
async fn handshake(client: &mut Client) -> Result<crate::client::Reply, ClientError> {
    client.connect().await?;
    client
        .request(http::Method::GET, "/healthz", None, Vec::new())
        .await
}

/// Writes a receipt as one line, if receipts are kept.
fn keep_receipt(file: Option<&ReceiptFile>, receipt: &serde_json::Value) -> Result<(), Failure> {
    let Some(file) = file else {
        return Ok(());
    };
    // Re-encoded so that each receipt is exactly one line.
    let mut file = file.lock().map_err(|_| Failure::ReceiptFile)?;
    writeln!(file, "{receipt}").map_err(|_| Failure::ReceiptFile)
}
