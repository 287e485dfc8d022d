//! The log's checkpoint signer, the latest checkpoint it signed, and the
//! copy of that checkpoint kept outside the store (the mirror file of a
//! data directory).
//!
//! New checkpoints are only ever made on the writer's turn (by a commit or
//! by `Log::checkpoint`), so they arrive here in order; the lock inside is
//! for the readers of [`Latest::get`].

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::lock::lock;
use crate::checkpoint::{Checkpoint, NoteSigner, NoteVerifier, SignedCheckpoint};
use crate::error::{Error, io_at};
use crate::fsutil::write_atomic;
use crate::hash::Hash;
use crate::layout;
use crate::store::Store;

/// How often checkpoints signed by commits refresh the mirror file.
const MIRROR_EVERY: Duration = Duration::from_secs(1);

/// The signer, the latest checkpoint and its mirror.
pub(super) struct Latest {
    signer: NoteSigner,
    /// Whether each commit signs a checkpoint in the same batch.
    every_commit: AtomicBool,
    latest: Mutex<Option<SignedCheckpoint>>,
    /// Where a copy of the latest checkpoint is kept outside the store.
    mirror: Option<PathBuf>,
    /// When the mirror was last written, and the size it then held.
    mirrored: Mutex<Option<(Instant, u64)>>,
}

impl Latest {
    /// The state of a log just opened: `stored` is the latest checkpoint in
    /// the store, `mirrored` the one in the mirror file, both already
    /// checked against the tree.
    pub(super) fn new(
        signer: NoteSigner,
        mirror: Option<PathBuf>,
        stored: Option<SignedCheckpoint>,
        mirrored: Option<SignedCheckpoint>,
    ) -> Latest {
        let mirrored_at = mirrored
            .as_ref()
            .map(|m| (Instant::now(), m.checkpoint.size));
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

    /// Records `signed`, which `Log::checkpoint` has made durable, once the
    /// mirror holds it.
    ///
    /// # Errors
    /// [`Error::Io`] if the mirror cannot be written: then `signed` is not
    /// the latest either, and is not handed out.
    pub(super) fn record(&self, signed: &SignedCheckpoint) -> Result<(), Error> {
        self.write_mirror(signed)?;
        *lock(&self.latest) = Some(signed.clone());
        Ok(())
    }

    /// Records `signed`, which a commit made durable with its entries, and
    /// refreshes the mirror if [`MIRROR_EVERY`] has passed.
    ///
    /// The mirror is an anchor against rollback, which an older checkpoint
    /// still is, so a failed refresh fails nothing: the checkpoint and the
    /// commit stand in the store, and the refresh stays due, so the next
    /// commit (or closing the log) writes the mirror again.
    pub(super) fn advance(&self, signed: &SignedCheckpoint) {
        *lock(&self.latest) = Some(signed.clone());
        let due = lock(&self.mirrored).is_none_or(|(at, _)| at.elapsed() >= MIRROR_EVERY);
        if due && let Err(stale) = self.write_mirror(signed) {
            // Not the commit's failure (see above): `mirrored` keeps its
            // old time, so the refresh stays due.
            drop(stale);
        }
    }

    /// Leaves the mirror holding the latest checkpoint, which commits may
    /// have signed since its last refresh: for when the log closes.
    pub(super) fn close(&self) -> Result<(), Error> {
        let latest = lock(&self.latest).clone();
        let mirrored = lock(&self.mirrored).map(|(_, size)| size);
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
        *lock(&self.mirrored) = Some((Instant::now(), signed.checkpoint.size));
        Ok(())
    }
}

/// Every checkpoint note in `store`, oldest first, with the size its key
/// gives.
pub(super) fn stored<S: Store>(
    store: &S,
) -> impl Iterator<Item = Result<(u64, String), Error>> + '_ {
    store.scan_prefix(layout::CHECKPOINT_PREFIX).map(|kv| {
        let (key, note) = kv?;
        let size = layout::key_number(&key)
            .ok_or_else(|| Error::Corrupt("malformed checkpoint key".into()))?;
        let note = String::from_utf8(note.as_ref().to_vec())
            .map_err(|_| Error::Corrupt(format!("checkpoint at size {size} is not UTF-8")))?;
        Ok((size, note))
    })
}
