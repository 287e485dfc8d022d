//! Store-and-forward between gateways, over HTTP: `POST /v1/forward`, by
//! which a peer gateway hands this one envelopes for the agencies it
//! serves, and `GET /v1/outbox`, where an agency reads what became of the
//! envelopes it sent to agencies of other gateways.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;

use super::api_state::ApiState;
use super::error::{ApiError, Code};
use super::request::{blocking, cursor, read_body};
use super::response::{ResponseBody, json};
use crate::forward::outbox::{self, Forward, State};
use crate::forward::status::PeerStatus;
use crate::forward::wire::{ForwardAnswer, ForwardError, ForwardRequest, ForwardResult};
use crate::registry::{AgencyId, GatewayId};
use crate::strict_json;

/// The media type of a forward request.
const JSON: &str = "application/json";

/// Room for the receipts and JSON around a request's envelopes, beyond
/// `max_body_bytes` of envelopes.
const FORWARD_OVERHEAD: usize = 1 << 20;

/// `POST /v1/forward` from gateway `from`: one result per envelope, in
/// order.
pub(super) async fn receive(
    ctx: &Arc<ApiState>,
    from: GatewayId,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, ApiError> {
    let limit = ctx
        .max_body_bytes
        .saturating_mul(2)
        .saturating_add(FORWARD_OVERHEAD);
    let body = read_body(req, JSON, limit).await?;
    strict_json::check(&body)
        .map_err(|m| ApiError::new(Code::Malformed, format!("the forward request: {m}")))?;
    let request: ForwardRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            Code::Malformed,
            format!(
                "not a forward request: {}",
                e.to_string().lines().next().unwrap_or("")
            ),
        )
    })?;
    if request.forwards.is_empty()
        || request.forwards.len() > crate::forward::forwarder::MAX_PER_REQUEST
    {
        return Err(ApiError::new(
            Code::Malformed,
            format!(
                "a forward request carries 1 to {} envelopes",
                crate::forward::forwarder::MAX_PER_REQUEST
            ),
        ));
    }
    let gateway = &ctx.gateway;
    let outcomes = gateway.receive(&from, request.forwards).await;
    let mut results = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        results.push(match outcome {
            Ok(accepted) => {
                let kind = accepted.kind.as_str();
                gateway.metrics.envelope(kind, "accepted");
                tracing::info!(gateway = %from, kind, log_index = accepted.receipt.log_index, "forwarded envelope accepted");
                ForwardResult::Receipt(accepted.receipt)
            }
            Err(refused) => {
                let kind = refused.kind.map_or("unknown", crate::kind::Kind::as_str);
                let e = ApiError::from(refused);
                gateway.metrics.envelope(kind, e.code.as_str());
                tracing::info!(gateway = %from, kind, code = e.code.as_str(), "forwarded envelope refused");
                ForwardResult::Error(ForwardError {
                    code: e.code.as_str().to_owned(),
                    message: e.message,
                })
            }
        });
    }
    Ok(json(StatusCode::OK, &ForwardAnswer { results }))
}

/// One envelope in an outbox listing: its record, and while it is queued,
/// how forwarding to its gateway is going.
#[derive(Debug, Serialize)]
struct OutboxItem {
    #[serde(flatten)]
    forward: Forward,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    peer: Option<PeerStatus>,
}

#[derive(Debug, Serialize)]
struct OutboxPage {
    forwards: Vec<OutboxItem>,
    /// Pass as `after` for the next page; `null` when there is none.
    next: Option<u64>,
}

/// `GET /v1/outbox?after=I&limit=N`: what became of the caller's
/// envelopes to agencies of other gateways, oldest first.
pub(super) async fn outbox(
    ctx: &Arc<ApiState>,
    sender: AgencyId,
    query: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let (after, limit) = cursor(query, ctx.inbox_page)?;
    let gateway = Arc::clone(&ctx.gateway);
    let page = blocking(move || -> Result<OutboxPage, ApiError> {
        let (records, more) =
            outbox::list(gateway.log.store(), &sender, after, limit).map_err(|e| {
                tracing::error!(error = %e, "cannot read an outbox");
                ApiError::internal()
            })?;
        let next = if more {
            records.last().map(|r| r.log_index)
        } else {
            None
        };
        let forwards = records
            .into_iter()
            .map(|forward| {
                let peer = (forward.state == State::Queued)
                    .then(|| gateway.forward_peers().get(&forward.gateway))
                    .filter(|p| p.attempts > 0);
                OutboxItem { forward, peer }
            })
            .collect();
        Ok(OutboxPage { forwards, next })
    })
    .await??;
    Ok(json(StatusCode::OK, &page))
}
