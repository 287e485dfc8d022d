//! Store-and-forward delivery to the recipient: its inbox, page by page,
//! and the acknowledgements that remove what it has received, one envelope
//! or a list at a time.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::api_state::ApiState;
use super::error::{ApiError, Code};
use super::request::{blocking, cursor, read_body};
use super::response::{ResponseBody, json};
use crate::inbox;
use crate::receipt::Receipt;
use crate::registry::AgencyId;
use crate::strict_json;

/// The media type of a list of ids to acknowledge.
const JSON: &str = "application/json";

/// An envelope in an inbox listing, with a receipt against the latest
/// checkpoint.
#[derive(Debug, Serialize)]
struct InboxItem {
    id: String,
    from: String,
    kind: String,
    jws: String,
    receipt: Receipt,
}

#[derive(Debug, Serialize)]
struct InboxPage {
    envelopes: Vec<InboxItem>,
    /// Pass as `after` for the next page; `null` when there is none.
    next: Option<u64>,
}

/// The body of `POST /v1/inbox/ack`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckList {
    ids: Vec<String>,
}

/// `GET /v1/inbox?after=I&limit=N`: the caller's undelivered envelopes,
/// oldest first.
pub(super) async fn page(
    ctx: &Arc<ApiState>,
    recipient: AgencyId,
    query: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let (after, limit) = cursor(query, ctx.inbox_page)?;
    let gateway = Arc::clone(&ctx.gateway);
    let page = blocking(move || -> Result<InboxPage, ApiError> {
        let log = &gateway.log;
        let (items, more) = inbox::list(&**log, &recipient, after, limit)?;
        let next = if more {
            items.last().map(|i| i.log_index)
        } else {
            None
        };
        if items.is_empty() {
            return Ok(InboxPage {
                envelopes: Vec::new(),
                next,
            });
        }
        // Every commit signs a checkpoint, so one covers any stored
        // envelope, once this process has read as far as the newest (on a
        // shared database another replica may have logged it a moment ago).
        let newest = items.iter().map(|i| i.log_index).max().unwrap_or(0);
        let checkpoint = log
            .checkpoint_covering(newest)?
            .ok_or_else(|| ApiError::new(Code::Internal, "the log has no checkpoint"))?;
        let envelopes = items
            .into_iter()
            .map(|i| {
                let receipt = Receipt::build(&**log, i.id.clone(), i.log_index, &checkpoint)?;
                Ok(InboxItem {
                    id: i.id,
                    from: i.from,
                    kind: i.kind,
                    jws: i.jws,
                    receipt,
                })
            })
            .collect::<Result<Vec<_>, xgate_ledger::Error>>()?;
        Ok(InboxPage { envelopes, next })
    })
    .await??;
    Ok(json(StatusCode::OK, &page))
}

/// `POST /v1/inbox/{id}/ack`: removes one envelope; 404 if the caller has
/// no envelope `id`.
pub(super) async fn ack_one(
    ctx: &Arc<ApiState>,
    recipient: AgencyId,
    id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let done = ack(ctx, recipient, vec![id.to_owned()]).await?;
    if done.acked.is_empty() {
        return Err(ApiError::new(
            Code::NotFound,
            "no such envelope in your inbox",
        ));
    }
    Ok(json(StatusCode::OK, &serde_json::json!({ "acked": id })))
}

/// `POST /v1/inbox/ack` with `{"ids":[...]}`: removes up to a page of
/// envelopes in one durable write, and says which ids were removed and
/// which the caller has no envelope under (`200` either way, so a retried
/// list is answered rather than refused).
pub(super) async fn ack_list(
    ctx: &Arc<ApiState>,
    recipient: AgencyId,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, ApiError> {
    let body = read_body(req, JSON, ctx.max_body_bytes).await?;
    let malformed = |why: String| ApiError::new(Code::Malformed, why);
    strict_json::check(&body).map_err(|e| malformed(e.to_string()))?;
    let list: AckList = serde_json::from_slice(&body)
        .map_err(|_| malformed(r#"expected {"ids":["<envelope id>", ...]}"#.to_owned()))?;
    let most = ctx.inbox_page;
    if list.ids.is_empty() || list.ids.len() > most {
        return Err(malformed(format!(
            "ids must list 1 to {most} envelope ids, not {}",
            list.ids.len()
        )));
    }
    let done = ack(ctx, recipient, list.ids).await?;
    Ok(json(StatusCode::OK, &done))
}

async fn ack(
    ctx: &Arc<ApiState>,
    recipient: AgencyId,
    ids: Vec<String>,
) -> Result<inbox::Acked, ApiError> {
    let gateway = Arc::clone(&ctx.gateway);
    let done = blocking(move || inbox::ack(&*gateway.log, &recipient, &ids)).await?;
    Ok(done?)
}
