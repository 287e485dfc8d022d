//! Publishing checkpoints: on demand ([`Log::checkpoint`]) or with every
//! commit ([`Log::set_checkpoint_every_commit`]), and handing out the
//! latest and every published one.
//!
//! The log signs a checkpoint only for durable entries, and only ever for
//! the one tree its journal and files hold, so it never signs two
//! checkpoints that disagree.

use super::Log;
use crate::checkpoint::SignedCheckpoint;
use crate::error::Error;
use crate::store::Store;

impl<S: Store> Log<S> {
    /// The latest signed checkpoint, if one was ever signed.
    pub fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        self.shared.latest.get()
    }

    /// The latest published checkpoint: the newest whose tiles, partial
    /// ones included, are all on disk (what witnesses are asked to cosign).
    pub fn published_checkpoint(&self) -> Option<SignedCheckpoint> {
        self.shared.latest.last_published()
    }

    /// Publishes a checkpoint for the current size (tile files, partial
    /// tiles, the checkpoint appended to the published ones and written to
    /// the tlog-tiles `checkpoint` file) and returns it; if the log has not
    /// grown since the last one, returns that.
    ///
    /// # Errors
    /// A storage error if the files cannot be written; then nothing new is
    /// published.
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, Error> {
        self.shared.integrate(super::progress::Publish::Always)?;
        let size = self.shared.head.durable();
        match self.shared.latest.get() {
            Some(l) if l.checkpoint.size == size => Ok(l),
            _ => Err(Error::Corrupt(
                "the log published no checkpoint for its current size".into(),
            )),
        }
    }

    /// Makes every later commit sign a checkpoint for its new size in the
    /// same journal record as its entries, so the checkpoint costs no extra
    /// barrier and each append can be acknowledged with a checkpoint that
    /// covers it ([`Committed::checkpoint`](crate::Committed)).
    ///
    /// Such checkpoints are durable in the journal and handed out with the
    /// commit; the integrator publishes one at most once a second (tiles,
    /// `ledger/checkpoints`, the tlog-tiles `checkpoint` file and the mirror).
    pub fn set_checkpoint_every_commit(&self, on: bool) {
        self.shared.latest.set_every_commit(on);
    }

    /// Every published checkpoint note, oldest first, with its size.
    ///
    /// # Errors
    /// A storage error if the file cannot be read.
    pub fn checkpoints(&self) -> Result<Vec<(u64, String)>, Error> {
        self.shared.notes.read_all()
    }

    /// Adds a checkpoint this log's key signed for `size` (already checked
    /// against the tree) to the published ones: for a migration, which
    /// keeps the old log's checkpoints.
    pub(crate) fn import_published(&self, size: u64, note: &str) -> Result<(), Error> {
        let mut progress = super::lock::lock(&self.shared.progress);
        self.shared.notes.append(size, note)?;
        progress.noted = progress.noted.max(size);
        Ok(())
    }

    /// Serves `note` as the tlog-tiles `checkpoint` file of a witnessed log
    /// ([`OpenOptions::witnessed`](crate::OpenOptions)): a checkpoint this
    /// log signed and published, with the cosignatures that made it reach
    /// the witnesses' quorum (checking those is the caller's business; the
    /// log checks its own). Returns its size.
    ///
    /// The note must carry this log's valid signature on a checkpoint whose
    /// root is this tree's root at its size, and be no smaller than the one
    /// served now (served checkpoints only move forward); the partial tiles
    /// of every published size are on disk already.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] for a note this log did not sign or a tree
    /// that is not this one, [`Error::Corrupt`] for a size not yet
    /// published or behind the one served, a storage error if the file
    /// cannot be written (the old one is then still served).
    pub fn publish_cosigned(&self, note: &str) -> Result<u64, Error> {
        let checkpoint = crate::checkpoint::verify_checkpoint(note, &self.verifier())?;
        let mut progress = super::lock::lock(&self.shared.progress);
        if checkpoint.size > progress.published {
            return Err(Error::Corrupt(format!(
                "checkpoint size {} is not published yet (published: {})",
                checkpoint.size, progress.published
            )));
        }
        if checkpoint.size < progress.served {
            return Err(Error::Corrupt(format!(
                "checkpoint size {} is behind the one served ({})",
                checkpoint.size, progress.served
            )));
        }
        let root = crate::proof::root_at(&self.shared.reader(), checkpoint.size)?;
        if root != checkpoint.root {
            return Err(Error::Corrupt(format!(
                "the checkpoint's root at size {} is not this log's",
                checkpoint.size
            )));
        }
        self.shared.tiles.write_checkpoint(note.as_bytes())?;
        progress.served = checkpoint.size;
        Ok(checkpoint.size)
    }

    /// Why the last integration round failed, if it did: the journal keeps
    /// everything meanwhile, but tiles and the published checkpoint lag.
    pub fn integration_failure(&self) -> Option<String> {
        super::lock::lock(&self.shared.progress).failure.clone()
    }
}
