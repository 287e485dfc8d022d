//! Appending: the log's one write path.
//!
//! An append takes the writer's turn and, holding it, does everything: it
//! sequences its entries after the right edge, writes them (with the
//! caller's own writes, the tiles they complete and, if asked, a signed
//! checkpoint) as one atomic store batch, makes it durable with the store's
//! sync, publishes the new edge, size and checkpoint, and returns. Nothing
//! is acknowledged before the sync has returned.
//!
//! Concurrent appends take turns; combining many small appends into one
//! batch and one sync (group commit) is the caller's choice: the gateway's
//! committer, the log's only writer there, batches the envelopes waiting
//! for it into one [`Log::append_batch_with`].
//!
//! One append is O(entries + log n) work and touches a bounded number of
//! keys: each entry once, each hash it completes once, a full tile and a full
//! entry bundle once per tile width of leaves. Nothing in it grows with the log.

use std::ops::Range;
use std::sync::Arc;

use super::Log;
use super::edge::Edge;
use super::lock::lock;
use crate::checkpoint::SignedCheckpoint;
use crate::error::Error;
use crate::hash::leaf_hash;
use crate::layout::{self, SIZE_KEY};
use crate::proof;
use crate::store::{Store, WriteBatch};
use crate::tile::TILE_WIDTH;

const WIDTH: u64 = TILE_WIDTH as u64;

/// Largest entry the log accepts: 64 KiB.
pub const MAX_ENTRY_LEN: usize = 64 * 1024;

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

/// One append, ready to write: the store batch and what to publish once
/// the store holds it.
struct Staged {
    batch: WriteBatch,
    /// The right edge after the append.
    edge: Arc<Edge>,
    range: Range<u64>,
    /// Copies of the full tiles the append completes, for the tile files.
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
    /// once they are durable: one atomic store batch and one sync, however
    /// many entries. Appends from other threads wait for their turn.
    ///
    /// # Errors
    /// [`Error::EntryTooLarge`] (nothing is appended), [`Error::Store`] if the
    /// batch could not be written or made durable: then nothing is
    /// acknowledged, though entries that reached the store before a failed
    /// sync may still be found in the log later, as with any timeout.
    pub fn append_batch<E: AsRef<[u8]>>(&self, entries: &[E]) -> Result<Range<u64>, Error> {
        self.commit(entries, |_| WriteBatch::new()).map(|c| c.range)
    }

    /// As [`Log::append_batch`], committing the writes `with` returns in the
    /// same atomic store batch as the entries: after a crash both are there
    /// or neither is. `with` is called once, on the caller's thread during
    /// its turn, with the indices the entries were given; its keys must not
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

    /// The write path: stage, write, sync, publish, all on the writer's turn.
    fn commit<E, F>(&self, entries: &[E], with: F) -> Result<Committed, Error>
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
        let _turn = lock(&self.writer);
        let Staged {
            batch,
            edge,
            range,
            tiles,
            checkpoint,
        } = self.stage(entries, with)?;

        // The store first, then the edge: a reader holding the old edge
        // finds newly full tiles in the store (or their file copies). The
        // edge follows the store even if the sync below fails, so the next
        // append builds on what the store holds, and its sync covers these
        // entries too.
        self.store.apply(batch)?;
        if let Some(files) = &self.tile_files {
            for (level, index, tile) in &tiles {
                files.write(*level, *index, tile);
            }
        }
        self.head.applied(edge);
        self.store.sync()?;
        self.head.synced(range.end);
        if let Some(signed) = &checkpoint {
            self.latest.advance(signed);
        }
        Ok(Committed { range, checkpoint })
    }

    /// Builds the store batch for `entries` after the published edge, with
    /// the writes `with` makes for their indices: entries, completed tiles,
    /// edge hashes, the new size and, if every commit signs one, the
    /// checkpoint for it. Writes nothing.
    fn stage<E, F>(&self, entries: &[E], with: F) -> Result<Staged, Error>
    where
        E: AsRef<[u8]>,
        F: FnOnce(Range<u64>) -> WriteBatch,
    {
        let mut edge = Edge::clone(&self.head.edge());
        let (first, end) = (edge.size(), edge.size() + entries.len() as u64);
        let range = first..end;
        let mut batch = with(range.clone());
        if batch.touches_prefix(b"L") {
            return Err(Error::Invalid(
                "writes committed with an append must not use keys starting with 'L'".into(),
            ));
        }

        // Entries: straight into any bundle this batch completes, the rest
        // into the tail until their bundle fills.
        let entry = |i: u64| entries[(i - first) as usize].as_ref();
        for bundle in first / WIDTH..end / WIDTH {
            let mut bytes = Vec::new();
            for i in bundle * WIDTH..(bundle + 1) * WIDTH {
                if i < first {
                    let key = layout::tail_entry_key(i);
                    let stored = self
                        .store
                        .get(&key)?
                        .ok_or_else(|| Error::Corrupt(format!("tail entry {i} is missing")))?;
                    layout::bundle_push(&mut bytes, stored.as_ref());
                    batch.delete(key);
                } else {
                    layout::bundle_push(&mut bytes, entry(i));
                }
            }
            batch.put(layout::bundle_key(bundle), bytes);
        }
        for i in first.max(end / WIDTH * WIDTH)..end {
            batch.put(layout::tail_entry_key(i), entry(i).to_vec());
        }

        let mut completed = Vec::new();
        for e in entries {
            edge.push_leaf(leaf_hash(e.as_ref()), &mut batch, &mut completed);
        }
        batch.put(SIZE_KEY.to_vec(), layout::encode_u64(end));
        let edge = Arc::new(edge);
        let checkpoint = if self.latest.every_commit() && end > first {
            // Every node of the new root's cover lies on the new right edge,
            // so this reads nothing that is not yet in the store.
            let root = proof::root_at(&self.reader_over(Arc::clone(&edge)), end)?;
            let signed = self.latest.sign(end, root);
            batch.put(
                layout::checkpoint_key(end),
                signed.note.clone().into_bytes(),
            );
            Some(signed)
        } else {
            None
        };
        let tiles = match &self.tile_files {
            Some(files) => {
                files.sync_into(&mut batch);
                completed
                    .into_iter()
                    .filter_map(|(level, index)| {
                        let tile = batch.pending(&layout::tile_key(level, index)).flatten()?;
                        Some((level, index, tile.to_vec()))
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        Ok(Staged {
            batch,
            edge,
            range,
            tiles,
            checkpoint,
        })
    }
}
