//! `GET /v1/reconciliations/stream`: discrepancies and their resolutions as
//! Server-Sent Events, pushed to the agencies concerned as they commit.
//!
//! The feed is read from the store (`Gn` records, written in the same batch
//! as the envelope that caused them), not from memory: a notice is sent only
//! once durable, every client sees the same order (the log's), and a client
//! that reconnects with `Last-Event-ID` (or `?after=`) resumes exactly where
//! it stopped; `?from=I` starts at the notices of log index `I` (`from=0`:
//! the whole feed; a resume position wins). Without either, the feed starts with the next commit. Each event
//! is `id: <log index>.<seq>`, `event: discrepancy|resolved` and one line of
//! JSON data; a comment line every 15 s keeps idle connections open.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Either;
use http_body_util::channel::{Channel, Sender};

use super::assets::params;
use super::{Body, Context, full};
use crate::assets::query;
use crate::assets::reconcile::{Notice, NoticeEvent, parse_position};
use crate::assets::state;
use crate::errors::{ApiError, Code};
use crate::registry::AgencyId;

/// Notices read from the store at a time.
const CHUNK: usize = 256;
/// Idle time before a keep-alive comment.
const KEEPALIVE: Duration = Duration::from_secs(15);

pub(super) async fn open(
    ctx: &Arc<Context>,
    caller: AgencyId,
    headers: &HeaderMap,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let mut params = params(query, &["after", "from"])?;
    let from = params
        .remove("from")
        .map(|f| super::number("from", &f))
        .transpose()?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| params.remove("after"));
    let after = resume
        .map(|id| {
            parse_position(id.trim()).ok_or_else(|| {
                ApiError::new(
                    Code::Malformed,
                    "Last-Event-ID (or after) must be an event id, <log index>.<seq>",
                )
            })
        })
        .transpose()?;
    // A position to resume after wins over `from`: a browser reconnecting
    // sends Last-Event-ID to the same URL.
    let from_index = from.unwrap_or_else(|| ctx.gateway.log.size());
    let (tx, body) = Channel::<Bytes>::new(16);
    tokio::spawn(feed(Arc::clone(ctx), caller, after, from_index, tx));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache")
        .body(Either::Right(body))
        .unwrap_or_else(|_| Response::new(full(Bytes::new()))))
}

async fn feed(
    ctx: Arc<Context>,
    caller: AgencyId,
    mut after: Option<(u64, u32)>,
    from_index: u64,
    mut tx: Sender<Bytes>,
) {
    let gateway = Arc::clone(&ctx.gateway);
    let mut commits = gateway.commits();
    let mut closing = ctx.closing.subscribe();
    if tx
        .send_data(Bytes::from_static(b": xgate reconciliation feed\n\n"))
        .await
        .is_err()
    {
        return;
    }
    loop {
        if *closing.borrow() {
            return;
        }
        // Mark the current commit seen before reading, so a commit that
        // lands during the read wakes the wait below.
        commits.borrow_and_update();
        let g = Arc::clone(&gateway);
        let read = tokio::task::spawn_blocking(move || {
            state::notices_after(g.log.store(), after, from_index, CHUNK)
        })
        .await;
        let notices = match read {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reconciliation feed: reading notices failed");
                return;
            }
            Err(_) => return,
        };
        let full = notices.len() == CHUNK;
        for notice in notices {
            after = notice.position().or(after);
            // Only what the caller may see of it (assets::query::notice).
            if let Some(seen) = query::notice(&gateway.registry, &caller, &notice)
                && tx.send_data(frame(&seen)).await.is_err()
            {
                return;
            }
        }
        if full {
            continue;
        }
        tokio::select! {
            changed = commits.changed() => if changed.is_err() { return },
            _ = closing.changed() => return,
            () = tokio::time::sleep(KEEPALIVE) => {
                if tx.send_data(Bytes::from_static(b": keepalive\n\n")).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// One SSE event.
fn frame(notice: &Notice) -> Bytes {
    let event = match notice.event {
        NoticeEvent::Discrepancy => "discrepancy",
        NoticeEvent::Resolved => "resolved",
    };
    // Strings, integers and lists: cannot fail, and JSON has no newline.
    let data = serde_json::to_string(notice).unwrap_or_default();
    Bytes::from(format!(
        "id: {}\nevent: {event}\ndata: {data}\n\n",
        notice.id
    ))
}
