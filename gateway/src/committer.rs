//! The one thread that writes to the log on the gateway's behalf.
//!
//! Requests hand their entry (and the records that must commit with it) to
//! this thread over a bounded channel and await the outcome; the thread
//! takes everything queued, writes it as one atomic batch with one flush
//! and one signed checkpoint, and answers each request. This is the
//! ledger's group commit, driven from one thread instead of from a
//! blocking thread per request: under load, a thread per waiting request
//! spent more time being woken than working (finding in
//! docs/performance.md, "Gateway").
//!
//! The channel is bounded, so a gateway that cannot keep up slows its
//! clients down instead of queueing without limit.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use xgate_ledger::{Log, SignedCheckpoint, SledStore, WriteBatch};

use crate::errors::{ApiError, Code};

/// Most appends waiting for the committer; more wait for room.
const QUEUE: usize = 4096;
/// Most entries written in one batch.
const MAX_BATCH: usize = 1024;

/// Records to commit with an entry, built from the entry's index.
pub type WithIndex = Box<dyn FnOnce(u64) -> WriteBatch + Send>;

/// Where an entry went: its index and a checkpoint that covers it, durable.
pub type Appended = (u64, SignedCheckpoint);

struct Job {
    entry: Vec<u8>,
    with: WithIndex,
    done: oneshot::Sender<Result<Appended, ApiError>>,
}

/// The committer thread. Dropping it closes the queue, lets the thread
/// finish what is queued, and waits for it, so the log is released in an
/// orderly way (its `Drop` refreshes the checkpoint copy outside the
/// database) before the process exits.
#[derive(Debug)]
pub struct Committer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("len", &self.entry.len())
            .finish()
    }
}

impl Committer {
    /// Starts the committer for `log`, which must sign a checkpoint with
    /// every commit.
    ///
    /// # Errors
    /// If the thread cannot be started.
    pub fn start(log: Arc<Log<SledStore>>) -> std::io::Result<Committer> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("xgate-commit".into())
            .spawn(move || run(&log, rx))?;
        Ok(Committer {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    /// Appends `entry`, committing `with`'s records in the same batch, and
    /// returns once both are durable.
    ///
    /// # Errors
    /// `storage_unavailable` if the log could not make them durable (then
    /// nothing is acknowledged), `unavailable` if the committer has stopped.
    pub async fn append(&self, entry: Vec<u8>, with: WithIndex) -> Result<Appended, ApiError> {
        let (done, outcome) = oneshot::channel();
        let stopped = || ApiError::new(Code::Unavailable, "the gateway is shutting down");
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(Job { entry, with, done })
            .await
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

fn run(log: &Log<SledStore>, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut entries = Vec::with_capacity(jobs.len());
        let mut withs = Vec::with_capacity(jobs.len());
        let mut waiting = Vec::with_capacity(jobs.len());
        for job in jobs {
            entries.push(job.entry);
            withs.push(job.with);
            waiting.push(job.done);
        }
        let outcome = log.append_batch_with(&entries, move |range| {
            let mut batch = WriteBatch::new();
            for (index, with) in range.zip(withs) {
                batch.extend(with(index));
            }
            batch
        });
        match outcome {
            Ok(committed) => {
                let Some(checkpoint) = committed.checkpoint else {
                    let e = ApiError::new(Code::Internal, "the commit signed no checkpoint");
                    for done in waiting {
                        let _ = done.send(Err(e.clone()));
                    }
                    continue;
                };
                for (index, done) in committed.range.zip(waiting) {
                    // A request that gave up waiting is simply not told.
                    let _ = done.send(Ok((index, checkpoint.clone())));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "append failed; nothing in this batch is acknowledged");
                let e = ApiError::from(e);
                for done in waiting {
                    let _ = done.send(Err(e.clone()));
                }
            }
        }
    }
}
