//! The log's checkpoint signer, the latest checkpoint it signed, and the
//! copy of the latest published one in the data directory (the mirror
//! file, `DIR/checkpoint`): the anchor that stops a damaged journal from
//! quietly becoming a shorter log under the same key.
//!
//! New checkpoints are only ever made on the writer's turn (by a commit or
//! by `Log::checkpoint`), so they arrive here in order; the lock inside is
//! for the readers of [`Latest::get`].

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::lock::lock;
use crate::checkpoint::{Checkpoint, NoteSigner, NoteVerifier, SignedCheckpoint};
use crate::error::{Error, io_at};
use crate::fsutil::write_atomic;
use crate::hash::Hash;

/// The signer, the latest checkpoint and its mirror.
pub(super) struct Latest {
    signer: NoteSigner,
    /// Whether each commit signs a checkpoint in the same batch.
    every_commit: AtomicBool,
    latest: Mutex<Option<SignedCheckpoint>>,
    /// Where a copy of the latest checkpoint is kept outside the store.
    mirror: Option<PathBuf>,
    /// The size of the checkpoint the mirror holds.
    mirrored: Mutex<Option<u64>>,
    /// The latest published checkpoint: its tiles, partial ones included,
    /// are on disk.
    last_published: Mutex<Option<SignedCheckpoint>>,
}

impl Latest {
    /// The state of a log just opened: `stored` is the latest checkpoint in
    /// the journal or the published ones, `mirrored` the one in the mirror
    /// file, both already checked against the tree.
    pub(super) fn new(
        signer: NoteSigner,
        mirror: Option<PathBuf>,
        stored: Option<SignedCheckpoint>,
        mirrored: Option<SignedCheckpoint>,
    ) -> Latest {
        let mirrored_at = mirrored.as_ref().map(|m| m.checkpoint.size);
        let latest = [stored, mirrored]
            .into_iter()
            .flatten()
            .max_by_key(|s| s.checkpoint.size);
        Latest {
            signer,
            every_commit: AtomicBool::new(false),
            latest: Mutex::new(latest),
            mirror,
            mirrored: Mutex::new(mirrored_at),
            last_published: Mutex::new(None),
        }
    }

    /// The log's origin (the name of its signing key).
    pub(super) fn origin(&self) -> &str {
        self.signer.name()
    }

    /// The verifier key for the log's checkpoints.
    pub(super) fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// The latest checkpoint, if the log ever signed one.
    pub(super) fn get(&self) -> Option<SignedCheckpoint> {
        lock(&self.latest).clone()
    }

    /// Whether each commit signs a checkpoint.
    pub(super) fn every_commit(&self) -> bool {
        self.every_commit.load(Ordering::Acquire)
    }

    /// Makes each later commit sign a checkpoint, or stop signing.
    pub(super) fn set_every_commit(&self, on: bool) {
        self.every_commit.store(on, Ordering::Release);
    }

    /// Signs the checkpoint for `size` with `root`.
    pub(super) fn sign(&self, size: u64, root: Hash) -> SignedCheckpoint {
        let checkpoint = Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root,
        };
        let note = self.signer.sign_note(&checkpoint.body());
        SignedCheckpoint { checkpoint, note }
    }

    /// Records `signed`, which a commit made durable with its entries.
    /// The mirror follows when the checkpoint is published (`published`).
    pub(super) fn advance(&self, signed: &SignedCheckpoint) {
        *lock(&self.latest) = Some(signed.clone());
    }

    /// Records `signed` as published: the mirror holds it once this
    /// returns `Ok`.
    ///
    /// # Errors
    /// [`Error::Io`] if the mirror cannot be written; it keeps the last
    /// checkpoint published before, still a valid anchor.
    pub(super) fn published(&self, signed: &SignedCheckpoint) -> Result<(), Error> {
        self.write_mirror(signed)?;
        self.was_published(signed);
        let mut latest = lock(&self.latest);
        if latest
            .as_ref()
            .is_none_or(|l| l.checkpoint.size < signed.checkpoint.size)
        {
            *latest = Some(signed.clone());
        }
        Ok(())
    }

    /// Records `signed` as the latest published checkpoint (at open: the
    /// last one in `ledger/checkpoints`).
    pub(super) fn was_published(&self, signed: &SignedCheckpoint) {
        let mut last = lock(&self.last_published);
        if last
            .as_ref()
            .is_none_or(|l| l.checkpoint.size <= signed.checkpoint.size)
        {
            *last = Some(signed.clone());
        }
    }

    /// The latest published checkpoint, if any.
    pub(super) fn last_published(&self) -> Option<SignedCheckpoint> {
        lock(&self.last_published).clone()
    }

    /// Leaves the mirror holding the latest checkpoint, which commits may
    /// have signed since it was last published: for when the log closes.
    pub(super) fn close(&self) -> Result<(), Error> {
        let latest = lock(&self.latest).clone();
        let mirrored = *lock(&self.mirrored);
        match latest.filter(|l| Some(l.checkpoint.size) != mirrored) {
            Some(signed) => self.write_mirror(&signed),
            None => Ok(()),
        }
    }

    fn write_mirror(&self, signed: &SignedCheckpoint) -> Result<(), Error> {
        let Some(path) = &self.mirror else {
            return Ok(());
        };
        write_atomic(path, signed.note.as_bytes(), 0o600).map_err(io_at(path))?;
        *lock(&self.mirrored) = Some(signed.checkpoint.size);
        Ok(())
    }
}
