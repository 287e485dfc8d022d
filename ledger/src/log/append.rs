//! Appending: the log's one write path.
//!
//! An append takes the writer's turn and, holding it, does everything: it
//! sequences its entries after the right edge, encodes them with the
//! caller's own writes, the bodies it keeps and (if asked) a signed
//! checkpoint as one journal record, writes that record and makes it
//! durable with one `fdatasync`, applies the writes to the store, publishes
//! the new edge, size and checkpoint, and returns. Nothing is acknowledged
//! before the barrier has returned; nothing the record holds is written
//! anywhere durable but the journal on this path: tiles and bundles follow
//! off it (`integrate`), and a crash is repaired by replaying the journal.
//!
//! Concurrent appends take turns; combining many small appends into one
//! batch and one barrier (group commit) is the caller's choice: the
//! gateway's committer, the log's only writer there, batches the envelopes
//! waiting for it into one [`Log::append_batch_with`].
//!
//! One append is O(entries + writes + log n) work. Nothing in it grows with
//! the log.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::edge::Edge;
use super::integrate::PENDING_LIMIT;
use super::lock::lock;
use super::progress::Publish;
use super::record::{self, Body, BodyClass, Write};
use super::{Log, Shared};
use crate::blobs::Locator;
use crate::checkpoint::SignedCheckpoint;
use crate::error::Error;
use crate::hash::leaf_hash;
use crate::layout;
use crate::proof;
use crate::store::{BodyWrite, Store, WriteBatch};
use crate::tlog;
use crate::turn::{Changes, Decide, Prepare, TurnStart};

/// Largest entry the log accepts: 65,535 bytes, the most a tlog-tiles
/// entry bundle can frame (a big-endian u16 length).
pub const MAX_ENTRY_LEN: usize = tlog::bundle::MAX_ENTRY_LEN;

/// Writes that commit in the same atomic batch as an append, built from the
/// indices the append's entries were given: the boxed form of the argument
/// of [`Log::append_batch_with`], for callers that choose it at run time.
pub type WithEntries = Box<dyn FnOnce(Range<u64>) -> WriteBatch + Send>;

/// A durable append: where its entries went, and the checkpoint signed in
/// the same commit if the log signs one per commit
/// ([`Log::set_checkpoint_every_commit`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Indices of the appended entries.
    pub range: Range<u64>,
    /// A checkpoint whose tree includes them, durable with them.
    pub checkpoint: Option<SignedCheckpoint>,
}

/// One commit, ready to write: the journal record and what to publish
/// once it is durable.
struct Staged {
    record: Vec<u8>,
    /// Store writes (the caller's and the bodies' locators).
    writes: Vec<Write>,
    /// Bodies to write to the body files.
    bodies: Vec<Body>,
    /// Bodies the commit drops, to unpin once it is durable.
    dropped: Vec<Locator>,
    /// The right edge after the append.
    edge: Arc<Edge>,
    range: Range<u64>,
    /// The full tiles the append completes.
    tiles: Vec<(u8, u64, Vec<u8>)>,
    checkpoint: Option<SignedCheckpoint>,
}

impl<S: Store> Log<S> {
    /// Appends one entry and returns its index once it is durable.
    ///
    /// # Errors
    /// See [`Log::append_batch`].
    pub fn append(&self, entry: &[u8]) -> Result<u64, Error> {
        self.append_batch(&[entry]).map(|r| r.start)
    }

    /// Appends entries, in order and contiguously, and returns their indices
    /// once they are durable: one journal record and one barrier, however
    /// many entries. Appends from other threads wait for their turn.
    ///
    /// # Errors
    /// [`Error::EntryTooLarge`] (nothing is appended); a storage error if
    /// the record could not be written or made durable: then nothing is
    /// acknowledged, though a record that reached the disk before a failed
    /// barrier may still be found in the log after a restart, as with any
    /// timeout.
    pub fn append_batch<E: AsRef<[u8]>>(&self, entries: &[E]) -> Result<Range<u64>, Error> {
        self.commit(entries, |_| WriteBatch::new()).map(|c| c.range)
    }

    /// As [`Log::append_batch`], committing the writes `with` returns in the
    /// same journal record as the entries: after a crash both are there or
    /// neither is. `with` is called once, on the caller's thread during its
    /// turn, with the indices the entries were given; its keys must not
    /// start with `L`, which is the log's own key space.
    ///
    /// # Errors
    /// As [`Log::append_batch`]; [`Error::Invalid`] if `with` writes a log
    /// key (then nothing in that commit is written).
    pub fn append_batch_with<E, F>(&self, entries: &[E], with: F) -> Result<Committed, Error>
    where
        E: AsRef<[u8]>,
        F: FnOnce(Range<u64>) -> WriteBatch,
    {
        self.commit(entries, with)
    }

    /// Commits `batch` alone, with no entry: durable (one journal record,
    /// one barrier) when this returns `Ok`. For state that changes without
    /// a log entry, such as an envelope leaving an inbox.
    ///
    /// # Errors
    /// As [`Log::append_batch_with`].
    pub fn commit_writes(&self, batch: WriteBatch) -> Result<(), Error> {
        self.commit::<&[u8], _>(&[], |_| batch).map(|_| ())
    }

    /// Commits what `decide` returns, as [`Log::commit_writes`], deciding
    /// it on the writer's turn: nothing else commits between what `decide`
    /// read and the commit. Nothing is written if it returns no write.
    ///
    /// # Errors
    /// What `decide` returns; else as [`Log::append_batch_with`].
    pub fn commit_writes_with(&self, decide: &mut Decide<'_>) -> Result<(), Error> {
        let _turn = lock(&self.shared.writer);
        let batch = decide()?;
        if batch.is_empty() {
            return Ok(());
        }
        self.commit_held::<&[u8], _>(&[], |_| batch).map(|_| ())
    }

    /// Takes the writer's turn, asks `prepare` what to commit at the index
    /// the log will give the first entry, and commits it, all on the one
    /// turn: nothing else is appended between what `prepare` read and the
    /// commit. This log has no other writer, so the turn reports no
    /// changes ([`Changes::None`]). Nothing is written if `prepare`
    /// returns no entry and no write.
    ///
    /// # Errors
    /// As [`Log::append_batch_with`].
    pub fn turn(&self, prepare: &mut Prepare<'_>) -> Result<Committed, Error> {
        let _turn = lock(&self.shared.writer);
        let start = TurnStart {
            next_index: self.next_index(),
            changes: Changes::None,
        };
        let (entries, batch) = prepare(&start);
        if entries.is_empty() && batch.is_empty() {
            return Ok(Committed {
                range: start.next_index..start.next_index,
                checkpoint: None,
            });
        }
        self.commit_held(&entries, |_| batch)
    }

    /// The write path: stage, write, barrier, apply, publish, all on the
    /// writer's turn.
    fn commit<E, F>(&self, entries: &[E], with: F) -> Result<Committed, Error>
    where
        E: AsRef<[u8]>,
        F: FnOnce(Range<u64>) -> WriteBatch,
    {
        let _turn = lock(&self.shared.writer);
        self.commit_held(entries, with)
    }

    /// [`Log::commit`] on a turn the caller holds.
    fn commit_held<E, F>(&self, entries: &[E], with: F) -> Result<Committed, Error>
    where
        E: AsRef<[u8]>,
        F: FnOnce(Range<u64>) -> WriteBatch,
    {
        if let Some(e) = entries.iter().find(|e| e.as_ref().len() > MAX_ENTRY_LEN) {
            return Err(Error::EntryTooLarge {
                len: e.as_ref().len(),
                max: MAX_ENTRY_LEN,
            });
        }
        self.shared.usable()?;
        if self.shared.pending_read().len() > PENDING_LIMIT {
            // Back-pressure: the integrator is behind (it is bounded by one
            // `fsync` per tile file it creates). This writer runs a round
            // itself, holding the turn so that no other commit adds to the
            // backlog meanwhile; the round leaves fewer than 256 entries
            // pending, or fails with the reason.
            self.shared.integrate(Publish::IfDue)?;
            if self.shared.pending_read().len() > PENDING_LIMIT {
                return Err(Error::Store(crate::store::StoreError(format!(
                    "more than {PENDING_LIMIT} entries still wait for their tile files after an \
                     integration round"
                ))));
            }
        }
        let staged = self.stage(entries, with)?;
        let Staged {
            record,
            writes,
            bodies,
            dropped,
            edge,
            range,
            tiles,
            checkpoint,
        } = staged;

        // Bodies first, with no barrier: the record holds a copy, and a
        // crash is repaired by replaying it. Their places stay pinned only
        // if the commit goes through.
        if let Err(e) = self.shared.write_bodies(&bodies) {
            self.shared.unpin(&bodies);
            return Err(e);
        }
        let seq = match self.shared.journal.append(&[&record]) {
            Ok(seq) => seq,
            Err(e) => {
                self.shared.unpin(&bodies);
                return Err(e);
            }
        };
        // Durable. From here a failure leaves memory behind the journal:
        // the log stops taking commits until it is reopened and replays.
        if let Err(e) = self.shared.apply(seq, writes) {
            self.shared.broken.store(true, Ordering::Release);
            return Err(e);
        }
        {
            let mut pending = self
                .shared
                .pending
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pending.push(seq, range.start, entries, tiles);
        }
        self.shared.head.applied(edge);
        self.shared.head.synced(range.end);
        if let Some(signed) = &checkpoint {
            self.shared.latest.advance(signed);
        }
        for at in &dropped {
            self.shared.bodies.unpin(at);
        }
        if let Some(integrator) = &self.integrator {
            integrator.nudge(range.end);
        }
        Ok(Committed { range, checkpoint })
    }

    /// Builds the journal record for `entries` after the published edge,
    /// with the writes and bodies `with` makes for their indices, the
    /// completed tiles and, if every commit signs one, the checkpoint for
    /// the new size. Writes nothing but places the bodies.
    fn stage<E, F>(&self, entries: &[E], with: F) -> Result<Staged, Error>
    where
        E: AsRef<[u8]>,
        F: FnOnce(Range<u64>) -> WriteBatch,
    {
        let mut edge = Edge::clone(&self.shared.head.edge());
        let (first, end) = (edge.size(), edge.size() + entries.len() as u64);
        let range = first..end;
        let mut batch = with(range.clone());
        if batch.touches_prefix(b"L") {
            return Err(Error::Invalid(
                "writes committed with an append must not use keys starting with 'L'".into(),
            ));
        }
        let (bodies, dropped, body_writes) = self.shared.place_bodies(&mut batch)?;
        let mut writes: Vec<Write> = batch.into_ops().collect();
        writes.extend(body_writes);

        let mut tiles = Vec::new();
        for e in entries {
            edge.push_leaf(leaf_hash(e.as_ref()), &mut tiles);
        }
        let edge = Arc::new(edge);
        let checkpoint = if self.shared.latest.every_commit() && end > first {
            // Every node of the new root's cover lies on the new right edge
            // (a node at a tile boundary is the bottom of the tile above),
            // so this reads none of the tiles just completed.
            let root = proof::root_at(&self.shared.reader_over(Arc::clone(&edge)), end)?;
            Some(self.shared.latest.sign(end, root))
        } else {
            None
        };
        let record = record::encode(
            (!entries.is_empty()).then_some((first, entries)),
            &writes,
            &bodies,
            checkpoint.as_ref().map(|c| c.note.as_str()),
        );
        Ok(Staged {
            record,
            writes,
            bodies,
            dropped,
            edge,
            range,
            tiles,
            checkpoint,
        })
    }
}

impl<S: Store> Shared<S> {
    /// Refuses to commit after a failure past the barrier.
    pub(super) fn usable(&self) -> Result<(), Error> {
        if self.broken.load(Ordering::Acquire) {
            return Err(Error::Store(crate::store::StoreError(
                "a commit failed after its journal record was durable; reopen the log to \
                 replay the journal"
                    .into(),
            )));
        }
        Ok(())
    }

    /// Places the bodies `batch` puts, finds the ones it drops, and returns
    /// them with the store writes that record their places.
    #[allow(clippy::type_complexity)]
    fn place_bodies(
        &self,
        batch: &mut WriteBatch,
    ) -> Result<(Vec<Body>, Vec<Locator>, Vec<Write>), Error> {
        let mut bodies = Vec::new();
        let mut dropped = Vec::new();
        let mut writes = Vec::new();
        for (key, write) in batch.take_bodies() {
            let dropped_key = layout::body_key(&key);
            match write {
                BodyWrite::Put(bytes) | BodyWrite::Keep(bytes)
                    if bytes.len() > u32::MAX as usize =>
                {
                    self.unpin(&bodies);
                    return Err(Error::Invalid("a body must be under 4 GiB".into()));
                }
                BodyWrite::Put(bytes) => {
                    if let Some(old) = self.body_at(&dropped_key)? {
                        dropped.push(old);
                    }
                    let at = self.bodies.place(bytes.len());
                    writes.push((dropped_key, Some(at.to_bytes().to_vec())));
                    bodies.push(Body {
                        class: BodyClass::Dropped,
                        at,
                        bytes,
                    });
                }
                BodyWrite::Keep(bytes) => {
                    let at = self.kept.place(bytes.len());
                    writes.push((layout::kept_key(&key), Some(at.to_bytes().to_vec())));
                    bodies.push(Body {
                        class: BodyClass::Kept,
                        at,
                        bytes,
                    });
                }
                BodyWrite::Drop => {
                    if let Some(old) = self.body_at(&dropped_key)? {
                        dropped.push(old);
                        writes.push((dropped_key, None));
                    }
                }
            }
        }
        Ok((bodies, dropped, writes))
    }

    /// Where the store says the body under `key` (a `layout` body key) is.
    pub(super) fn body_at(&self, key: &[u8]) -> Result<Option<Locator>, Error> {
        match self.store.get(key)? {
            None => Ok(None),
            Some(v) => Locator::from_bytes(v.as_ref())
                .map(Some)
                .ok_or_else(|| Error::Corrupt("a body locator is malformed".into())),
        }
    }

    /// Writes bodies to their places in the body files (no barrier).
    pub(super) fn write_bodies(&self, bodies: &[Body]) -> Result<(), Error> {
        for body in bodies {
            match body.class {
                BodyClass::Dropped => self.bodies.write(&body.at, &body.bytes)?,
                BodyClass::Kept => self.kept.write(&body.at, &body.bytes)?,
            }
        }
        Ok(())
    }

    /// Releases the places of bodies a failed commit will not keep.
    fn unpin(&self, bodies: &[Body]) {
        for body in bodies {
            match body.class {
                BodyClass::Dropped => self.bodies.unpin(&body.at),
                BodyClass::Kept => self.kept.unpin(&body.at),
            }
        }
    }

    /// Applies a durable record's writes to the store, with the record's
    /// sequence number, so a reopen knows which records the store holds.
    pub(super) fn apply(&self, seq: u64, writes: Vec<Write>) -> Result<(), Error> {
        let mut batch = WriteBatch::new();
        for (key, value) in writes {
            match value {
                Some(v) => batch.put(key, v),
                None => batch.delete(key),
            }
        }
        batch.put(layout::APPLIED_KEY.to_vec(), seq.to_be_bytes().to_vec());
        self.store.apply(batch)?;
        Ok(())
    }
}
