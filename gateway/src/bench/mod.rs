//! `xgate bench`: a load generator that measures a gateway with as little
//! of the machine as it can, and says how much it took.
//!
//! It signs every envelope before the run and prepares each as the whole
//! request it will write ([`presign`], [`wire::Prepared`]), then drives the
//! gateway from N keep-alive connections, each sending its next envelope as
//! soon as the previous one's answer is back (closed loop), with the
//! envelope kinds mixed by ratio ([`mix`]). Over HTTP/1.1 (the default)
//! each connection is the lean loop ([`lean`]): it writes the prepared
//! bytes and reads the answer's status, headers and exactly
//! `Content-Length` bytes of body, on the agency client's own TLS
//! configuration; HTTP/2 (`--http2`) and new connections (`--handshakes`)
//! go through the agency client ([`client_loop`]). Each connection counts
//! in a report of its own, merged at the end: throughput, latency
//! percentiles from an HDR histogram (each latency is one durable,
//! receipted exchange) and errors by status and code ([`report`]), beside
//! the CPU the generator, the server and the whole machine used over the
//! run ([`cpu`]). A connection that gets no answer three times in a row
//! (the gateway is down) stops, so the run ends early instead of spinning
//! on refused connects. With `--receipts` and `--timings` it keeps each
//! receipt and when each acknowledged request was sent and answered
//! ([`keep`], [`timings`]).

pub mod client_loop;
pub mod cpu;
pub mod drain;
pub mod error;
pub mod keep;
pub mod lean;
pub mod mix;
pub mod plan;
pub mod presign;
pub mod report;
pub mod shared;
pub mod timings;
pub mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::client::{Client, Protocol};
use client_loop::ClientLoop;
pub use error::{BenchError, Failure};
use keep::Keep;
use lean::Lean;
pub use mix::Mix;
pub use plan::Plan;
pub use report::Report;
use shared::Shared;
pub use timings::Timings;

/// Runs `plan`; `progress` is told the count of exchanges as they finish.
///
/// # Errors
/// Keys or certificates that cannot be loaded, or no envelope to send.
pub fn run(plan: &Plan, progress: &(dyn Fn(u64) + Sync)) -> Result<Report, BenchError> {
    // The URL and the first sender's files, checked before any signing.
    let first = plan.agencies.first().ok_or(BenchError::NoSender)?;
    let probe = Client::for_agency(&plan.pki, first, &plan.url, Protocol::Http1)?;
    let queues = if plan.handshakes {
        Arc::new(presign::Queues::default())
    } else {
        presign::presign(plan, probe.authority())?
    };
    let keep = Keep::create(plan)?;
    let runtime = runtime(plan.threads).map_err(BenchError::Runtime)?;
    let shared = Arc::new(Shared::new(queues, keep, plan.connections));
    let drained = Arc::new(AtomicU64::new(0));
    let (reports, elapsed, cpu) = runtime.block_on(async {
        let mut leans = Vec::new();
        let mut others = Vec::new();
        for c in 0..plan.connections {
            if plan.lean() {
                leans.push(Lean::new(plan, c, Arc::clone(&shared))?);
            } else {
                others.push(ClientLoop::new(plan, c, Arc::clone(&shared))?);
            }
        }
        // Connected before the clock starts, so the window holds exchanges
        // only; a connection that fails here tries again in its loop.
        join_all(leans.iter_mut().map(Lean::connect)).await;
        let mut readers = Vec::new();
        if plan.drain {
            for agency in &plan.agencies {
                let client = Client::for_agency(&plan.pki, agency, &plan.url, plan.protocol())?;
                readers.push(tokio::spawn(drain::drain(
                    client,
                    Arc::clone(&shared.stop),
                    Arc::clone(&drained),
                    shared.keep.timings(),
                )));
            }
        }
        let servers = if plan.server_pids.is_empty() {
            cpu::server_pids(&plan.url)
        } else {
            plan.server_pids.clone()
        };
        let window = cpu::Window::start(&servers);
        let started = Instant::now();
        let mut tasks: Vec<tokio::task::JoinHandle<Report>> =
            leans.into_iter().map(|c| tokio::spawn(c.run())).collect();
        tasks.extend(others.into_iter().map(|c| tokio::spawn(c.run())));
        while started.elapsed() < plan.duration && !tasks.iter().all(|t| t.is_finished()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            progress(shared.done());
        }
        shared
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut reports = Vec::with_capacity(tasks.len());
        for t in tasks {
            reports.push(
                t.await
                    .map_err(|_| BenchError::Panicked("connection task"))?,
            );
        }
        for r in readers {
            let _ = r.await;
        }
        let elapsed = started.elapsed();
        Ok::<_, BenchError>((reports, elapsed, window.finish()))
    })?;
    let shared = Arc::try_unwrap(shared).map_err(|_| BenchError::Panicked("connection task"))?;
    shared.keep.finish(plan)?;
    let mut report = Report::new(plan);
    for r in &reports {
        report.merge(r);
    }
    report.finish(
        elapsed,
        plan.drain.then(|| drained.load(Ordering::Relaxed)),
        Some(cpu),
    );
    Ok(report)
}

/// The generator's runtime: with one thread, every connection runs on the
/// calling thread (no worker threads, no work stealing).
fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}
