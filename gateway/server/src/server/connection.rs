//! One connection's life: the TLS handshake, the caller's identity, and
//! HTTP/1.1 or HTTP/2 served under these clocks:
//!
//! - the first request's head must arrive within `header_timeout` of the
//!   connection getting its slot, TLS handshake included, so a client that
//!   connects and sends nothing, stops half-way through the handshake or
//!   the HTTP/2 preface, or opens HTTP/2 and never asks anything, holds a
//!   slot no longer than that;
//! - each request's body must arrive in full within `header_timeout` of its
//!   head, or the request is answered `408 body_timeout` and the connection
//!   closed (the rest of the body may still be coming): a request in flight
//!   keeps its slot from eviction, so without this a client trickling a
//!   body would hold a slot for the whole `request_timeout`, and then
//!   start another;
//! - a connection with no request in flight is closed `idle_timeout` after
//!   its last response ended (HTTP/1.1 may be closed sooner: hyper times
//!   the wait for the next request head with `header_timeout`, from the end
//!   of the previous response);
//! - every connection is closed gracefully `max_connection_age` after it
//!   opened;
//! - the table may need its slot (see [`super::table`]).
//!
//! hyper has no idle timeout for HTTP/2, so requests are counted here: the
//! service marks one started when hyper hands it over, and ended when its
//! response body is done or dropped (so a streamed response, the
//! reconciliation feed, keeps its connection busy while it lasts). HTTP/2
//! keep-alive pings (configured on the builder) find dead peers under such
//! long responses.
//!
//! A graceful close is hyper's (`GOAWAY` on HTTP/2; on HTTP/1.1 the
//! connection closes after the response in flight). A peer that never lets
//! it finish (HTTP/2 waits for the client to acknowledge a ping) is cut
//! [`LINGER`] after it last had nothing in flight, and at the latest
//! `request_timeout` after the close began.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::table::{Activity, Conn, Eviction, InFlight};
use crate::http::error::{ApiError, Code};
use crate::http::{ApiState, BodyDeadline, ResponseBody, error_response, handle};
use crate::metrics::Metrics;
use crate::registry::AgencyId;
use crate::tls::{Identity, identify};

/// How long a closing connection with nothing in flight gets to finish its
/// goodbye (HTTP/2's `GOAWAY` and ping) before it is cut.
const LINGER: Duration = Duration::from_secs(1);

/// The clocks of every connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clocks {
    /// TLS handshake plus the first request's head.
    pub header_timeout: Duration,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// Longest a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// Longest a connection may stay open at all.
    pub max_age: Duration,
}

/// Serves one accepted connection until it closes.
pub(crate) async fn serve(
    tcp: TcpStream,
    conn: Conn,
    ctx: Arc<ApiState>,
    builder: Arc<Builder<TokioExecutor>>,
    clocks: Clocks,
) {
    let opened = Instant::now();
    let metrics = &ctx.gateway.metrics;
    let acceptor = TlsAcceptor::from(ctx.tls.config());
    let handshake = tokio::time::timeout_at(opened + clocks.header_timeout, acceptor.accept(tcp));
    let tls = tokio::select! {
        done = handshake => match done {
            Ok(Ok(tls)) => tls,
            // Refused certificates end here: rustls has already sent the
            // alert; there is no HTTP to answer.
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                metrics.handshake("failed");
                return;
            }
            Err(_) => {
                metrics.handshake("timeout");
                metrics.connection_closed("header_timeout");
                return;
            }
        },
        why = conn.evicted() => {
            closed_by(metrics, why);
            return;
        }
    };
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    metrics.handshake(if resumed { "resumed" } else { "full" });
    let identity = {
        let (_, session) = tls.get_ref();
        match session.peer_certificates().and_then(|c| c.first()) {
            Some(cert) => identify(cert, &ctx.gateway.registry),
            None => Identity::Unknown("no client certificate".into()),
        }
    };
    let agency = match &identity {
        Identity::Agency { id, .. } => Some(id.clone()),
        // A peer gateway's connections are not an agency's to cap.
        Identity::Gateway { .. } | Identity::Unknown(_) => None,
    };
    // Past its agency's cap the connection is still served, but only to
    // answer its first request with 429 and close: a clear refusal the
    // client can act on, and its slot stays evictable until then.
    let refusal = match conn.identified(agency.clone()) {
        Ok(()) => None,
        Err(open) => {
            metrics.connection_closed("agency_limit");
            Some(too_many_connections(agency.as_ref(), open))
        }
    };
    metrics.connection(1);
    let _open = OpenConnection(Arc::clone(&ctx));
    let closes_after_first = refusal.is_some();
    let service = {
        let ctx = Arc::clone(&ctx);
        let identity = Arc::new(identity);
        let requests = conn.requests();
        service_fn(move |mut req: Request<Incoming>| {
            let in_flight = requests.start();
            let requests = requests.clone();
            let ctx = Arc::clone(&ctx);
            let identity = Arc::clone(&identity);
            let refusal = refusal.clone();
            let request_timeout = clocks.request_timeout;
            req.extensions_mut()
                .insert(BodyDeadline(Instant::now() + clocks.header_timeout));
            async move {
                let version = req.version();
                let mut response = match refusal {
                    Some(e) => refuse(&ctx, &e, version),
                    None => answer(Arc::clone(&ctx), identity, req, request_timeout).await,
                };
                // Only a body that missed its deadline is answered 408.
                if response.status() == StatusCode::REQUEST_TIMEOUT {
                    ctx.gateway.metrics.connection_closed("body_timeout");
                    requests.close_when_free();
                    close_after(&mut response, version);
                }
                Ok::<_, Infallible>(response.map(|body| Tracked { body, in_flight }))
            }
        })
    };
    let http = builder.serve_connection(TokioIo::new(tls), service);
    let closed = |reason| metrics.connection_closed(reason);
    drive(http, &conn, &closed, clocks, opened, closes_after_first).await;
}

/// Polls the HTTP connection until it ends or one of its clocks runs out;
/// `closed` counts a close by its reason.
pub(super) async fn drive<C>(
    http: C,
    conn: &Conn,
    closed: &(dyn Fn(&'static str) + Sync),
    clocks: Clocks,
    opened: Instant,
    closes_after_first: bool,
) where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    tokio::pin!(http);
    let mut closing = None;
    loop {
        let changed = conn.changed();
        let state = Conn::activity(conn);
        let now = Instant::now();
        let deadline = match next(&state, &clocks, opened, closing, closes_after_first, now) {
            Step::Wait(deadline) => deadline,
            Step::Close(reason) => {
                if let Some(reason) = reason {
                    closed(reason);
                }
                http.as_mut().graceful_shutdown();
                closing = Some(now);
                continue;
            }
            Step::Cut(reason) => {
                if let Some(reason) = reason {
                    closed(reason);
                }
                return;
            }
        };
        tokio::select! {
            done = http.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(deadline) => {}
            () = changed => {}
        }
    }
}

/// What a connection does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Nothing until this instant, or until its activity changes.
    Wait(Instant),
    /// Begin a graceful close, counted under this reason (if any).
    Close(Option<&'static str>),
    /// Drop it now, counted under this reason (if any).
    Cut(Option<&'static str>),
}

/// Decides from a connection's activity; `closing` is when its graceful
/// close began, if it has.
fn next(
    a: &Activity,
    clocks: &Clocks,
    opened: Instant,
    closing: Option<Instant>,
    closes_after_first: bool,
    now: Instant,
) -> Step {
    let free = a.in_flight == 0;
    if let Some(began) = closing {
        // A slot someone needs is not held for a goodbye.
        if free && matches!(a.eviction, Some(Eviction::Full | Eviction::Handshakes)) {
            return Step::Cut(None);
        }
        let cut_at = if free {
            began.max(a.free_since) + LINGER
        } else {
            began + clocks.request_timeout + LINGER
        };
        return if now >= cut_at {
            Step::Cut(None)
        } else {
            Step::Wait(cut_at)
        };
    }
    match a.eviction {
        Some(why @ (Eviction::Full | Eviction::Handshakes)) if free => {
            return Step::Cut(Some(why.label()));
        }
        // A request came in just before the eviction: let it finish.
        Some(why @ (Eviction::Full | Eviction::Handshakes)) => {
            return Step::Close(Some(why.label()));
        }
        Some(Eviction::Shutdown) => return Step::Close(None),
        None => {}
    }
    let aged_at = opened + clocks.max_age;
    if free && a.requests == 0 {
        let first_by = opened + clocks.header_timeout;
        return if now >= first_by {
            Step::Cut(Some("header_timeout"))
        } else {
            Step::Wait(first_by.min(aged_at))
        };
    }
    if free && (closes_after_first || a.close_when_free) {
        // Counted as `agency_limit` when it was refused, as `body_timeout`
        // when its body missed the deadline.
        return Step::Close(None);
    }
    if now >= aged_at {
        return Step::Close(Some("max_age"));
    }
    if free {
        let idle_at = a.free_since + clocks.idle_timeout;
        if now >= idle_at {
            return Step::Close(Some("idle_timeout"));
        }
        return Step::Wait(idle_at.min(aged_at));
    }
    Step::Wait(aged_at)
}

fn closed_by(metrics: &Metrics, why: Eviction) {
    if let Some(reason) = eviction_reason(why) {
        metrics.connection_closed(reason);
    }
}

/// The label a connection told to close is counted under, if any: closing
/// for a shutdown is not something to alert on.
pub(super) fn eviction_reason(why: Eviction) -> Option<&'static str> {
    (why != Eviction::Shutdown).then(|| why.label())
}

/// Answers one request, within `request_timeout`.
async fn answer(
    ctx: Arc<ApiState>,
    identity: Arc<Identity>,
    req: Request<Incoming>,
    request_timeout: Duration,
) -> Response<ResponseBody> {
    tokio::time::timeout(request_timeout, handle(ctx, identity, req))
        .await
        .unwrap_or_else(|_| {
            error_response(&ApiError::new(
                Code::Unavailable,
                "the request took too long; it may or may not have been applied",
            ))
        })
}

fn too_many_connections(agency: Option<&AgencyId>, open: usize) -> ApiError {
    let who = agency.map_or_else(|| "this certificate".to_owned(), |a| format!("agency {a}"));
    ApiError::new(
        Code::TooManyConnections,
        format!(
            "{who} already has {open} connections open, the most one agency may hold \
             (max_connections_per_agency); send requests on those, or close some"
        ),
    )
}

/// The refusal of a connection past its agency's cap; on HTTP/1.1 it says
/// the connection closes.
fn refuse(ctx: &ApiState, e: &ApiError, version: Version) -> Response<ResponseBody> {
    ctx.gateway.metrics.rejection(e.code.as_str());
    let mut response = error_response(e);
    close_after(&mut response, version);
    response
}

/// On HTTP/1.1, says in `response` that the connection closes after it
/// (HTTP/2 closes with the connection's `GOAWAY`).
fn close_after(response: &mut Response<ResponseBody>, version: Version) {
    if version < Version::HTTP_2 {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
}

/// A response body that keeps its request in flight until it is done or
/// dropped.
pub(super) struct Tracked<B = ResponseBody> {
    pub(super) body: B,
    #[allow(dead_code)] // held for its Drop
    pub(super) in_flight: InFlight,
}

impl<B: hyper::body::Body<Data = Bytes> + Unpin> hyper::body::Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Counts a connection as open from its handshake until its task ends,
/// however it ends.
struct OpenConnection(Arc<ApiState>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.gateway.metrics.connection(-1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOCKS: Clocks = Clocks {
        header_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        max_age: Duration::from_secs(3600),
    };

    fn activity(in_flight: usize, requests: u64, free_since: Instant) -> Activity {
        Activity {
            in_flight,
            requests,
            free_since,
            eviction: None,
            close_when_free: false,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_connection_that_never_asks_is_cut_at_the_header_timeout() {
        let t0 = Instant::now();
        let a = activity(0, 0, t0);
        assert_eq!(
            next(&a, &CLOCKS, t0, None, false, t0 + secs(1)),
            Step::Wait(t0 + secs(10))
        );
        assert_eq!(
            next(&a, &CLOCKS, t0, None, false, t0 + secs(10)),
            Step::Cut(Some("header_timeout"))
        );
    }

    #[test]
    fn an_idle_connection_closes_after_the_idle_timeout_and_a_busy_one_does_not() {
        let t0 = Instant::now();
        let idle = activity(0, 3, t0 + secs(5));
        assert_eq!(
            next(&idle, &CLOCKS, t0, None, false, t0 + secs(6)),
            Step::Wait(t0 + secs(65))
        );
        assert_eq!(
            next(&idle, &CLOCKS, t0, None, false, t0 + secs(65)),
            Step::Close(Some("idle_timeout"))
        );
        let busy = activity(1, 3, t0 + secs(5));
        assert_eq!(
            next(&busy, &CLOCKS, t0, None, false, t0 + secs(600)),
            Step::Wait(t0 + secs(3600))
        );
        assert_eq!(
            next(&busy, &CLOCKS, t0, None, false, t0 + secs(3600)),
            Step::Close(Some("max_age"))
        );
    }

    #[test]
    fn a_closing_connection_is_cut_once_its_goodbye_had_time() {
        let t0 = Instant::now();
        let began = t0 + secs(100);
        let free = activity(0, 1, t0 + secs(99));
        assert_eq!(
            next(&free, &CLOCKS, t0, Some(began), false, began),
            Step::Wait(began + LINGER)
        );
        let busy = activity(1, 1, t0);
        assert_eq!(
            next(&busy, &CLOCKS, t0, Some(began), false, began + secs(5)),
            Step::Wait(began + secs(30) + LINGER)
        );
        assert_eq!(
            next(&busy, &CLOCKS, t0, Some(began), false, began + secs(31)),
            Step::Cut(None)
        );
    }

    #[test]
    fn an_evicted_connection_is_cut_unless_a_request_is_in_flight() {
        let t0 = Instant::now();
        let mut a = activity(0, 1, t0);
        a.eviction = Some(Eviction::Full);
        assert_eq!(
            next(&a, &CLOCKS, t0, None, false, t0),
            Step::Cut(Some("evicted"))
        );
        a.in_flight = 1;
        assert_eq!(
            next(&a, &CLOCKS, t0, None, false, t0),
            Step::Close(Some("evicted"))
        );
        a.eviction = Some(Eviction::Shutdown);
        assert_eq!(next(&a, &CLOCKS, t0, None, false, t0), Step::Close(None));
    }

    #[test]
    fn a_connection_whose_body_timed_out_closes_once_nothing_is_in_flight() {
        let t0 = Instant::now();
        let mut a = activity(1, 1, t0);
        a.close_when_free = true;
        assert_eq!(
            next(&a, &CLOCKS, t0, None, false, t0),
            Step::Wait(t0 + secs(3600))
        );
        a.in_flight = 0;
        assert_eq!(next(&a, &CLOCKS, t0, None, false, t0), Step::Close(None));
    }

    #[test]
    fn a_refused_connection_closes_once_its_refusal_is_sent() {
        let t0 = Instant::now();
        let answered = activity(0, 1, t0);
        assert_eq!(
            next(&answered, &CLOCKS, t0, None, true, t0),
            Step::Close(None)
        );
    }
}
