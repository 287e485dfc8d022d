//! [`PublicLog`]: where the public listener reads what it serves, off the
//! async runtime and never more than a few reads at once.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Semaphore;
use xgate_ledger::Ledger;
use xgate_ledger::tlog::Resource;

/// Reads of the public listener on blocking threads at once. The blocking
/// pool is shared with the commits' waits for their group commit: a flood
/// of public requests queues here, behind at most this many threads, and
/// never takes the threads appends need.
pub const MAX_READS: usize = 8;

/// A read of the log's files that failed. The message names a file of the
/// log, never its contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The file could not be read, or does not hold what its path names.
    #[error(transparent)]
    Log(#[from] xgate_ledger::Error),
    /// The blocking read did not complete (the runtime is shutting down).
    #[error("the read was cancelled: {0}")]
    Cancelled(#[from] tokio::task::JoinError),
}

/// The log's resources as the public listener serves them: the files the
/// integrator wrote under `DATA_DIR/log/`, read through the ledger
/// ([`Log::read_public`]), which parses nothing from a request and checks
/// each file holds what its path names.
pub struct PublicLog {
    log: Arc<dyn Ledger>,
    reads: Semaphore,
}

impl PublicLog {
    /// Serves `log`'s files.
    pub fn new(log: Arc<dyn Ledger>) -> PublicLog {
        PublicLog {
            log,
            reads: Semaphore::new(MAX_READS),
        }
    }

    /// The bytes of `resource`, or `None` if the log has no such file.
    ///
    /// # Errors
    /// [`ReadError`] if the file cannot be read or is damaged.
    pub async fn get(&self, resource: Resource) -> Result<Option<Bytes>, ReadError> {
        match resource {
            Resource::Checkpoint => self.checkpoint().await,
            other => self.read(other).await,
        }
    }

    /// What `GET /checkpoint` serves: the one place that decides it.
    ///
    /// Today the file `DATA_DIR/log/checkpoint` as it is: the newest
    /// checkpoint the log published, signed by the log, for a size whose
    /// partial tiles were written before it. Once witnesses cosign, this is
    /// where the newest checkpoint that reached the quorum, with its
    /// cosignatures, is read instead.
    ///
    /// # Errors
    /// [`ReadError`] if the file cannot be read.
    pub async fn checkpoint(&self) -> Result<Option<Bytes>, ReadError> {
        self.read(Resource::Checkpoint).await
    }

    /// Reads `resource`'s file on a blocking thread, at most [`MAX_READS`]
    /// at once.
    async fn read(&self, resource: Resource) -> Result<Option<Bytes>, ReadError> {
        // The semaphore is never closed: `acquire` cannot fail.
        let _permit = self.reads.acquire().await.ok();
        let log = Arc::clone(&self.log);
        let bytes = tokio::task::spawn_blocking(move || log.read_public(&resource)).await??;
        Ok(bytes.map(Bytes::from))
    }
}
