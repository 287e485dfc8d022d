//! `GET /v1/reconciliations/stream`: discrepancies and their resolutions as
//! Server-Sent Events, pushed to the agencies concerned as they commit.
//!
//! The feed is read from the store (`Gn` records, written in the same batch
//! as the envelope that caused them): a notice is sent only once durable,
//! every client sees the same order (the log's), and a client that
//! reconnects with `Last-Event-ID` (or `?after=`) resumes exactly where it
//! stopped; `?from=I` starts at the notices of log index `I` (`from=0`: the
//! whole feed; a resume position wins). Without either, the feed starts
//! with the next commit. Each event is `id: <log index>.<seq>`,
//! `event: discrepancy|resolved` and one line of JSON data; a comment line
//! every 15 s keeps idle connections open.
//!
//! A stream first reads its backlog from the store, a page at a time with
//! its own cursor; then it subscribes to the one reader's broadcast
//! ([`super::fanout`]), reads the store once more (what committed while it
//! subscribed) and from then on takes the broadcast, skipping what its
//! cursor has passed: no gap, no duplicate, the feed's order. A stream
//! that falls too far behind the broadcast goes back to the store the same
//! way. Each agency holds at most `max_streams_per_agency` streams (429
//! `too_many_streams`), and a stream ends as soon as its connection's
//! certificate is revoked (or, with `crl_strict`, the CRL goes stale):
//! the CRL check wakes every stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Either;
use http_body_util::channel::{Channel, Sender};
use hyper::body::Frame;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, oneshot, watch};

use super::api_state::ApiState;
use super::caller::agency;
use super::error::{ApiError, Code};
use super::fanout::{CHUNK, Cursor, Item, Slot};
use super::request::{number, params};
use super::response::{EventBody, ResponseBody, with_body};
use crate::assets::reconcile::parse_position;
use crate::registry::AgencyId;
use crate::tls::Identity;

/// Idle time before a keep-alive comment.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Frames buffered between a stream's task and its connection.
const BUFFERED: usize = 16;

pub(super) async fn open(
    ctx: &Arc<ApiState>,
    caller: AgencyId,
    identity: Arc<Identity>,
    headers: &HeaderMap,
    query: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let mut params = params(query, &["after", "from"])?;
    let from = params
        .remove("from")
        .map(|f| number("from", &f))
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
    let slot = ctx.streams.admit(&caller).ok_or_else(|| {
        ApiError::new(
            Code::TooManyStreams,
            format!(
                "{caller} already has {} event streams open, the most allowed \
                 (max_streams_per_agency); close one first",
                ctx.streams.max_per_agency()
            ),
        )
    })?;
    // A position to resume after wins over `from`: a browser reconnecting
    // sends Last-Event-ID to the same URL.
    // "Now" is the newest size this process knows (never a wait on a
    // database here).
    let from_index = from.unwrap_or_else(|| *ctx.gateway.commits().borrow());
    let (tx, inner) = Channel::<Bytes>::new(BUFFERED);
    let (gone_tx, gone) = oneshot::channel();
    let guard = Guard {
        crl: ctx.tls.changes(),
        closing: ctx.closing.subscribe(),
        ctx: Arc::clone(ctx),
        identity,
        gone,
    };
    let stream = Stream {
        caller,
        cursor: Cursor::new(after, from_index),
        out: Out { tx },
        guard,
        _slot: slot,
    };
    tokio::spawn(stream.run());
    let body = EventBody::new(inner, gone_tx);
    let mut response = with_body(StatusCode::OK, "text/event-stream", Either::Right(body));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Why a stream ends.
enum End {
    /// The caller may no longer be served (revoked, or a stale CRL under
    /// `crl_strict`).
    Refused(ApiError),
    /// The server is stopping.
    Closing,
    /// The client went away.
    Gone,
    /// The store could not be read.
    Failed,
}

/// What ends a stream from outside: the CRL, the server stopping, the
/// client leaving.
struct Guard {
    ctx: Arc<ApiState>,
    identity: Arc<Identity>,
    crl: watch::Receiver<u64>,
    closing: watch::Receiver<bool>,
    gone: oneshot::Receiver<()>,
}

impl Guard {
    /// Whether the stream must end now.
    fn check(&mut self) -> Result<(), End> {
        if *self.closing.borrow() {
            return Err(End::Closing);
        }
        if !matches!(
            self.gone.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ) {
            return Err(End::Gone);
        }
        agency(&self.ctx, &self.identity)
            .map(|_| ())
            .map_err(End::Refused)
    }

    /// Resolves when the stream must end: the caller is refused after a
    /// CRL change, the server stops, or the client leaves.
    async fn stopped(&mut self) -> End {
        loop {
            tokio::select! {
                changed = self.crl.changed() => {
                    if changed.is_err() {
                        return End::Closing;
                    }
                    if let Err(e) = agency(&self.ctx, &self.identity) {
                        return End::Refused(e);
                    }
                }
                changed = self.closing.changed() => {
                    if changed.is_err() || *self.closing.borrow() {
                        return End::Closing;
                    }
                }
                _ = &mut self.gone => return End::Gone,
            }
        }
    }
}

/// The stream's side of its body.
struct Out {
    tx: Sender<Bytes>,
}

impl Out {
    /// Sends `bytes`, unless the stream must end first (a client that
    /// does not read cannot hold a revoked stream open).
    async fn deliver(&mut self, guard: &mut Guard, bytes: Bytes) -> Result<(), End> {
        tokio::select! {
            sent = self.tx.send_data(bytes) => sent.map_err(|_| End::Gone),
            end = guard.stopped() => Err(end),
        }
    }
}

/// One open stream.
struct Stream {
    caller: AgencyId,
    cursor: Cursor,
    out: Out,
    guard: Guard,
    _slot: Slot,
}

impl Stream {
    async fn run(mut self) {
        let end = self.serve().await.err().unwrap_or(End::Closing);
        match end {
            End::Refused(e) => {
                // The last word, if the client's buffer has room for it.
                let line = format!(": closed: {}\n\n", e.message.replace('\n', " "));
                let _ = self.out.tx.try_send(Frame::data(Bytes::from(line)));
            }
            End::Closing | End::Gone | End::Failed => {}
        }
    }

    async fn serve(&mut self) -> Result<(), End> {
        self.guard.check()?;
        let hello = Bytes::from_static(b": xgate reconciliation feed\n\n");
        self.out.deliver(&mut self.guard, hello).await?;
        let hub = Arc::clone(&self.guard.ctx.streams);
        let mut live: Option<broadcast::Receiver<Arc<Item>>> = None;
        loop {
            self.catch_up().await?;
            match live.take() {
                // Subscribed after the backlog; one more read of the store
                // takes what committed meanwhile, then the broadcast has
                // everything after it.
                None => live = Some(hub.subscribe()),
                // Fell behind the broadcast: back to the store.
                Some(rx) => self.follow(rx).await?,
            }
        }
    }

    /// Sends what the store holds after the cursor, a page at a time.
    async fn catch_up(&mut self) -> Result<(), End> {
        let gateway = Arc::clone(&self.guard.ctx.gateway);
        loop {
            self.guard.check()?;
            let page = self.cursor.page(&gateway, "catch_up").await.map_err(|e| {
                tracing::warn!(error = %e, "reconciliation feed: reading notices failed");
                End::Failed
            })?;
            let full = page.len() == CHUNK;
            for item in page {
                self.send(&item).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Sends the broadcast's notices as they come; returns `Ok` if the
    /// stream fell behind and must read the store again.
    async fn follow(&mut self, mut rx: broadcast::Receiver<Arc<Item>>) -> Result<(), End> {
        let mut keepalive =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
        loop {
            tokio::select! {
                received = rx.recv() => match received {
                    Ok(item) => {
                        if self.send(&item).await? {
                            keepalive.reset();
                        }
                    }
                    Err(RecvError::Lagged(_)) => return Ok(()),
                    Err(RecvError::Closed) => return Err(End::Closing),
                },
                end = self.guard.stopped() => return Err(end),
                _ = keepalive.tick() => {
                    let comment = Bytes::from_static(b": keepalive\n\n");
                    self.out.deliver(&mut self.guard, comment).await?;
                }
            }
        }
    }

    /// Sends `item` if it is ahead of the cursor and the caller may see
    /// it, moving the cursor past it either way; returns whether it sent.
    async fn send(&mut self, item: &Item) -> Result<bool, End> {
        if !self.cursor.admits(item.position) {
            return Ok(false);
        }
        self.cursor.advance(item.position);
        let frame = item
            .frame_for(&self.guard.ctx.gateway.registry, &self.caller)
            .map_err(|e| {
                tracing::error!(error = %e, "reconciliation feed: a notice could not be sent");
                End::Failed
            })?;
        let Some(frame) = frame else {
            return Ok(false);
        };
        self.out
            .deliver(&mut self.guard, frame)
            .await
            .map(|()| true)
    }
}
