//! The one thread that writes to the log on the gateway's behalf, and the
//! one place where the gateway's state changes.
//!
//! Requests hand the committer their entry and a `prepare` step, and await
//! the outcome. The thread takes everything queued and, in order, runs each
//! job's `prepare` against a [`BatchView`] of the store as it will be once the
//! jobs before it are written: `prepare` either refuses the job (which then
//! gets no index and leaves no trace) or returns the records to commit with
//! its entry. Everything accepted is written as one atomic batch with one
//! flush and one signed checkpoint, and each request is answered.
//!
//! So every check that depends on state (a `jti` already used, an asset
//! already held) is decided in log order, exactly as a replay of the log
//! decides it, with no locks; and a thread per waiting request, which under
//! load spent more time being woken than working, is not needed
//! (docs/performance.md, "Gateway").
//!
//! The channel is bounded, so a gateway that cannot keep up slows its
//! clients down instead of queueing without limit.
//!
//! If the thread dies of a panic (a bug), nothing can be committed any
//! more: every request waiting for it, and every later one, gets
//! [`CommitError::Stopped`] (503 `unavailable`), and [`Committer::failed`]
//! tells the server to stop, so the process exits non-zero and its
//! supervisor restarts it, rather than leaving a gateway that accepts
//! connections but can never commit.
//!
//! The committer knows nothing of envelopes: what a job's `prepare` step
//! refuses with is its own type (`E`), handed back as
//! [`CommitError::Declined`].

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use xgate_ledger::{DiskStore, Log, SignedCheckpoint, Store, StoreError, WriteBatch};

use crate::apply::state::StateRead;
use crate::medical::pending::PendingReviews;
use crate::replay::Replay;
use crate::space::{DiskFull, DiskGuard};

/// Most appends waiting for the committer; more wait for room.
const QUEUE: usize = 4096;
/// Most entries written in one batch.
const MAX_BATCH: usize = 1024;

/// Decides, in log order, whether a job's entry is appended at `index`,
/// and returns the records that commit with it, or why it is declined.
pub type Prepare<E> = Box<dyn FnOnce(&BatchView<'_>, u64) -> Result<WriteBatch, E> + Send>;

/// Why an append was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum CommitError<E> {
    /// The job's `prepare` step declined it: no index, no trace.
    #[error(transparent)]
    Declined(E),
    /// The disk is nearly full: the batch was refused before any write.
    #[error(transparent)]
    DiskFull(#[from] DiskFull),
    /// The log could not make the batch durable; the store may hold all
    /// of it or none.
    #[error("the append failed: {0}")]
    Append(Arc<xgate_ledger::Error>),
    /// The log committed without signing the checkpoint a receipt needs.
    #[error("the commit signed no checkpoint")]
    NoCheckpoint,
    /// Another writer appended to the log: the records were prepared for
    /// other indices, so the committer does not vouch for them.
    #[error("the log has another writer")]
    OtherWriter,
    /// The committer has stopped (shutting down, or its thread died), with
    /// the job queued or in a batch that may or may not have been written.
    #[error("the gateway stopped committing")]
    Stopped,
}

/// Where an entry went: its index and a checkpoint that covers it, durable.
pub type Appended = (u64, SignedCheckpoint);

/// The store as the job being prepared will find it: every write of the
/// jobs accepted before it in this batch, over what is durable.
pub struct BatchView<'a> {
    store: &'a DiskStore,
    pending: &'a WriteBatch,
}

impl BatchView<'_> {
    /// Reads one key.
    ///
    /// # Errors
    /// A storage failure.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.pending.pending(key) {
            Some(value) => Ok(value.map(<[u8]>::to_vec)),
            None => Ok(self.store.get(key)?.map(|v| v.as_ref().to_vec())),
        }
    }

    /// Every key starting with `prefix`, in order.
    ///
    /// # Errors
    /// A storage failure.
    pub fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut keys = std::collections::BTreeSet::new();
        for kv in self.store.scan_prefix(prefix) {
            keys.insert(kv?.0);
        }
        for (key, value) in self.pending.pending_with_prefix(prefix) {
            match value {
                Some(_) => keys.insert(key.to_vec()),
                None => keys.remove(key),
            };
        }
        Ok(keys.into_iter().collect())
    }
}

/// What a job's request is told.
type Answer<E> = Result<Appended, CommitError<E>>;

impl StateRead for BatchView<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        BatchView::get(self, key)
    }

    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        BatchView::keys(self, prefix)
    }
}

struct Job<E> {
    entry: Vec<u8>,
    prepare: Prepare<E>,
    done: oneshot::Sender<Answer<E>>,
}

impl<E> std::fmt::Debug for Job<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("len", &self.entry.len())
            .finish()
    }
}

/// The committer thread. Dropping it closes the queue, lets the thread
/// finish what is queued, and waits for it, so the log is released in an
/// orderly way (its `Drop` refreshes the checkpoint copy outside the
/// database) before the process exits.
#[derive(Debug)]
pub struct Committer<E> {
    jobs: Option<mpsc::Sender<Job<E>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    commits: watch::Receiver<u64>,
    /// Becomes `true` if the thread dies of a panic.
    failed: watch::Receiver<bool>,
}

impl<E> Drop for Committer<E> {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
        {
            // Its alarm said so when it died; say it again with what it
            // said, as the gateway stops (a drop cannot return it).
            tracing::error!(
                panic = panic_message(panic.as_ref()),
                "the commit thread had panicked; what it held was not acknowledged"
            );
        }
    }
}

/// What a panic said, if it said it as text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

impl<E: Send + 'static> Committer<E> {
    /// Starts the committer for `log`, which must sign a checkpoint with
    /// every commit and must have no other writer: the committer assigns
    /// indices itself, from the log's size. `replay` and `reviews` are what
    /// jobs record in memory as they are prepared; they are read back from
    /// the store after a commit that failed.
    ///
    /// # Errors
    /// If the thread cannot be started.
    pub fn start(
        log: Arc<Log<DiskStore>>,
        guard: Arc<DiskGuard>,
        replay: Arc<Replay>,
        reviews: Arc<PendingReviews>,
    ) -> std::io::Result<Committer<E>> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (committed, commits) = watch::channel(log.size());
        let (alarm, failed) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("xgate-commit".into())
            .spawn(move || {
                let alarm = PanicAlarm(alarm);
                let memory = Recorded {
                    replay: &replay,
                    reviews: &reviews,
                };
                run(&log, &guard, &memory, rx, &committed);
                if log.stopped() {
                    alarm.raise(
                        "the log stopped after a failed write or barrier: nothing more can be \
                         committed safely; stopping so that a supervisor restarts the gateway, \
                         whose recovery replays the journal",
                    );
                }
            })?;
        Ok(Committer {
            jobs: Some(tx),
            thread: Some(thread),
            commits,
            failed,
        })
    }

    /// Completes if the commit thread dies of a panic, or stops because
    /// the log did (a failed barrier): the gateway can commit nothing more
    /// and must stop. Never completes otherwise.
    pub async fn failed(&self) {
        let mut failed = self.failed.clone();
        if failed.wait_for(|f| *f).await.is_err() {
            // The thread ended without a panic (the committer was dropped).
            std::future::pending::<()>().await;
        }
    }

    /// Whether the commit thread died of a panic or stopped with the log.
    pub fn has_failed(&self) -> bool {
        *self.failed.borrow()
    }

    /// The log's size after each durable commit: readers of what commits
    /// write (the reconciliation feed) wait on it.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.commits.clone()
    }

    /// Appends `entry` if `prepare` accepts it, committing the records it
    /// returns in the same batch; returns once both are durable.
    ///
    /// # Errors
    /// What `prepare` declined it with; a [`CommitError`] if the batch was
    /// not made durable (then nothing in it is acknowledged) or the
    /// committer has stopped.
    pub async fn append(&self, entry: Vec<u8>, prepare: Prepare<E>) -> Answer<E> {
        let (done, outcome) = oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or(CommitError::Stopped)?;
        jobs.send(Job {
            entry,
            prepare,
            done,
        })
        .await
        .map_err(|_| CommitError::Stopped)?;
        outcome.await.map_err(|_| CommitError::Stopped)?
    }
}

/// Raises [`Committer::failed`] if the commit thread unwinds from a panic,
/// or when it says so ([`PanicAlarm::raise`]). It is dropped last, after
/// the jobs the thread held (whose requests are answered 503 by their
/// dropped channels) and its queue.
struct PanicAlarm(watch::Sender<bool>);

impl PanicAlarm {
    /// Raises the alarm, logging why.
    fn raise(&self, why: &str) {
        tracing::error!("{why}");
        self.0.send_replace(true);
    }
}

impl Drop for PanicAlarm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(
                "the commit thread panicked: nothing can be committed; stopping so that a \
                 supervisor restarts the gateway"
            );
            self.0.send_replace(true);
        }
    }
}

/// What jobs record in memory as they are prepared, beside the store.
struct Recorded<'a> {
    replay: &'a Replay,
    reviews: &'a PendingReviews,
}

impl Recorded<'_> {
    /// Reads everything back from `store` after a commit that failed: the
    /// batch's records may or may not have reached it.
    fn reload(&self, store: &DiskStore) {
        if let Err(e) = self.replay.reload(store) {
            tracing::error!(error = %e, "cannot read the replay ids back after a failed commit");
        }
        if let Err(e) = self.reviews.reload(store) {
            tracing::error!(error = %e, "cannot read the review queue back after a failed commit");
        }
    }
}

fn run<E>(
    log: &Log<DiskStore>,
    guard: &DiskGuard,
    memory: &Recorded<'_>,
    mut rx: mpsc::Receiver<Job<E>>,
    committed: &watch::Sender<u64>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // Short of space, refuse the whole batch before touching the store.
        if let Err(e) = guard.check() {
            for job in jobs {
                let _ = job.done.send(Err(CommitError::DiskFull(e)));
            }
            continue;
        }
        match commit(log, jobs) {
            Outcome::Durable(size) => {
                committed.send_replace(size);
            }
            Outcome::NothingAccepted => {}
            // The log takes no more commits until it is reopened: the
            // jobs queued behind are answered 503 as the queue drops.
            Outcome::Failed if log.stopped() => return,
            // What the batch's jobs recorded may or may not have reached
            // the store: read back what did.
            Outcome::Failed => memory.reload(log.store()),
        }
    }
}

/// What became of one batch.
enum Outcome {
    /// Durable; the log's size after it.
    Durable(u64),
    /// Every job was refused: nothing was written.
    NothingAccepted,
    /// The append failed: nothing is acknowledged, and the store may hold
    /// all of the batch or none of it.
    Failed,
}

/// Prepares `jobs` in order, appends the accepted ones as one batch and
/// answers every job.
fn commit<E>(log: &Log<DiskStore>, jobs: Vec<Job<E>>) -> Outcome {
    // The committer is the log's only writer, so this is where the batch
    // will start.
    let first = log.next_index();
    let mut batch = WriteBatch::new();
    let mut entries = Vec::with_capacity(jobs.len());
    let mut waiting = Vec::with_capacity(jobs.len());
    for job in jobs {
        let index = first + entries.len() as u64;
        let view = BatchView {
            store: log.store(),
            pending: &batch,
        };
        match (job.prepare)(&view, index) {
            Ok(records) => {
                batch.extend(records);
                entries.push(job.entry);
                waiting.push(job.done);
            }
            // Refused: no index, no trace.
            Err(e) => {
                let _ = job.done.send(Err(CommitError::Declined(e)));
            }
        }
    }
    if entries.is_empty() {
        return Outcome::NothingAccepted;
    }
    let outcome = log.append_batch_with(&entries, move |range| {
        debug_assert_eq!(range.start, first, "the committer is the only writer");
        batch
    });
    match outcome {
        Ok(committed) if committed.range.start == first => {
            let Some(checkpoint) = committed.checkpoint else {
                tracing::error!("the commit signed no checkpoint; refusing to acknowledge");
                for done in waiting {
                    let _ = done.send(Err(CommitError::NoCheckpoint));
                }
                return Outcome::Durable(committed.range.end);
            };
            let size = committed.range.end;
            for (index, done) in committed.range.zip(waiting) {
                // A request that gave up waiting is simply not told.
                let _ = done.send(Ok((index, checkpoint.clone())));
            }
            Outcome::Durable(size)
        }
        Ok(committed) => {
            // Another writer appended: the records were prepared for other
            // indices. Durable, but refuse to vouch for them.
            tracing::error!(
                expected = first,
                got = committed.range.start,
                "the log has another writer; refusing to acknowledge"
            );
            for done in waiting {
                let _ = done.send(Err(CommitError::OtherWriter));
            }
            Outcome::Durable(committed.range.end)
        }
        Err(e) => {
            tracing::error!(error = %e, "append failed; nothing in this batch is acknowledged");
            let e = Arc::new(e);
            for done in waiting {
                let _ = done.send(Err(CommitError::Append(Arc::clone(&e))));
            }
            Outcome::Failed
        }
    }
}
