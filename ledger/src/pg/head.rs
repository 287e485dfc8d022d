//! What this process knows of the tree state: the size and the
//! checkpoints, as last read from the database or written by this
//! process's own batches. Sizes only grow here: a read that raced with a
//! commit of this process never takes the size back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::checkpoint::{NoteVerifier, SignedCheckpoint};
use crate::error::Error;

/// How old the size may be before a reader refreshes it.
pub(super) const FRESH: Duration = Duration::from_millis(5);

/// The tree state, as this process knows it.
#[derive(Clone, Debug, Default)]
pub(super) struct Known {
    /// Entries in the log.
    pub size: u64,
    /// The newest checkpoint signed.
    pub latest: Option<SignedCheckpoint>,
    /// What a witnessed log serves.
    pub served: Option<SignedCheckpoint>,
}

/// The tree-state row as read, notes only where they changed.
#[derive(Clone, Debug, Default)]
pub(super) struct HeadRow {
    /// Entries in the log.
    pub size: u64,
    /// The newest checkpoint signed: its size and, if not the one known,
    /// its note.
    pub latest: (Option<u64>, Option<String>),
    /// The served checkpoint, likewise.
    pub served: (Option<u64>, Option<String>),
}

/// The state and when it was read.
pub(super) struct Head {
    state: Mutex<(Known, Option<Instant>)>,
    /// A reader is refreshing the state: the others use what is known
    /// rather than all asking the database at once.
    refreshing: AtomicBool,
}

/// The right to refresh the state, until dropped.
pub(super) struct Refreshing<'a>(&'a AtomicBool);

impl Drop for Refreshing<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Head {
    /// Knows nothing yet.
    pub(super) fn new() -> Head {
        Head {
            state: Mutex::new((Known::default(), None)),
            refreshing: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Known, Option<Instant>)> {
        // Only plain assignments happen under the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What is known now.
    pub(super) fn known(&self) -> Known {
        self.lock().0.clone()
    }

    /// The right to refresh the state, if it is older than [`FRESH`] (or
    /// was never read) and no other reader is refreshing it.
    pub(super) fn due(&self) -> Option<Refreshing<'_>> {
        let stale = self.lock().1.is_none_or(|at| at.elapsed() >= FRESH);
        let free = stale
            && self
                .refreshing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        free.then_some(Refreshing(&self.refreshing))
    }

    /// The sizes of the checkpoints known, for [`HeadRow`]'s query.
    pub(super) fn note_sizes(&self) -> (Option<u64>, Option<u64>) {
        let state = self.lock();
        (
            state.0.latest.as_ref().map(|c| c.checkpoint.size),
            state.0.served.as_ref().map(|c| c.checkpoint.size),
        )
    }

    /// Takes in a row read at `at`, checking any new note against the
    /// log's key.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a stored note this log did not sign.
    pub(super) fn read(
        &self,
        row: HeadRow,
        at: Instant,
        verifier: &NoteVerifier,
    ) -> Result<(), Error> {
        let open = |note: Option<String>, what: &str| -> Result<Option<SignedCheckpoint>, Error> {
            note.map(|n| {
                SignedCheckpoint::open(n, verifier)
                    .map_err(|e| Error::Corrupt(format!("the {what} checkpoint stored: {e}")))
            })
            .transpose()
        };
        let latest = open(row.latest.1, "latest")?;
        let served = open(row.served.1, "served")?;
        let mut state = self.lock();
        state.0.size = state.0.size.max(row.size);
        if let Some(latest) = latest {
            advance(&mut state.0.latest, latest);
        }
        if let Some(served) = served {
            advance(&mut state.0.served, served);
        }
        state.1 = Some(at);
        Ok(())
    }

    /// Records a batch this process committed.
    pub(super) fn committed(&self, size: u64, latest: Option<&SignedCheckpoint>) {
        let mut state = self.lock();
        state.0.size = state.0.size.max(size);
        if let Some(latest) = latest {
            advance(&mut state.0.latest, latest.clone());
        }
    }

    /// Records a checkpoint this process served.
    pub(super) fn served(&self, served: SignedCheckpoint) {
        advance(&mut self.lock().0.served, served);
    }
}

/// Keeps the larger of two checkpoints.
fn advance(slot: &mut Option<SignedCheckpoint>, new: SignedCheckpoint) {
    if slot
        .as_ref()
        .is_none_or(|old| old.checkpoint.size <= new.checkpoint.size)
    {
        *slot = Some(new);
    }
}
