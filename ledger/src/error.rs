//! The one error type at the ledger's boundary.

use std::path::PathBuf;

use crate::checkpoint::{CheckpointError, NoteVerifier, verify_checkpoint};
use crate::hash::Hash;
use crate::store::StoreError;

/// Everything that can go wrong opening, appending to or reading a log.
///
/// Messages name indices, sizes and paths, never entry contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage backend failed; nothing was acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An index or size beyond the log's current size.
    #[error("{what} {value} is out of range: the log has {size} entries")]
    OutOfRange {
        /// Which argument (`"index"`, `"size"`, ...).
        what: &'static str,
        /// The value asked for.
        value: u64,
        /// The log's size when asked.
        size: u64,
    },
    /// A request that can never be satisfied, whatever the log's size.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// An entry larger than [`MAX_ENTRY_LEN`](crate::MAX_ENTRY_LEN).
    #[error("entry of {len} bytes exceeds the {max}-byte limit")]
    EntryTooLarge {
        /// Length of the entry.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Stored data contradicts itself; the log refuses to go on.
    #[error("log is corrupt: {0}")]
    Corrupt(String),
    /// A checkpoint or key failed to parse or verify.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Another process has the data directory open.
    #[error("data dir {} is locked by another process", .0.display())]
    Locked(PathBuf),
    /// The directory does not hold a log (missing, or not one of ours).
    #[error("{}: not an xgate log data dir ({reason})", path.display())]
    NotALog {
        /// The directory.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// The log was created with another origin than the one configured.
    #[error("log origin is {existing:?}, but {requested:?} was requested")]
    OriginMismatch {
        /// The origin the log's key carries.
        existing: String,
        /// The origin asked for.
        requested: String,
    },
    /// The log's signing key is not the key the caller gave
    /// ([`OpenOptions::key`](crate::OpenOptions::key)): another log's
    /// directory, or another key for this log. Keys are named by
    /// `<name>+<hex id>`, never by their material.
    #[error("the log is signed by key {existing}, but key {given} was given for it")]
    KeyMismatch {
        /// The existing log's key.
        existing: String,
        /// The key given.
        given: String,
    },
    /// A migration's converter refused a stored record.
    #[cfg(feature = "sled")]
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// The journal failed.
    #[cfg(feature = "sled")]
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// A tlog-tiles file could not be written or read.
    #[cfg(feature = "sled")]
    #[error(transparent)]
    Tiles(#[from] crate::tlog::TlogError),
    /// A body file failed.
    #[cfg(feature = "sled")]
    #[error(transparent)]
    Bodies(#[from] crate::blobs::BlobError),
    /// A file-system operation on the data directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A converter's failure, with the key prefix it failed on.
#[derive(Debug, thiserror::Error)]
#[error("cannot convert a stored record under prefix {prefix}: {source}")]
pub struct ConvertError {
    /// The first two bytes of the key, as text (the owner's key prefix).
    pub prefix: String,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Wraps an I/O failure on `path` into [`Error::Io`], for `map_err`.
#[cfg(feature = "sled")]
pub(crate) fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks the sizes a consistency proof is asked between, whatever holds
/// the log: a non-empty old tree, not larger than the new one.
///
/// # Errors
/// [`Error::Invalid`] for `old == 0` or `old > new`.
pub(crate) fn check_consistency_sizes(old: u64, new: u64) -> Result<(), Error> {
    if old == 0 {
        return Err(Error::Invalid(
            "consistency needs a non-empty old tree (from >= 1)".into(),
        ));
    }
    if old > new {
        return Err(Error::Invalid(format!(
            "from ({old}) is larger than to ({new})"
        )));
    }
    Ok(())
}

/// Checks a tree size a proof is asked for, whatever holds the log: at
/// least 1 and not past `current`, the log's size (asked only then).
///
/// # Errors
/// [`Error::Invalid`] for 0, [`Error::OutOfRange`] past the end, or what
/// `current` returns.
pub(crate) fn check_proof_size(
    size: u64,
    current: impl FnOnce() -> Result<u64, Error>,
) -> Result<(), Error> {
    if size == 0 {
        return Err(Error::Invalid("tree size must be at least 1".into()));
    }
    let current = current()?;
    if size > current {
        return Err(Error::OutOfRange {
            what: "size",
            value: size,
            size: current,
        });
    }
    Ok(())
}

/// Checks a checkpoint note a log keeps for size `at`, whatever holds it:
/// signed with `verifier`, claiming size `at` and the tree's root there
/// (`root_at`, asked only once the rest holds).
///
/// # Errors
/// [`Error::Corrupt`] saying which, or what `root_at` returns.
pub(crate) fn check_kept_note(
    at: u64,
    note: &str,
    verifier: &NoteVerifier,
    root_at: impl FnOnce(u64) -> Result<Hash, Error>,
) -> Result<(), Error> {
    let checkpoint = verify_checkpoint(note, verifier)
        .map_err(|e| Error::Corrupt(format!("checkpoint at size {at}: {e}")))?;
    if checkpoint.size != at {
        return Err(Error::Corrupt(format!(
            "checkpoint at size {at} claims size {}",
            checkpoint.size
        )));
    }
    if root_at(at)? != checkpoint.root {
        return Err(Error::Corrupt(format!(
            "checkpoint at size {at} has the wrong root"
        )));
    }
    Ok(())
}
