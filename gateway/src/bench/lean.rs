//! The lean loop: one keep-alive HTTP/1.1 connection that, per exchange,
//! writes a request prepared before the run and reads the answer, nothing
//! more.
//!
//! The TLS configuration is the agency client's own
//! ([`Client::tls_config`]: the federation CA as roots, the agency's
//! certificate, session resumption on reconnect), so the gateway sees the
//! same handshakes; only the HTTP layer is replaced, by a prepared buffer
//! and [`Answers`]. The body of an answer is parsed only when it is needed:
//! a refusal's error code, or a receipt to keep. Latencies and errors go to
//! the connection's own [`Report`], merged when the run ends.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use rustls_pki_types::ServerName;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::error::{BenchError, Failure};
use super::plan::Plan;
use super::report::Report;
use super::shared::{GIVE_UP_AFTER, Seat, Shared};
use super::wire::{Answers, Head, Prepared, WireError};
use crate::client::{Client, Protocol, error_code};

/// One connection of the lean loop.
pub struct Lean {
    seat: Seat,
    shared: Arc<Shared>,
    report: Report,
    tls: TlsConnector,
    server_name: ServerName<'static>,
    authority: String,
    stream: Option<TlsStream<TcpStream>>,
    answers: Answers,
}

impl Lean {
    /// The `index`th connection of `plan`, not yet connected.
    ///
    /// # Errors
    /// The agency's keys or certificates cannot be loaded, or the URL is
    /// not `https://host:port`.
    pub fn new(plan: &Plan, index: usize, shared: Arc<Shared>) -> Result<Lean, BenchError> {
        let seat = Seat::new(plan, index);
        let client = Client::for_agency(
            &plan.pki,
            plan.agencies.get(seat.sender).ok_or(BenchError::NoSender)?,
            &plan.url,
            Protocol::Http1,
        )?;
        Ok(Lean {
            seat,
            shared,
            report: Report::new(plan),
            tls: TlsConnector::from(client.tls_config()),
            server_name: client.server_name().clone(),
            authority: client.authority().to_owned(),
            stream: None,
            answers: Answers::default(),
        })
    }

    /// Opens the connection (TCP, then the mutual-TLS handshake).
    ///
    /// # Errors
    /// [`WireError::Io`] if either fails.
    pub async fn connect(&mut self) -> Result<(), WireError> {
        self.stream = None;
        self.answers.clear();
        let tcp = TcpStream::connect(&self.authority).await?;
        tcp.set_nodelay(true)?;
        let tls = self.tls.connect(self.server_name.clone(), tcp).await?;
        self.stream = Some(tls);
        Ok(())
    }

    /// Sends until the run stops, the envelopes run out, or the gateway
    /// stops answering; returns what this connection counted.
    pub async fn run(mut self) -> Report {
        let shared = Arc::clone(&self.shared);
        let mut failing = 0;
        while !shared.stopped() && failing < GIVE_UP_AFTER {
            let kind = self.seat.turn().await;
            let Some(request) = shared.queues.take(kind, self.seat.sender) else {
                break;
            };
            let sent_at = shared.keep.times().then(SystemTime::now);
            let sent = Instant::now();
            let answer = self.exchange(request).await;
            let took = sent.elapsed();
            let times = sent_at.map(|s| (s, SystemTime::now()));
            let close = matches!(&answer, Ok(head) if head.close);
            let outcome = match answer {
                Ok(head) if (200..300).contains(&head.status) => {
                    shared.keep.acknowledged(kind, self.answers.body(), times)
                }
                Ok(head) => Err(Failure::Refused {
                    status: head.status,
                    code: error_code(self.answers.body()).unwrap_or_default(),
                }),
                Err(_) => Err(Failure::Transport),
            };
            if close {
                self.stream = None;
            }
            failing = match outcome {
                Err(Failure::Transport) => failing + 1,
                _ => 0,
            };
            self.report.record(Some(kind), took, outcome);
            shared.count(self.seat.index);
        }
        self.report
    }

    /// Writes `request` and reads its answer, connecting first if needed;
    /// on any error the connection is dropped, to be opened again by the
    /// next exchange.
    async fn exchange(&mut self, request: &Prepared) -> Result<Head, WireError> {
        let outcome = self.try_exchange(request).await;
        if outcome.is_err() {
            self.stream = None;
            self.answers.clear();
        }
        outcome
    }

    async fn try_exchange(&mut self, request: &Prepared) -> Result<Head, WireError> {
        if self.stream.is_none() {
            self.connect().await?;
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(WireError::Closed { mid_answer: false });
        };
        stream.write_all(request.wire()).await?;
        stream.flush().await?;
        self.answers.next(stream).await
    }
}
