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
//! A job whose preparation reads much of the store (an inventory report
//! reads every tag it lists) would hold every other job up while it reads.
//! [`Committer::append_ahead`] prepares such a job on a blocking worker
//! thread instead, against the store as it stands, recording what it reads
//! ([`crate::apply::reads`]); at the job's turn the commit thread only checks
//! that nothing it read has been written since (by the batches written in
//! the meantime, or the jobs before it in its batch) and runs the cheap rest
//! of the job. A job whose reads have changed is prepared again, at most
//! [`ATTEMPTS`] times; then it is prepared at its turn like any other, which
//! is always correct. Either way the job is decided against the state at its
//! place in the log, so log order and the state after each entry are what a
//! replay computes.
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

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot, watch};
use xgate_ledger::turn::Changes;
use xgate_ledger::{Ledger, SignedCheckpoint, StoreError, StoreRead, WriteBatch};

use crate::apply::reads::{Progress, ReadSet, Snapshot, Written};
use crate::apply::state::{Over, StateRead, Stored};
use crate::medical::pending::PendingReviews;
use crate::replay::Replay;
use crate::space::{DiskFull, DiskGuard};

/// Most appends waiting for the committer; more wait for room.
const QUEUE: usize = 4096;
/// Most entries written in one batch.
const MAX_BATCH: usize = 1024;
/// How many times a job is prepared ahead before it is prepared at its
/// turn instead.
pub const ATTEMPTS: u32 = 3;

/// Decides, in log order, whether a job's entry is appended at `index`,
/// and returns the records that commit with it, or why it is declined.
pub type Prepare<E> = Box<dyn FnOnce(&BatchView<'_>, u64) -> Result<Records, E> + Send>;

/// What a job commits with its entry: its state and delivery writes, and
/// the entries that follow it in the log, at the indices right after its
/// own (the acts of the contracts it triggered, docs/contracts.md), in the
/// same batch, so one flush and one checkpoint cover them all.
#[derive(Debug, Default)]
pub struct Records {
    /// The writes.
    pub writes: WriteBatch,
    /// The entries after the job's own, in order.
    pub after: Vec<Vec<u8>>,
}

impl From<WriteBatch> for Records {
    fn from(writes: WriteBatch) -> Records {
        Records {
            writes,
            after: Vec::new(),
        }
    }
}

/// A job prepared ahead of its turn: what its preparation read, and the
/// rest of the job, run at its turn if nothing read has changed since.
pub struct Ahead<E> {
    /// What the preparation read ([`crate::apply::reads::Recording`]).
    pub reads: ReadSet,
    /// The rest: cheap, since the reading is done.
    pub prepare: Prepare<E>,
}

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
    stored: Stored<'a>,
    pending: &'a WriteBatch,
}

impl BatchView<'_> {
    /// The view as a state over the batch so far.
    fn over(&self) -> Over<'_, Stored<'_>> {
        Over {
            base: &self.stored,
            top: self.pending,
        }
    }

    /// Reads one key.
    ///
    /// # Errors
    /// A storage failure.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.over().get(key)
    }

    /// Every key starting with `prefix`, in order.
    ///
    /// # Errors
    /// A storage failure.
    pub fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.over().keys(prefix)
    }
}

/// What a job's request is told.
type Answer<E> = Result<Appended, CommitError<E>>;

/// A job in the committer's queue ([`Committer::enqueue`]).
pub struct Queued<E>(oneshot::Receiver<Answer<E>>);

impl<E> Queued<E> {
    /// The job's outcome, as [`Committer::append`] returns it.
    ///
    /// # Errors
    /// As [`Committer::append`].
    pub async fn outcome(self) -> Answer<E> {
        self.0.await.map_err(|_| CommitError::Stopped)?
    }
}

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
    work: Work<E>,
}

/// A job's step, and where its outcome goes.
enum Work<E> {
    /// Prepared at its turn.
    Now(Prepare<E>, oneshot::Sender<Answer<E>>),
    /// Prepared ahead from what its read set read: answered `None`, to be
    /// prepared again, if any of it has changed since.
    Ahead(ReadSet, Prepare<E>, oneshot::Sender<Option<Answer<E>>>),
}

/// Where an accepted job's answer goes.
enum Waiting<E> {
    Now(oneshot::Sender<Answer<E>>),
    Ahead(oneshot::Sender<Option<Answer<E>>>),
}

impl<E> Waiting<E> {
    /// Tells the request; one that gave up waiting is simply not told.
    fn answer(self, answer: Answer<E>) {
        match self {
            Waiting::Now(done) => {
                let _ = done.send(answer);
            }
            Waiting::Ahead(done) => {
                let _ = done.send(Some(answer));
            }
        }
    }
}

/// How the jobs prepared ahead fared, since the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AheadCounts {
    /// Prepared ahead and still current at their turn: committed, or
    /// refused, as prepared.
    pub current: u64,
    /// Found stale at their turn (something they read had been written
    /// since) and prepared again.
    pub stale: u64,
    /// Stale at every attempt (three), then prepared at their turn on the
    /// commit thread.
    pub fallbacks: u64,
}

/// [`AheadCounts`] as they are kept.
#[derive(Debug, Default)]
struct Counters {
    current: AtomicU64,
    stale: AtomicU64,
    fallbacks: AtomicU64,
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
    /// How many batches the thread has written, for snapshots.
    progress: Arc<Progress>,
    counters: Arc<Counters>,
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
        log: Arc<dyn Ledger>,
        guard: Arc<DiskGuard>,
        replay: Arc<Replay>,
        reviews: Arc<PendingReviews>,
    ) -> std::io::Result<Committer<E>> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (committed, commits) = watch::channel(log.size());
        let committed = Arc::new(committed);
        if log.shared() {
            follow(Arc::downgrade(&log), Arc::downgrade(&committed))?;
        }
        let (alarm, failed) = watch::channel(false);
        let progress = Progress::new();
        let counters = Arc::new(Counters::default());
        let thread = {
            let (progress, counters) = (Arc::clone(&progress), Arc::clone(&counters));
            std::thread::Builder::new()
                .name(THREAD_NAME.into())
                .spawn(move || {
                    let alarm = PanicAlarm(alarm);
                    let memory = Recorded {
                        replay: &replay,
                        reviews: &reviews,
                        stale: Cell::new(false),
                    };
                    let mut written = Written::new(progress);
                    run(
                        &*log,
                        &guard,
                        &memory,
                        rx,
                        &committed,
                        &mut written,
                        &counters,
                    );
                    if log.stopped() {
                        alarm.raise(
                            "the log stopped after a failed write or barrier: nothing more can \
                             be committed safely; stopping so that a supervisor restarts the \
                             gateway, whose recovery replays the journal",
                        );
                    }
                })?
        };
        Ok(Committer {
            jobs: Some(tx),
            thread: Some(thread),
            commits,
            failed,
            progress,
            counters,
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
        self.enqueue(entry, prepare).await?.outcome().await
    }

    /// Queues `entry` like [`Committer::append`], returning once it is in
    /// the queue: jobs queued one after the other are prepared in that
    /// order, whoever awaits their outcome first (forwarded envelopes keep
    /// their order this way while sharing batches).
    ///
    /// # Errors
    /// [`CommitError::Stopped`] if the committer has stopped.
    pub async fn enqueue(
        &self,
        entry: Vec<u8>,
        prepare: Prepare<E>,
    ) -> Result<Queued<E>, CommitError<E>> {
        let (done, outcome) = oneshot::channel();
        self.queue(entry, Work::Now(prepare, done)).await?;
        Ok(Queued(outcome))
    }

    /// Appends `entry` like [`Committer::append`], with the reading part of
    /// its preparation done off the commit thread: `ahead` runs on a
    /// blocking worker with a [`Snapshot`] of the store, reads the store
    /// through a [`crate::apply::reads::Recording`] made from it, and returns
    /// what it read with the rest of the job. At the job's turn the commit
    /// thread checks that nothing it read has been written since and runs
    /// the rest; if something has, `ahead` runs again, at most [`ATTEMPTS`]
    /// times in all, and then `fallback`, the whole preparation, runs at
    /// the job's turn as [`Committer::append`] runs it.
    ///
    /// # Errors
    /// What `ahead` or the job declined it with, or what
    /// [`Committer::append`] returns.
    pub async fn append_ahead<A>(&self, entry: Vec<u8>, ahead: A, fallback: Prepare<E>) -> Answer<E>
    where
        A: Fn(Snapshot) -> Result<Ahead<E>, E> + Send + Sync + 'static,
    {
        let ahead = Arc::new(ahead);
        for _ in 0..ATTEMPTS {
            let (run, snapshot) = (Arc::clone(&ahead), self.progress.snapshot());
            let prepared = match tokio::task::spawn_blocking(move || run(snapshot)).await {
                Ok(prepared) => prepared,
                // A panic in the preparation is a bug: the request's task
                // carries it, as if it had been prepared there.
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => return Err(CommitError::Stopped),
            };
            let Ahead { reads, prepare } = prepared.map_err(CommitError::Declined)?;
            let (done, outcome) = oneshot::channel();
            self.queue(entry.clone(), Work::Ahead(reads, prepare, done))
                .await?;
            if let Some(answer) = outcome.await.map_err(|_| CommitError::Stopped)? {
                return answer;
            }
        }
        self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.append(entry, fallback).await
    }

    /// How the jobs prepared ahead have fared so far.
    pub fn ahead_counts(&self) -> AheadCounts {
        AheadCounts {
            current: self.counters.current.load(Ordering::Relaxed),
            stale: self.counters.stale.load(Ordering::Relaxed),
            fallbacks: self.counters.fallbacks.load(Ordering::Relaxed),
        }
    }

    async fn queue(&self, entry: Vec<u8>, work: Work<E>) -> Result<(), CommitError<E>> {
        let jobs = self.jobs.as_ref().ok_or(CommitError::Stopped)?;
        jobs.send(Job { entry, work })
            .await
            .map_err(|_| CommitError::Stopped)
    }
}

/// The commit thread's name, as `/proc` and `ps` show it.
pub const THREAD_NAME: &str = "xgate-commit";

/// How often a replica on a shared log looks for entries other replicas
/// appended, so that what waits on [`Committer::commits`] (event streams,
/// the first receipt of an envelope sent again) hears of them even while
/// this replica commits nothing.
pub const FOLLOW: std::time::Duration = std::time::Duration::from_millis(100);

/// Raises the size sent on `committed` to `size` if it is larger: the
/// commit thread and the follower both tell it, and it never goes back.
fn grown(committed: &watch::Sender<u64>, size: u64) {
    committed.send_if_modified(|known| {
        let larger = size > *known;
        if larger {
            *known = size;
        }
        larger
    });
}

/// Starts the thread that follows a shared log's size every [`FOLLOW`]
/// until the committer or the log is gone. It holds neither between looks,
/// so neither outlives the gateway for it.
fn follow(
    log: std::sync::Weak<dyn Ledger>,
    committed: std::sync::Weak<watch::Sender<u64>>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("xgate-follow".into())
        .spawn(move || {
            loop {
                std::thread::sleep(FOLLOW);
                let (Some(log), Some(committed)) = (log.upgrade(), committed.upgrade()) else {
                    return;
                };
                let known = *committed.borrow();
                // A database that is away is retried at the next look.
                if let Ok(size) = log.size_at_least(known.saturating_add(1)) {
                    grown(&committed, size);
                }
            }
        })
        .map(drop)
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
    /// Set when the caches may disagree with the store: after a commit that
    /// failed (its records may or may not have reached the store), or a
    /// catch-up that failed. They are read back whole before the next turn,
    /// and nothing is prepared until that succeeds: a stale cache could
    /// accept a `jti` another replica took, or refuse one that never
    /// committed. The read is outside the writer's lock (on a shared
    /// database it can take a while, and every replica waits on that lock):
    /// whatever commits after it, the failed batch included if it did
    /// commit, is in the change feed the next turn catches up from.
    stale: Cell<bool>,
}

impl Recorded<'_> {
    /// Reads every cache back from `store`.
    fn reload(&self, store: &dyn StoreRead) -> Result<(), StoreError> {
        self.stale.set(true);
        self.replay.reload(store)?;
        self.reviews.reload(store)?;
        self.stale.set(false);
        Ok(())
    }

    /// Brings the caches up to date, at the start of a turn, with what
    /// other processes committed since this one's last turn (a log on a
    /// shared database): their replay ids, their review-queue changes, and
    /// their state writes for the read sets of jobs prepared ahead. A feed
    /// that cannot say what changed (pruned past this process's last turn:
    /// rare) is answered by reading everything back, under the lock.
    ///
    /// # Errors
    /// Stale caches, or a read that failed (then they are stale): the turn
    /// must prepare nothing.
    fn catch_up(
        &self,
        changes: &Changes,
        store: &dyn StoreRead,
        written: &mut Written,
    ) -> Result<(), StoreError> {
        if self.stale.get() {
            return Err(StoreError("the caches are being read back".into()));
        }
        if matches!(changes, Changes::Unknown) {
            // A whole read covers whatever the feed says changed.
            self.reload(store)?;
            written.lost_track();
            return Ok(());
        }
        let Changes::Keys(keys) = changes else {
            return Ok(());
        };
        let queue = crate::medical::state::queue_prefix(None);
        let mut reviews = false;
        for change in keys {
            if change.put {
                self.replay.note_written(&change.key);
            }
            reviews |= change.key.starts_with(&queue);
        }
        let hashes = written.hashes_of(keys.iter().map(|c| c.key.as_slice()));
        written.written(hashes);
        if reviews && let Err(e) = self.reviews.reload(store) {
            // The feed has moved past these changes: only a whole read
            // can catch up now.
            self.stale.set(true);
            return Err(e);
        }
        Ok(())
    }
}

fn run<E>(
    log: &dyn Ledger,
    guard: &DiskGuard,
    memory: &Recorded<'_>,
    mut rx: mpsc::Receiver<Job<E>>,
    committed: &watch::Sender<u64>,
    written: &mut Written,
    counters: &Counters,
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
            refuse(jobs, || CommitError::DiskFull(e));
            continue;
        }
        if memory.stale.get() {
            if let Err(e) = memory.reload(log.store()) {
                tracing::error!(error = %e, "cannot read the caches back; nothing in this batch is acknowledged");
                let e = Arc::new(xgate_ledger::Error::Store(e));
                refuse(jobs, || CommitError::Append(Arc::clone(&e)));
                continue;
            }
            written.lost_track();
        }
        match commit(log, memory, jobs, written, counters) {
            Outcome::Durable(size) => grown(committed, size),
            Outcome::NothingAccepted => {}
            // The log takes no more commits until it is reopened: the
            // jobs queued behind are answered 503 as the queue drops.
            Outcome::Failed | Outcome::NotStarted if log.stopped() => return,
            // Nothing was prepared: the caches are as they were (or marked
            // stale by a catch-up that failed).
            Outcome::NotStarted => {}
            // What the batch's jobs recorded may or may not have reached
            // the store: they are read back before the next batch is
            // prepared.
            Outcome::Failed => memory.stale.set(true),
        }
    }
}

/// Answers every one of `jobs` with the error `why` makes, unprepared.
fn refuse<E>(jobs: impl IntoIterator<Item = Job<E>>, why: impl Fn() -> CommitError<E>) {
    for job in jobs {
        job.work.waiting().answer(Err(why()));
    }
}

impl<E> Work<E> {
    /// Where the job's answer goes, for a job answered without being
    /// prepared.
    fn waiting(self) -> Waiting<E> {
        match self {
            Work::Now(_, done) => Waiting::Now(done),
            Work::Ahead(_, _, done) => Waiting::Ahead(done),
        }
    }
}

/// `d` in whole microseconds.
fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// What became of one batch.
enum Outcome {
    /// Durable; the log's size after it.
    Durable(u64),
    /// Every job was refused: nothing was written.
    NothingAccepted,
    /// The turn never started, or could not catch up: nothing was prepared
    /// or written, and nothing recorded in memory.
    NotStarted,
    /// The append failed: nothing is acknowledged, and the store may hold
    /// all of the batch or none of it.
    Failed,
}

/// A batch as its jobs were prepared on the writer's turn.
struct Prepared<E> {
    /// The index of its first entry.
    first: u64,
    /// Where each accepted job's answer goes, with its entry's index.
    waiting: Vec<(u64, Waiting<E>)>,
    /// The hashes its writes are seen under, for later read sets.
    hashes: Vec<u64>,
    /// How long catching up and preparing took.
    took: std::time::Duration,
}

/// On the log's writer's turn: catches the caches up with other writers,
/// prepares `jobs` in order, and appends the accepted ones as one batch;
/// then answers every job. A job prepared ahead is sent back instead if
/// something it read has been written since (`written`, and the batch so
/// far).
fn commit<E>(
    log: &dyn Ledger,
    memory: &Recorded<'_>,
    jobs: Vec<Job<E>>,
    written: &mut Written,
    counters: &Counters,
) -> Outcome {
    let started = std::time::Instant::now();
    let mut jobs = Some(jobs);
    let mut prepared: Option<Prepared<E>> = None;
    let mut behind: Option<StoreError> = None;
    let outcome = log.turn(&mut |start| {
        if let Err(e) = memory.catch_up(&start.changes, log.store(), written) {
            // Caches that may be wrong decide nothing: this turn writes
            // nothing and its jobs are told the store is unavailable.
            behind = Some(e);
            return (Vec::new(), WriteBatch::new());
        }
        let first = start.next_index;
        let mut batch = WriteBatch::new();
        let mut entries = Vec::new();
        let mut waiting = Vec::new();
        for job in jobs.take().into_iter().flatten() {
            let index = first + entries.len() as u64;
            let view = BatchView {
                stored: Stored(log.store()),
                pending: &batch,
            };
            let (outcome, done) = match job.work {
                Work::Now(prepare, done) => (prepare(&view, index), Waiting::Now(done)),
                Work::Ahead(reads, prepare, done) => {
                    if !written.holds(&reads, &batch) {
                        // Something it read has changed: prepare it again.
                        counters.stale.fetch_add(1, Ordering::Relaxed);
                        let _ = done.send(None);
                        continue;
                    }
                    counters.current.fetch_add(1, Ordering::Relaxed);
                    (prepare(&view, index), Waiting::Ahead(done))
                }
            };
            match outcome {
                Ok(records) => {
                    batch.extend(records.writes);
                    entries.push(job.entry);
                    entries.extend(records.after);
                    waiting.push((index, done));
                }
                // Refused: no index, no trace.
                Err(e) => done.answer(Err(CommitError::Declined(e))),
            }
        }
        prepared = Some(Prepared {
            first,
            waiting,
            hashes: written.hashes(&batch),
            took: started.elapsed(),
        });
        (entries, batch)
    });
    let Some(Prepared {
        first,
        waiting,
        hashes,
        took,
    }) = prepared
    else {
        // The turn never started (the log refused it, or its database is
        // away), or could not bring the caches up to date: nothing was
        // prepared or written.
        let e = Arc::new(match (behind, outcome) {
            (Some(e), _) => xgate_ledger::Error::Store(e),
            (None, Err(e)) => e,
            (None, Ok(_)) => {
                xgate_ledger::Error::Invalid("the turn ended without preparing".into())
            }
        });
        tracing::error!(error = %e, "no turn to write on; nothing in this batch is acknowledged");
        refuse(jobs.take().into_iter().flatten(), || {
            CommitError::Append(Arc::clone(&e))
        });
        return Outcome::NotStarted;
    };
    if waiting.is_empty() {
        return Outcome::NothingAccepted;
    }
    let (accepted, writes) = (waiting.len(), hashes.len());
    // Whatever became of the sync, the store holds what it holds of the
    // batch: snapshots from now on count it.
    written.written(hashes);
    // What each batch costs the commit thread, for measurements
    // (docs/performance.md): its jobs' steps, then the log's append.
    tracing::debug!(
        jobs = accepted,
        state_hashes = writes,
        prepare_us = micros(took),
        append_us = micros(started.elapsed().saturating_sub(took)),
        "batch committed"
    );
    match outcome {
        Ok(committed) if committed.range.start == first => {
            let Some(checkpoint) = committed.checkpoint else {
                tracing::error!("the commit signed no checkpoint; refusing to acknowledge");
                for (_, done) in waiting {
                    done.answer(Err(CommitError::NoCheckpoint));
                }
                return Outcome::Durable(committed.range.end);
            };
            let size = committed.range.end;
            for (index, done) in waiting {
                done.answer(Ok((index, checkpoint.clone())));
            }
            Outcome::Durable(size)
        }
        Ok(committed) => {
            // The entries went elsewhere than the turn said: the records
            // were prepared for other indices. Refuse to vouch for them.
            tracing::error!(
                expected = first,
                got = committed.range.start,
                "the log appended elsewhere than its turn said; refusing to acknowledge"
            );
            for (_, done) in waiting {
                done.answer(Err(CommitError::OtherWriter));
            }
            Outcome::Durable(committed.range.end)
        }
        Err(e) => {
            tracing::error!(error = %e, "append failed; nothing in this batch is acknowledged");
            let e = Arc::new(e);
            for (_, done) in waiting {
                done.answer(Err(CommitError::Append(Arc::clone(&e))));
            }
            Outcome::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    //! Jobs prepared ahead against a real log: committed as prepared when
    //! nothing they read changed, prepared again when something did, and
    //! prepared at their turn when they keep losing; their reading never on
    //! the commit thread.
    use xgate_ledger::Log;

    use std::sync::Mutex;

    use xgate_ledger::OpenOptions;

    use super::*;
    use crate::apply::reads::Recording;
    use crate::apply::state::Stored;
    use crate::assets::state::asset_key;

    type Declined = String;

    struct Fixture {
        _dir: tempfile::TempDir,
        log: Arc<dyn Ledger>,
        committer: Arc<Committer<Declined>>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Arc::new(Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log"));
        log.set_checkpoint_every_commit(true);
        let replay = Arc::new(Replay::load(&*log).expect("replay ids"));
        let reviews = Arc::new(PendingReviews::load(log.store()).expect("reviews"));
        let committer = Committer::start(
            Arc::clone(&log) as Arc<dyn Ledger>,
            Arc::new(DiskGuard::default()),
            replay,
            reviews,
        )
        .expect("committer");
        Fixture {
            _dir: dir,
            log,
            committer: Arc::new(committer),
        }
    }

    fn on_commit_thread() -> bool {
        std::thread::current().name() == Some(THREAD_NAME)
    }

    /// A job that sets `key` to `value`.
    fn put(key: Vec<u8>, value: &str) -> Prepare<Declined> {
        let value = value.as_bytes().to_vec();
        Box::new(move |_, _| {
            let mut batch = WriteBatch::new();
            batch.put(key, value);
            Ok(batch.into())
        })
    }

    /// A job that copies what it found under `from` to `to`: read ahead, or
    /// read at its turn as the fallback.
    fn copy(
        log: &Arc<dyn Ledger>,
        from: Vec<u8>,
        to: Vec<u8>,
        between: impl Fn() + Send + Sync + 'static,
    ) -> (
        impl Fn(Snapshot) -> Result<Ahead<Declined>, Declined> + Send + Sync + 'static,
        Prepare<Declined>,
    ) {
        let log = Arc::clone(log);
        let (source, target) = (from.clone(), to.clone());
        let ahead = move |snapshot: Snapshot| {
            assert!(!on_commit_thread(), "read ahead on the commit thread");
            let store = Stored(log.store());
            let reading = Recording::new(&store, snapshot);
            let found = reading.get(&source).map_err(|e| e.to_string())?;
            between();
            let target = target.clone();
            Ok(Ahead {
                reads: reading.finish(),
                prepare: Box::new(move |_: &BatchView<'_>, _| {
                    assert!(on_commit_thread());
                    let mut batch = WriteBatch::new();
                    batch.put(target, found.unwrap_or_default());
                    Ok(batch.into())
                }),
            })
        };
        let fallback: Prepare<Declined> = Box::new(move |view, _| {
            assert!(on_commit_thread());
            let found = view.get(&from).map_err(|e| e.to_string())?;
            let mut batch = WriteBatch::new();
            batch.put(to, found.unwrap_or_default());
            Ok(batch.into())
        });
        (ahead, fallback)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    fn value(log: &dyn Ledger, key: &[u8]) -> Vec<u8> {
        log.store().get(key).expect("read").unwrap_or_default()
    }

    #[test]
    fn a_job_read_ahead_commits_as_prepared_if_nothing_it_read_changed() {
        let f = fixture();
        let (k, out) = (asset_key("K"), asset_key("OUT"));
        runtime().block_on(async {
            f.committer
                .append(b"e0".to_vec(), put(k.clone(), "v0"))
                .await
                .expect("put");
            // Writes elsewhere meanwhile do not matter.
            let committer = Arc::clone(&f.committer);
            let other = asset_key("OTHER");
            let (ahead, fallback) = copy(&f.log, k.clone(), out.clone(), move || {
                let handle = tokio::runtime::Handle::current();
                handle
                    .block_on(committer.append(b"other".to_vec(), put(other.clone(), "x")))
                    .expect("other");
            });
            let (index, _) = f
                .committer
                .append_ahead(b"e1".to_vec(), ahead, fallback)
                .await
                .expect("copy");
            assert_eq!(index, 2);
        });
        assert_eq!(value(&*f.log, &out), b"v0");
        let counts = f.committer.ahead_counts();
        assert_eq!(
            counts,
            AheadCounts {
                current: 1,
                stale: 0,
                fallbacks: 0
            }
        );
    }

    /// Between the preparation's read and its turn, a write of the key read
    /// is committed, in each of the first `writes` attempts (at most
    /// [`ATTEMPTS`]).
    fn race(writes: usize) -> (Fixture, Vec<u8>) {
        assert!(writes <= ATTEMPTS as usize);
        let f = fixture();
        let (k, out) = (asset_key("K"), asset_key("OUT"));
        let left = Arc::new(Mutex::new(writes));
        let committer = Arc::clone(&f.committer);
        let key = k.clone();
        let (ahead, fallback) = copy(&f.log, k.clone(), out.clone(), move || {
            let mut left = left.lock().expect("lock");
            if *left == 0 {
                return;
            }
            let n = writes - *left + 1;
            *left -= 1;
            let handle = tokio::runtime::Handle::current();
            let job = put(key.clone(), &format!("v{n}"));
            handle
                .block_on(committer.append(format!("w{n}").into_bytes(), job))
                .expect("the racing write");
        });
        runtime().block_on(async {
            f.committer
                .append(b"e0".to_vec(), put(k.clone(), "v0"))
                .await
                .expect("put");
            let (index, _) = f
                .committer
                .append_ahead(b"copy".to_vec(), ahead, fallback)
                .await
                .expect("copy");
            // In log order: v0, the racing writes, then the copy.
            assert_eq!(index, 1 + writes as u64);
        });
        (f, out)
    }

    #[test]
    fn a_write_between_reading_and_its_turn_has_it_prepared_again() {
        let (f, out) = race(1);
        // The copy is decided at its place in the log: after v1.
        assert_eq!(value(&*f.log, &out), b"v1");
        assert_eq!(
            f.committer.ahead_counts(),
            AheadCounts {
                current: 1,
                stale: 1,
                fallbacks: 0
            }
        );
    }

    #[test]
    fn a_job_that_keeps_losing_is_prepared_at_its_turn() {
        let attempts = ATTEMPTS as usize;
        let (f, out) = race(attempts);
        // Every attempt lost to a racing write; then the whole job ran at
        // its turn, after the last of them.
        assert_eq!(value(&*f.log, &out), format!("v{attempts}").as_bytes());
        assert_eq!(
            f.committer.ahead_counts(),
            AheadCounts {
                current: 0,
                stale: ATTEMPTS.into(),
                fallbacks: 1
            }
        );
        assert_eq!(f.log.size(), 2 + ATTEMPTS as u64);
    }

    #[test]
    fn a_refusal_read_ahead_is_the_jobs_answer() {
        let f = fixture();
        runtime().block_on(async {
            let ahead = |_: Snapshot| -> Result<Ahead<Declined>, Declined> { Err("no".into()) };
            let never: Prepare<Declined> = Box::new(|_, _| unreachable!("not a fallback"));
            let e = f
                .committer
                .append_ahead(b"x".to_vec(), ahead, never)
                .await
                .expect_err("refused");
            assert!(matches!(e, CommitError::Declined(d) if d == "no"));
        });
        assert_eq!(f.log.size(), 0);
    }
}
