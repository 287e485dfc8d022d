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
//! ends early instead of spinning on refused connects.

pub mod drain;
pub mod mix;
pub mod report;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::{Client, ClientError, Protocol};
use crate::registry::AgencyId;
pub use mix::Mix;
pub use report::Report;

/// A connection whose exchanges fail this many times in a row without an
/// answer (the gateway is down) stops.
const GIVE_UP_AFTER: u32 = 3;

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The gateway, as https://host:port.
    pub url: String,
    /// The PKI directory with the agencies' keys and `registry.toml`.
    pub pki: PathBuf,
    /// The agencies sending (each sends to the next).
    pub agencies: Vec<AgencyId>,
    /// Connections, each one task.
    pub connections: usize,
    /// How long to run.
    pub duration: Duration,
    /// The kinds and their shares.
    pub mix: Mix,
    /// Most envelopes to sign in advance.
    pub envelopes: usize,
    /// Offer HTTP/2 (ALPN); otherwise HTTP/1.1 only.
    pub http2: bool,
    /// Exchanges per second over all connections; `None`: as fast as the
    /// gateway answers. Paced per connection, never above the rate.
    pub rate: Option<f64>,
    /// Measure handshakes instead: every exchange opens a new connection
    /// (a full mutual-TLS handshake, no session resumption) and sends
    /// `GET /healthz` on it.
    pub handshakes: bool,
    /// Where to write every receipt, one JSON object per line, so a test
    /// (or an auditor) can check afterwards what the gateway acknowledged.
    pub receipts: Option<PathBuf>,
    /// Read and acknowledge every agency's inbox while the load runs
    /// ([`drain`]), as receiving agencies do.
    pub drain: bool,
}

/// Receipts written as they arrive, one per line; shared by the
/// connections.
type ReceiptFile = Option<Arc<Mutex<std::io::BufWriter<std::fs::File>>>>;

/// Runs `plan`; `progress` is told the count of exchanges as they finish.
///
/// # Errors
/// Keys or certificates that cannot be loaded, or no envelope to send.
pub fn run(plan: &Plan, progress: &(dyn Fn(u64) + Sync)) -> Result<Report, String> {
    let queues = if plan.handshakes {
        Arc::new(mix::Queues::default())
    } else {
        mix::presign(plan)?
    };
    let receipts: ReceiptFile = match &plan.receipts {
        Some(path) => Some(Arc::new(Mutex::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
        )))),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let report = Arc::new(Mutex::new(Report::new(plan)));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
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
                let client = Client::for_agency(&plan.pki, agency, &plan.url, protocol)
                    .map_err(|e| e.to_string())?;
                readers.push(tokio::spawn(drain::drain(
                    client,
                    Arc::clone(&stop),
                    Arc::clone(&drained),
                )));
            }
        }
        let mut tasks = Vec::with_capacity(plan.connections);
        for c in 0..plan.connections {
            let agency = &plan.agencies[c % plan.agencies.len()];
            let mut client = Client::for_agency(&plan.pki, agency, &plan.url, protocol)
                .map_err(|e| e.to_string())?;
            let handshakes = plan.handshakes;
            if handshakes {
                client = client.without_resumption();
            }
            let (queues, report, done, stop, receipts) = (
                Arc::clone(&queues),
                Arc::clone(&report),
                Arc::clone(&done),
                Arc::clone(&stop),
                receipts.clone(),
            );
            let schedule = plan.mix.schedule();
            let sender = c % plan.agencies.len();
            // Each connection's share of the rate, as a gap between sends.
            let gap = plan
                .rate
                .filter(|r| *r > 0.0)
                .map(|r| Duration::from_secs_f64(plan.connections as f64 / r));
            tasks.push(tokio::spawn(async move {
                let mut next = tokio::time::Instant::now();
                let mut failing = 0;
                for kind in schedule.iter().cycle() {
                    // A gateway that is gone is not hammered with connects.
                    if stop.load(Ordering::Relaxed) || failing == GIVE_UP_AFTER {
                        break;
                    }
                    if let Some(gap) = gap {
                        tokio::time::sleep_until(next).await;
                        next += gap;
                    }
                    let sent = Instant::now();
                    let outcome = if handshakes {
                        handshake(&mut client).await
                    } else {
                        let Some(jws) = queues.take(*kind, sender) else {
                            break;
                        };
                        client.submit(jws).await
                    };
                    let took = sent.elapsed();
                    let outcome = match outcome {
                        Ok(reply) if reply.status.is_success() => {
                            keep_receipt(receipts.as_deref(), &reply.body)
                        }
                        Ok(reply) => Err(format!(
                            "{} {}",
                            reply.status.as_u16(),
                            reply.error_code().unwrap_or_default()
                        )),
                        Err(_) => Err("transport".to_owned()),
                    };
                    failing = match &outcome {
                        Err(e) if e == "transport" => failing + 1,
                        _ => 0,
                    };
                    if let Ok(mut r) = report.lock() {
                        r.record((!handshakes).then_some(*kind), took, outcome);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        while started.elapsed() < plan.duration && !tasks.iter().all(|t| t.is_finished()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            progress(done.load(Ordering::Relaxed));
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks.into_iter().chain(readers) {
            let _ = t.await;
        }
        Ok::<(), String>(())
    })?;
    let elapsed = started.elapsed();
    if let Some(file) = receipts {
        let mut file = file
            .lock()
            .map_err(|_| "a connection task failed".to_owned())?;
        file.flush()
            .map_err(|e| format!("cannot write the receipts: {e}"))?;
    }
    let mut report = Arc::try_unwrap(report)
        .map_err(|_| "the run did not finish".to_owned())?
        .into_inner()
        .map_err(|_| "a connection task failed".to_owned())?;
    report.finish(elapsed, plan.drain.then(|| drained.load(Ordering::Relaxed)));
    Ok(report)
}

/// Opens a new connection (a full handshake) and asks `GET /healthz` on it.
async fn handshake(client: &mut Client) -> Result<crate::client::Reply, ClientError> {
    client.connect().await?;
    client
        .request(http::Method::GET, "/healthz", None, Vec::new())
        .await
}

/// Writes a receipt as one line, if receipts are kept. A body that is not
/// JSON counts as an error of its own.
fn keep_receipt(
    file: Option<&Mutex<std::io::BufWriter<std::fs::File>>>,
    body: &[u8],
) -> Result<(), String> {
    let Some(file) = file else {
        return Ok(());
    };
    // Re-encoded so that each receipt is exactly one line.
    let receipt: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "receipt not JSON".to_owned())?;
    let mut file = file.lock().map_err(|_| "receipt file".to_owned())?;
    writeln!(file, "{receipt}").map_err(|_| "receipt file".to_owned())
}
