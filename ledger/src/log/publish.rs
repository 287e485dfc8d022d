//! Publishing checkpoints: signing one on demand ([`Log::checkpoint`]) or
//! with every commit ([`Log::set_checkpoint_every_commit`]), and handing
//! out the latest and every stored one.
//!
//! The log signs a checkpoint only for durable entries, stores every one it
//! signs, and before signing on demand checks the tree still agrees with
//! the latest, so it never signs two checkpoints that disagree.

use super::Log;
use super::latest;
use super::lock::lock;
use crate::checkpoint::SignedCheckpoint;
use crate::error::Error;
use crate::layout;
use crate::proof;
use crate::store::{Store, WriteBatch};

impl<S: Store> Log<S> {
    /// The latest signed checkpoint, if one was ever signed.
    pub fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        self.latest.get()
    }

    /// Signs (and durably stores) a checkpoint for the current size, or
    /// returns the latest one if the log has not grown since.
    ///
    /// Before signing, the tree is checked to still agree with the latest
    /// checkpoint, so the log never signs two inconsistent checkpoints.
    /// Appends wait while it runs (one sync).
    ///
    /// # Errors
    /// [`Error::Store`] if the checkpoint cannot be made durable (it is then
    /// not returned), [`Error::Corrupt`] if the tree disagrees with the latest
    /// checkpoint.
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, Error> {
        // The writer's turn: no commit signs a checkpoint meanwhile.
        let _turn = lock(&self.writer);
        let size = self.head.durable();
        let latest = self.latest.get();
        if let Some(l) = latest.as_ref().filter(|l| l.checkpoint.size == size) {
            return Ok(l.clone());
        }
        let reader = self.reader();
        if let Some(l) = &latest {
            reader.agrees_with(&l.checkpoint)?;
        }
        let signed = self.latest.sign(size, proof::root_at(&reader, size)?);
        let mut batch = WriteBatch::new();
        batch.put(
            layout::checkpoint_key(size),
            signed.note.clone().into_bytes(),
        );
        self.store.apply(batch)?;
        self.store.sync()?;
        self.latest.record(&signed)?;
        Ok(signed)
    }

    /// Makes every later commit sign a checkpoint for its new size in the
    /// same store batch as its entries, so the checkpoint costs no extra
    /// sync and each append can be acknowledged with a checkpoint that
    /// covers it ([`Committed::checkpoint`](crate::Committed)).
    ///
    /// Every such checkpoint is stored. The copy outside the store is
    /// refreshed at most once a second (and when the log is dropped): it is
    /// an anchor against rollback, which an older checkpoint still is.
    pub fn set_checkpoint_every_commit(&self, on: bool) {
        self.latest.set_every_commit(on);
    }

    /// Every stored checkpoint note, oldest first.
    pub fn checkpoints(&self) -> impl Iterator<Item = Result<(u64, String), Error>> + '_ {
        latest::stored(&self.store)
    }
}
