//! Routes: turns each HTTP request into a call on the
//! [`Gateway`](crate::pipeline::Gateway) and each
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
//! GET  /v1/outbox?after=&limit=            the caller's envelopes to agencies of other gateways
//! GET  /v1/contracts                       the contracts in force (the policy's hash and each contract)
//! GET  /v1/contracts/explain/{index}       which contracts fired for an entry, and why
//! POST /v1/forward                         a peer gateway's envelopes (its certificate only)
//! POST /witness/add-checkpoint             C2SP tlog-witness, for a peer gateway's log (its certificate only)
//! GET  /healthz  GET /metrics
//! ```
//!
//! Every route but `/healthz`, `/metrics`, `/v1/forward` and
//! `/witness/add-checkpoint` needs a registered, unrevoked agency this
//! gateway serves as the TLS identity (those two a registered, unrevoked
//! peer gateway), and takes one request from that agency's
//! rate limit (429 `rate_limited` with `Retry-After` past it). With
//! `crl_strict` and a CRL past its `nextUpdate`, every route but
//! `/metrics` is refused (`crl_stale`).

mod api_state;
mod assets;
mod caller;
pub mod error;
pub mod fanout;
mod forward;
mod inbox;
mod medical;
mod request;
mod response;
mod stream;
mod witness;

use std::sync::Arc;

use http::header::{HeaderValue, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

pub use api_state::ApiState;
pub use request::BodyDeadline;
pub use response::{ResponseBody, error_response};

use crate::acts::explain::explain;
use crate::kind::Kind;
use crate::logview;
use crate::registry::AgencyId;
use crate::tls::Identity;
use caller::{agency, crl_stale};
use error::{ApiError, Code};
use request::{blocking, number, optional, read_body, required};
use response::{full, json, text, with_body};

/// The media type of a submitted envelope.
pub const JOSE: &str = "application/jose";

/// Answers one request from the connection whose identity is `identity`.
pub async fn handle(
    ctx: Arc<ApiState>,
    identity: Arc<Identity>,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let outcome = match (req.method(), segments.as_slice()) {
        // A gateway that refuses every request is not healthy.
        (&Method::GET, ["healthz"]) if ctx.tls.refuses_all() => Err(crl_stale()),
        (&Method::GET, ["healthz"]) => Ok(text(StatusCode::OK, "ok\n")),
        (&Method::GET, ["metrics"]) => metrics(&ctx).await,
        (_, ["healthz" | "metrics"]) => Err(not_allowed()),
        (&Method::POST, ["v1", "forward"]) => match caller::gateway(&ctx, &identity) {
            Ok(from) => forward::receive(&ctx, from, req).await,
            Err(e) => Err(e),
        },
        (_, ["v1", "forward"]) => Err(not_allowed()),
        (&Method::POST, ["witness", "add-checkpoint"]) => {
            witness::add_checkpoint(&ctx, &identity, req).await
        }
        (_, ["witness", "add-checkpoint"]) => Err(not_allowed()),
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
    ctx: &Arc<ApiState>,
    sender: AgencyId,
    identity: &Arc<Identity>,
    req: Request<Incoming>,
    segments: &[&str],
) -> Result<Response<ResponseBody>, ApiError> {
    let query = req.uri().query().unwrap_or("").to_owned();
    match (req.method().clone(), segments) {
        (Method::POST, ["v1", "envelopes"]) => submit(ctx, sender, req).await,
        (Method::GET, ["v1", "inbox"]) => inbox::page(ctx, sender, &query).await,
        (Method::GET, ["v1", "outbox"]) => forward::outbox(ctx, sender, &query).await,
        (_, ["v1", "outbox"]) => Err(not_allowed()),
        (Method::GET, ["v1", "contracts"]) => {
            let policy = ctx.gateway.policy();
            let contracts: Vec<serde_json::Value> = policy
                .contracts()
                .all()
                .iter()
                .map(crate::contracts::Contract::describe)
                .collect();
            let body = serde_json::json!({ "policy": policy.hash_hex(), "contracts": contracts });
            Ok(json(StatusCode::OK, &body))
        }
        (Method::GET, ["v1", "contracts", "explain", index]) => {
            let index = number("index", index)?;
            let log = Arc::clone(&ctx.gateway.log);
            let policy = ctx.gateway.policy();
            let explained = blocking(move || explain(&*log, &policy, index)).await??;
            Ok(json(StatusCode::OK, &explained))
        }
        (_, ["v1", "contracts"] | ["v1", "contracts", "explain", _]) => Err(not_allowed()),
        (Method::POST, ["v1", "inbox", "ack"]) => inbox::ack_list(ctx, sender, req).await,
        (Method::POST, ["v1", "inbox", id, "ack"]) => inbox::ack_one(ctx, sender, id).await,
        // The log's reads may wait on a database: off the async workers.
        (Method::GET, ["v1", "log", "checkpoint"]) => {
            let log = Arc::clone(&ctx.gateway.log);
            match blocking(move || log.latest_checkpoint()).await? {
                Some(signed) => Ok(text(StatusCode::OK, &signed.note)),
                None => Err(ApiError::new(
                    Code::NotFound,
                    "the log has no checkpoint yet",
                )),
            }
        }
        (Method::GET, ["v1", "log", "entries", index]) => {
            let index = number("index", index)?;
            let log = Arc::clone(&ctx.gateway.log);
            let view = blocking(move || logview::entry(&*log, index, "")).await??;
            Ok(json(StatusCode::OK, &view))
        }
        (Method::GET, ["v1", "log", "proof", "inclusion"]) => {
            let index = required(&query, "index")?;
            let size = optional(&query, "size")?;
            let log = Arc::clone(&ctx.gateway.log);
            let view = blocking(move || logview::inclusion(&*log, index, size, "")).await??;
            Ok(json(StatusCode::OK, &view))
        }
        (Method::GET, ["v1", "log", "proof", "consistency"]) => {
            let from = required(&query, "from")?;
            let to = optional(&query, "to")?;
            let log = Arc::clone(&ctx.gateway.log);
            let view = blocking(move || logview::consistency(&*log, from, to, "")).await??;
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

async fn metrics(ctx: &Arc<ApiState>) -> Result<Response<ResponseBody>, ApiError> {
    // From counts kept as the state changes: a scrape reads no store.
    ctx.gateway.refresh_review_metrics();
    Ok(with_body(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        full({
            ctx.gateway.metrics.store(ctx.gateway.log.turn_stats());
            ctx.gateway.metrics.render()
        }),
    ))
}

async fn submit(
    ctx: &Arc<ApiState>,
    sender: AgencyId,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, ApiError> {
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

fn not_allowed() -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        "method not allowed on this resource",
    )
}
