//! The reconciliation feed's fan-out: one task reads the notices each
//! commit wrote and broadcasts them to every open stream, and each agency
//! may hold at most `max_streams_per_agency` streams.
//!
//! Without it, each open stream read the store itself after every commit,
//! so the cost of a commit grew with the number of listeners. Now a
//! commit costs one read whatever the number of streams; a stream reads
//! the store itself only for its backlog (`from=`, `Last-Event-ID`) or
//! after it fell more than [`BACKLOG`] notices behind the broadcast, and
//! then a page of [`CHUNK`] at a time from its own [`Cursor`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, watch};
use xgate_ledger::StoreError;

use crate::assets::query;
use crate::assets::reconcile::{self, Notice, NoticeEvent};
use crate::pipeline::Gateway;
use crate::registry::{AgencyId, Registry};

/// Notices read from the store at a time.
pub const CHUNK: usize = 256;
/// Notices the broadcast keeps for a stream that has not taken them yet;
/// one further behind goes back to reading the store by its own cursor.
pub const BACKLOG: usize = 1024;
/// Pause before the reader tries again after a failed read.
const RETRY: Duration = Duration::from_secs(1);

/// A notice that could not be encoded as an event (it holds strings,
/// integers and lists, so a bug): reported, never sent empty.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode a feed notice: {0}")]
pub struct EncodeNoticeError(#[source] serde_json::Error);

/// Why a page of the feed could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The read, off the async workers, did not finish.
    #[error("the read did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A notice could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeNoticeError),
}

/// One notice, ready to send: where it is in the feed, the notice itself
/// and its whole SSE frame (rendered once, for every auditor's stream).
#[derive(Debug)]
pub struct Item {
    /// `(log index, sequence)`, the order of the feed.
    pub position: (u64, u32),
    notice: Notice,
    /// `id:`, `event:` and `data:` lines of the whole notice.
    whole: Bytes,
}

impl Item {
    /// The item of `notice`; `None` if its id is not a feed position.
    fn of(notice: &Notice) -> Result<Option<Item>, EncodeNoticeError> {
        let Some(position) = notice.position() else {
            return Ok(None);
        };
        Ok(Some(Item {
            position,
            notice: notice.clone(),
            whole: frame(notice)?,
        }))
    }

    /// The frame `agency` may see, if any: the whole notice for an
    /// auditor; for an agency it concerns, a copy that names no other
    /// agency ([`query::notice`]); nothing for anyone else.
    ///
    /// # Errors
    /// If the copy cannot be encoded.
    pub fn frame_for(
        &self,
        registry: &Registry,
        agency: &AgencyId,
    ) -> Result<Option<Bytes>, EncodeNoticeError> {
        if registry.is_auditor(agency) {
            return Ok(Some(self.whole.clone()));
        }
        query::notice(registry, agency, &self.notice)
            .map(|seen| frame(&seen))
            .transpose()
    }
}

/// One SSE event (JSON has no newline, so `data:` is one line).
fn frame(notice: &Notice) -> Result<Bytes, EncodeNoticeError> {
    let event = match notice.event {
        NoticeEvent::Discrepancy => "discrepancy",
        NoticeEvent::Resolved => "resolved",
    };
    let data = serde_json::to_string(notice).map_err(EncodeNoticeError)?;
    Ok(Bytes::from(format!(
        "id: {}\nevent: {event}\ndata: {data}\n\n",
        notice.id
    )))
}

/// A position in the feed: after a given notice, or from the first notice
/// of a log index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    after: Option<(u64, u32)>,
    from_index: u64,
}

impl Cursor {
    /// After the notice at `after` if given, else from log index
    /// `from_index`.
    pub fn new(after: Option<(u64, u32)>, from_index: u64) -> Cursor {
        Cursor { after, from_index }
    }

    /// Whether the notice at `position` is still ahead of the cursor.
    pub fn admits(&self, position: (u64, u32)) -> bool {
        match self.after {
            Some(after) => position > after,
            None => position.0 >= self.from_index,
        }
    }

    /// Moves the cursor past the notice at `position`.
    pub fn advance(&mut self, position: (u64, u32)) {
        self.after = Some(position);
    }

    /// The next page of at most [`CHUNK`] notices after the cursor, read
    /// from the store off the async workers; `by` labels the read in
    /// `/metrics`. The cursor does not move.
    ///
    /// # Errors
    /// A storage failure, a task that did not finish, or a notice that
    /// cannot be encoded.
    pub async fn page(
        &self,
        gateway: &Arc<Gateway>,
        by: &'static str,
    ) -> Result<Vec<Item>, FeedError> {
        gateway.metrics.feed_read(by);
        let g = Arc::clone(gateway);
        let (after, from_index) = (self.after, self.from_index);
        let notices = tokio::task::spawn_blocking(move || {
            reconcile::notices_after(g.log.store(), after, from_index, CHUNK)
        })
        .await??;
        let mut items = Vec::with_capacity(notices.len());
        for notice in &notices {
            items.extend(Item::of(notice)?);
        }
        Ok(items)
    }
}

/// The feed's one reader, its broadcast, and the count of streams open
/// per agency.
pub struct Hub {
    gateway: Arc<Gateway>,
    sender: broadcast::Sender<Arc<Item>>,
    max_per_agency: usize,
    open: Mutex<HashMap<AgencyId, usize>>,
}

impl Hub {
    /// Starts the reader, from the notices of the next commit on, until
    /// `closing` is set or the gateway is gone; streams are capped at
    /// `max_per_agency` per agency.
    pub fn start(
        gateway: Arc<Gateway>,
        max_per_agency: usize,
        closing: watch::Receiver<bool>,
    ) -> Arc<Hub> {
        let (sender, _) = broadcast::channel(BACKLOG);
        tokio::spawn(read(
            Arc::downgrade(&gateway),
            gateway.commits(),
            closing,
            Cursor::new(None, *gateway.commits().borrow()),
            sender.clone(),
        ));
        Arc::new(Hub {
            gateway,
            sender,
            max_per_agency,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The notices broadcast from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Item>> {
        self.sender.subscribe()
    }

    /// A stream slot for `agency`, unless it already holds the most
    /// allowed; the slot is given back when dropped.
    pub fn admit(self: &Arc<Hub>, agency: &AgencyId) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(agency.clone()).or_insert(0);
        if *count >= self.max_per_agency {
            return None;
        }
        *count += 1;
        self.gateway.metrics.event_stream(1);
        Some(Slot {
            hub: Arc::clone(self),
            agency: agency.clone(),
        })
    }

    /// The most streams an agency may hold.
    pub fn max_per_agency(&self) -> usize {
        self.max_per_agency
    }

    /// The gateway the feed is read from.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }
}

/// One agency's claim on one of its stream slots.
pub struct Slot {
    hub: Arc<Hub>,
    agency: AgencyId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.hub.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.agency) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.agency);
            }
        }
        self.hub.gateway.metrics.event_stream(-1);
    }
}

/// The reader: after each commit, reads the new notices a page at a time
/// and broadcasts them in feed order. A failed read is retried from the
/// same cursor, so nothing is skipped.
async fn read(
    gateway: Weak<Gateway>,
    mut commits: watch::Receiver<u64>,
    mut closing: watch::Receiver<bool>,
    mut cursor: Cursor,
    sender: broadcast::Sender<Arc<Item>>,
) {
    loop {
        // Mark the current commit seen before reading, so a commit that
        // lands during the read wakes the wait below.
        commits.borrow_and_update();
        loop {
            let Some(g) = gateway.upgrade() else { return };
            let page = cursor.page(&g, "reader").await;
            drop(g);
            match page {
                Ok(items) => {
                    let full = items.len() == CHUNK;
                    for item in items {
                        cursor.advance(item.position);
                        // No subscriber is not an error: nobody listens.
                        let _ = sender.send(Arc::new(item));
                    }
                    if !full {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reconciliation feed: reading notices failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => {}
                        _ = closing.changed() => return,
                    }
                }
            }
        }
        tokio::select! {
            changed = commits.changed() => if changed.is_err() { return },
            _ = closing.changed() => return,
        }
    }
}
