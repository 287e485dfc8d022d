//! Routes: turns each HTTP request into a call on the [`Gateway`] and each
//! outcome into a response. Every refusal, whichever stage made it, is
//! mapped to its status, code and JSON error body in one place, [`error`].
//!
//! ```text
//! POST /v1/envelopes                       submit (application/jose) -> 201 receipt
//! GET  /v1/inbox?after=I&limit=N           the caller's undelivered envelopes, oldest first
//! POST /v1/inbox/{id}/ack                  remove one (404 if not the caller's)
//! POST /v1/inbox/ack  {"ids":[...]}        remove a list -> {"acked":[...],"unknown":[...]}
//! GET  /v1/log/checkpoint                  the latest signed checkpoint (text/plain)
//! GET  /v1/log/entries/{index}             one entry
//! GET  /v1/log/proof/inclusion?index=I&size=N
//! GET  /v1/log/proof/consistency?from=M&to=N
//! GET  /v1/assets/{tag}                    state and custody chain with receipts
//! GET  /v1/assets?holder_agency=&person=&location=&status=&after=&limit=
//! GET  /v1/reconciliations/{id}            a reconciliation report
//! GET  /v1/reconciliations/stream          discrepancies and resolutions, live (SSE)
//! GET  /v1/medical/requests/{jti}[?requester=A]  a medical request, its grant, responses, review
//! GET  /v1/medical/responses/{index}       a medical response (still encrypted)
//! GET  /v1/reviews?after=&limit=           break-the-glass grants awaiting review
//! GET  /healthz  GET /metrics
//! ```
//!
//! Every route but `/healthz` and `/metrics` needs a registered, unrevoked
//! agency as the TLS identity, and takes one request from that agency's
//! rate limit (429 `rate_limited` with `Retry-After` past it). With
//! `crl_strict` and a CRL past its `nextUpdate`, every route but
//! `/metrics` is refused (`crl_stale`).

mod assets;
pub mod error;
pub mod fanout;
mod inbox;
mod medical;
mod stream;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;

use crate::kind::Kind;
use crate::logview;
use crate::pipeline::Gateway;
use crate::registry::AgencyId;
use crate::tls::{Identity, Refusal, Tls};
use error::{ApiError, Code};

/// The media type of a submitted envelope.
pub const JOSE: &str = "application/jose";

/// A response body: whole, or streamed (the reconciliation feed).
pub type Body = Either<Full<Bytes>, stream::EventBody>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Either::Left(Full::new(bytes.into()))
}

/// When a request's body must have arrived in full: the server sets it,
/// `header_timeout` after the request head, on every request it hands to
/// [`handle`]. A body still incomplete then is answered `408 body_timeout`
/// (a request in flight keeps its connection's slot, so a trickled body
/// must not keep one for long).
#[derive(Clone, Copy, Debug)]
pub struct BodyDeadline(pub tokio::time::Instant);

/// What every request handler can reach.
pub struct Context {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// TLS state, for revocation checks on open connections.
    pub tls: Arc<Tls>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Most envelopes per inbox page.
    pub inbox_page: usize,
    /// Set when the server stops, to end open streams.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// The reconciliation feed's one reader and its subscribers.
    pub streams: Arc<fanout::Hub>,
}

/// Answers one request from the connection whose identity is `identity`.
pub async fn handle(
    ctx: Arc<Context>,
    identity: Arc<Identity>,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let outcome = match (req.method(), segments.as_slice()) {
        // A gateway that refuses every request is not healthy.
        (&Method::GET, ["healthz"]) if ctx.tls.refuses_all() => Err(crl_stale()),
        (&Method::GET, ["healthz"]) => Ok(text(StatusCode::OK, "ok\n")),
        (&Method::GET, ["metrics"]) => metrics(&ctx).await,
        (_, ["healthz" | "metrics"]) => Err(not_allowed()),
        _ => match agency(&ctx, &identity) {
            Ok(sender) => match ctx.gateway.admit(&sender) {
                Ok(()) => route(&ctx, sender, &identity, req, &segments).await,
                Err(limited) => {
                    let e = error::rate_limited(&limited, &sender);
                    ctx.gateway.metrics.rejection(e.code.as_str());
                    let mut response = error_response(&e);
                    response
                        .headers_mut()
                        .insert(RETRY_AFTER, HeaderValue::from(limited.retry_after));
                    return response;
                }
            },
            Err(e) => Err(e),
        },
    };
    outcome.unwrap_or_else(|e| {
        ctx.gateway.metrics.rejection(e.code.as_str());
        error_response(&e)
    })
}

async fn route(
    ctx: &Arc<Context>,
    sender: AgencyId,
    identity: &Arc<Identity>,
    req: Request<Incoming>,
    segments: &[&str],
) -> Result<Response<Body>, ApiError> {
    let query = req.uri().query().unwrap_or("").to_owned();
    match (req.method().clone(), segments) {
        (Method::POST, ["v1", "envelopes"]) => submit(ctx, sender, req).await,
        (Method::GET, ["v1", "inbox"]) => inbox::page(ctx, sender, &query).await,
        (Method::POST, ["v1", "inbox", "ack"]) => inbox::ack_list(ctx, sender, req).await,
        (Method::POST, ["v1", "inbox", id, "ack"]) => inbox::ack_one(ctx, sender, id).await,
        (Method::GET, ["v1", "log", "checkpoint"]) => match ctx.gateway.log.latest_checkpoint() {
            Some(signed) => Ok(text(StatusCode::OK, &signed.note)),
            None => Err(ApiError::new(
                Code::NotFound,
                "the log has no checkpoint yet",
            )),
        },
        (Method::GET, ["v1", "log", "entries", index]) => {
            let index = number("index", index)?;
            let view = logview::entry(&ctx.gateway.log, index, "")?;
            Ok(json(StatusCode::OK, &view))
        }
        (Method::GET, ["v1", "log", "proof", "inclusion"]) => {
            let index = required(&query, "index")?;
            let size = optional(&query, "size")?;
            let view = logview::inclusion(&ctx.gateway.log, index, size, "")?;
            Ok(json(StatusCode::OK, &view))
        }
        (Method::GET, ["v1", "log", "proof", "consistency"]) => {
            let from = required(&query, "from")?;
            let to = optional(&query, "to")?;
            let view = logview::consistency(&ctx.gateway.log, from, to, "")?;
            Ok(json(StatusCode::OK, &view))
        }
        (Method::GET, ["v1", "assets"]) => assets::list(ctx, sender, &query).await,
        (Method::GET, ["v1", "assets", tag]) => assets::show(ctx, sender, tag).await,
        (Method::GET, ["v1", "reconciliations", "stream"]) => {
            stream::open(ctx, sender, Arc::clone(identity), req.headers(), &query).await
        }
        (Method::GET, ["v1", "reconciliations", id]) => assets::report(ctx, sender, id).await,
        (
            _,
            ["v1", "envelopes"]
            | ["v1", "inbox"]
            | ["v1", "inbox", "ack"]
            | ["v1", "inbox", _, "ack"],
        )
        | (
            _,
            ["v1", "log", "checkpoint"]
            | ["v1", "log", "entries", _]
            | ["v1", "log", "proof", "inclusion" | "consistency"],
        )
        | (_, ["v1", "assets"] | ["v1", "assets" | "reconciliations", _]) => Err(not_allowed()),
        (Method::GET, ["v1", "medical", "requests", jti]) => {
            medical::request(ctx, sender, jti, &query).await
        }
        (Method::GET, ["v1", "medical", "responses", index]) => {
            medical::response(ctx, sender, index).await
        }
        (Method::GET, ["v1", "reviews"]) => medical::reviews(ctx, sender, &query).await,
        (_, ["v1", "medical", "requests" | "responses", _] | ["v1", "reviews"]) => {
            Err(not_allowed())
        }
        _ => Err(ApiError::new(Code::NotFound, "no such resource")),
    }
}

async fn metrics(ctx: &Arc<Context>) -> Result<Response<Body>, ApiError> {
    // From counts kept as the state changes: a scrape reads no store.
    ctx.gateway.refresh_review_metrics();
    Ok(Response::builder()
        .header(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
        .body(full(ctx.gateway.metrics.render()))
        .unwrap_or_else(|_| Response::new(full(Bytes::new()))))
}

async fn submit(
    ctx: &Arc<Context>,
    sender: AgencyId,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let body = read_body(req, JOSE, ctx.max_body_bytes).await?;
    let gateway = &ctx.gateway;
    match gateway.submit(&sender, &body).await {
        Ok(accepted) => {
            let kind = accepted.kind.as_str();
            gateway.metrics.envelope(kind, "accepted");
            tracing::info!(agency = %sender, kind, log_index = accepted.receipt.log_index, "envelope accepted");
            Ok(json(StatusCode::CREATED, &accepted))
        }
        Err(refused) => {
            let kind = refused.kind.map_or("unknown", Kind::as_str);
            let e = ApiError::from(refused);
            gateway.metrics.envelope(kind, e.code.as_str());
            tracing::info!(agency = %sender, kind, code = e.code.as_str(), "envelope refused");
            Err(e)
        }
    }
}

/// The body of `req`, which must be of `media_type` and at most `limit`
/// bytes long (refused from its `Content-Length` before any of it is read),
/// and arrive by the request's [`BodyDeadline`], if it has one.
async fn read_body(
    req: Request<Incoming>,
    media_type: &str,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let sent = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if sent.as_deref() != Some(media_type) {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            format!("this body is sent as Content-Type: {media_type}"),
        ));
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        ApiError::new(
            Code::PayloadTooLarge,
            format!("the body is over the {limit}-byte limit"),
        )
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let deadline = req.extensions().get::<BodyDeadline>().copied();
    let collect = Limited::new(req.into_body(), limit).collect();
    let collected = match deadline {
        Some(BodyDeadline(at)) => tokio::time::timeout_at(at, collect).await.map_err(|_| {
            ApiError::new(
                Code::BodyTimeout,
                "the request body did not arrive in full within header_timeout_secs \
                 of the request head; the connection is closed",
            )
        })?,
        None => collect.await,
    };
    let body = collected
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                ApiError::new(Code::Malformed, "the request body could not be read")
            }
        })?
        .to_bytes();
    Ok(body)
}

/// The caller's agency, if it is registered and its certificate not revoked
/// (and, with `crl_strict`, the CRL not stale). Checked on every request
/// and again by open event streams whenever the CRL changes.
fn agency(ctx: &Context, identity: &Identity) -> Result<AgencyId, ApiError> {
    if ctx.tls.refuses_all() {
        return Err(crl_stale());
    }
    match identity {
        Identity::Agency { id, serial } => match ctx.tls.refuses(serial) {
            None => Ok(id.clone()),
            Some(Refusal::Revoked) => Err(ApiError::new(
                Code::UnknownAgency,
                format!("the TLS certificate of {id} has been revoked"),
            )),
            Some(Refusal::CrlStale) => Err(crl_stale()),
        },
        Identity::Unknown(reason) => Err(ApiError::new(Code::UnknownAgency, reason.clone())),
    }
}

fn crl_stale() -> ApiError {
    ApiError::new(
        Code::CrlStale,
        "the gateway's CRL is past its nextUpdate, so revocations cannot be checked; \
         every request is refused until the operator installs a fresh CRL",
    )
}

/// Runs blocking work (storage, group commit) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::new(Code::Internal, "internal error; see the gateway's log"))
}

fn required(query: &str, name: &str) -> Result<u64, ApiError> {
    optional(query, name)?.ok_or_else(|| {
        ApiError::new(
            Code::Malformed,
            format!("query parameter {name} is required"),
        )
    })
}

fn optional(query: &str, name: &str) -> Result<Option<u64>, ApiError> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| number(name, v))
        .transpose()
}

fn number(name: &str, value: &str) -> Result<u64, ApiError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::new(
            Code::Malformed,
            format!("{name} must be a non-negative integer"),
        ));
    }
    value
        .parse()
        .map_err(|_| ApiError::new(Code::Malformed, format!("{name} is too large")))
}

fn not_allowed() -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        "method not allowed on this resource",
    )
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(full(body))
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(full(body.to_owned()))
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

/// The response for a refused request.
pub fn error_response(e: &ApiError) -> Response<Body> {
    Response::builder()
        .status(e.code.status())
        .header(CONTENT_TYPE, "application/json")
        .body(full(e.body()))
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}
