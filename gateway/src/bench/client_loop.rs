//! The loop over the agency client ([`Client`]: hyper and rustls), for what
//! the lean loop does not speak: HTTP/2 (`--http2`) and new connections
//! (`--handshakes`, each exchange a full mutual-TLS handshake and `GET
//! /healthz`). Like the lean loop it keeps its own [`Report`].

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::error::{BenchError, Failure};
use super::plan::Plan;
use super::report::Report;
use super::shared::{GIVE_UP_AFTER, Seat, Shared};
use crate::client::{Client, ClientError, Reply};

/// One connection's closed loop over the agency client.
pub struct ClientLoop {
    client: Client,
    seat: Seat,
    shared: Arc<Shared>,
    report: Report,
    handshakes: bool,
}

impl ClientLoop {
    /// The `index`th connection of `plan`.
    ///
    /// # Errors
    /// The agency's keys or certificates cannot be loaded, or the URL is
    /// not `https://host:port`.
    pub fn new(plan: &Plan, index: usize, shared: Arc<Shared>) -> Result<ClientLoop, BenchError> {
        let seat = Seat::new(plan, index);
        let mut client = Client::for_agency(
            &plan.pki,
            plan.agencies.get(seat.sender).ok_or(BenchError::NoSender)?,
            &plan.url,
            plan.protocol(),
        )?;
        if plan.handshakes {
            client = client.without_resumption();
        }
        Ok(ClientLoop {
            client,
            seat,
            shared,
            report: Report::new(plan),
            handshakes: plan.handshakes,
        })
    }

    /// Sends until the run stops, the envelopes run out, or the gateway
    /// stops answering; returns what this connection counted.
    pub async fn run(mut self) -> Report {
        let mut failing = 0;
        while !self.shared.stopped() && failing < GIVE_UP_AFTER {
            let kind = self.seat.turn().await;
            let sent = Instant::now();
            let Some(outcome) = self.exchange(kind).await else {
                break;
            };
            let took = sent.elapsed();
            failing = match &outcome {
                Err(Failure::Transport) => failing + 1,
                _ => 0,
            };
            self.report
                .record((!self.handshakes).then_some(kind), took, outcome);
            self.shared.count(self.seat.index);
        }
        self.report
    }

    /// One exchange: `Ok`, or the error as the report counts it (status and
    /// code, or `transport`); `None` when no envelope of `kind` is left.
    async fn exchange(&mut self, kind: xgate_server::kind::Kind) -> Option<Result<(), Failure>> {
        if self.handshakes {
            return Some(answered(handshake(&mut self.client).await, |_| Ok(())));
        }
        let shared = Arc::clone(&self.shared);
        let request = shared.queues.take(kind, self.seat.sender)?;
        // The envelope is a compact JWS: ASCII.
        let jws = String::from_utf8_lossy(request.body()).into_owned();
        // The window the gateway's work for this envelope lies in, as wide
        // as the client can see it: taken around the whole exchange.
        let sent = SystemTime::now();
        let outcome = self.client.submit(jws).await;
        let received = SystemTime::now();
        Some(answered(outcome, |body| {
            shared.keep.acknowledged(kind, body, Some((sent, received)))
        }))
    }
}

/// The outcome of an exchange as the report counts it; `ok` handles the
/// body of a success.
fn answered(
    outcome: Result<Reply, ClientError>,
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

/// Opens a new connection (a full handshake) and asks `GET /healthz` on it.
async fn handshake(client: &mut Client) -> Result<Reply, ClientError> {
    client.connect().await?;
    client
        .request(http::Method::GET, "/healthz", None, Vec::new())
        .await
}
