//! Appending: the sequencer that turns entries into one atomic store batch,
//! and the group commit that makes them durable before anyone hears "ok".
//!
//! One append is O(entries + log n) work and touches a bounded number of
//! keys: each entry once, each hash it completes once, a full tile and a full
//! entry bundle once per tile width of leaves. Nothing in it grows with the log.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::Error;
use crate::hash::{Hash, leaf_hash};
use crate::layout::{self, SIZE_KEY};
use crate::log::{Log, MAX_ENTRY_LEN, SignedCheckpoint, lock};
use crate::proof;
use crate::store::{Store, StoreError, WriteBatch};
use crate::tile::{PartialTile, TILE_HEIGHT, TILE_WIDTH, read_hash};

const WIDTH: u64 = TILE_WIDTH as u64;

/// The right edge of the tree: the unfinished tile of each tile level.
/// Everything left of it is in full tiles in the store.
#[derive(Clone, Debug)]
pub(crate) struct Edge {
    /// Number of leaves.
    pub size: u64,
    /// `tiles[L]` is the unfinished tile at tile level `L`.
    pub tiles: Vec<PartialTile>,
}

impl Edge {
    /// Rebuilds the edge of a tree of `size` leaves from the store: tail
    /// entries for level 0, stored bottom hashes above.
    pub fn load<S: Store>(store: &S, size: u64) -> Result<Edge, Error> {
        let mut tiles = Vec::new();
        // Nodes at tree level 8L: leaves for L = 0, full tiles below above.
        let mut count = size;
        for level in 0u8.. {
            if level > 0 && count == 0 {
                break;
            }
            let (index, width) = (count / WIDTH, count % WIDTH);
            let first = index * WIDTH;
            let mut bottom = Vec::with_capacity(width as usize);
            for k in first..first + width {
                bottom.push(if level == 0 {
                    let entry = store
                        .get(&layout::tail_entry_key(k))?
                        .ok_or_else(|| Error::Corrupt(format!("tail entry {k} is missing")))?;
                    leaf_hash(entry.as_ref())
                } else {
                    let h = store
                        .get(&layout::tail_hash_key(level, k))?
                        .ok_or_else(|| {
                            Error::Corrupt(format!("edge hash {level}/{k} is missing"))
                        })?;
                    Hash::from_slice(h.as_ref()).ok_or_else(|| {
                        Error::Corrupt(format!("edge hash {level}/{k} is malformed"))
                    })?
                });
            }
            tiles.push(PartialTile::from_bottom(index, &bottom));
            count /= WIDTH;
        }
        Ok(Edge { size, tiles })
    }

    /// Adds one leaf hash, recording in `batch` every tile it completes and
    /// every bottom hash of an unfinished upper tile it creates, and in
    /// `completed` which tiles it completed.
    fn push_leaf(&mut self, leaf: Hash, batch: &mut WriteBatch, completed: &mut Vec<(u8, u64)>) {
        let mut carry = Some(leaf);
        let mut level = 0u8;
        while let Some(hash) = carry.take() {
            if self.tiles.len() == level as usize {
                self.tiles.push(PartialTile::new(0));
            }
            let tile = &mut self.tiles[level as usize];
            if level > 0 {
                // Above level 0 the bottom row is not recomputable from
                // entries, so it is stored until its tile is full.
                let k = tile.index * WIDTH + tile.width() as u64;
                batch.put(layout::tail_hash_key(level, k), hash.as_bytes().to_vec());
            }
            if let Some(full) = tile.push(hash) {
                let done = tile.index - 1;
                if level > 0 {
                    for k in done * WIDTH..(done + 1) * WIDTH {
                        batch.delete(layout::tail_hash_key(level, k));
                    }
                }
                carry = read_hash(&full, TILE_HEIGHT, 0);
                batch.put(layout::tile_key(level, done), full);
                completed.push((level, done));
                level += 1;
            }
        }
        self.size += 1;
    }
}

/// Writes that commit in the same atomic batch as an append, built from the
/// indices the append's entries were given. See [`Log::append_batch_with`].
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

/// Group-commit bookkeeping: appends waiting for a leader, whether one is
/// at work, and the outcomes it has handed back.
#[derive(Default)]
pub(crate) struct CommitState {
    next_ticket: u64,
    queue: Vec<Job>,
    leading: bool,
    done: HashMap<u64, Result<Committed, Error>>,
}

/// One caller's append, waiting for a leader to write it.
struct Job {
    ticket: u64,
    entries: Vec<Vec<u8>>,
    with: Option<WithEntries>,
}

/// What one sequenced batch produced.
struct Sequenced {
    ranges: Vec<Range<u64>>,
    end: u64,
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
    /// once they are durable.
    ///
    /// Concurrent callers are combined: whoever finds no write in progress
    /// becomes the leader, takes every append queued so far, writes them all
    /// as one atomic store batch and makes them durable with one sync, then
    /// hands each caller its range. sled rolls its write buffer on every
    /// batch and syncs the whole log on every flush, so sharing both is what
    /// lets many small appends go at the speed of a few large ones.
    ///
    /// # Errors
    /// [`Error::EntryTooLarge`] (nothing is appended), [`Error::Store`] if the
    /// batch could not be written or made durable: then nothing is
    /// acknowledged, though entries that reached the store before a failed
    /// sync may still be found in the log later, as with any timeout.
    pub fn append_batch<E: AsRef<[u8]>>(&self, entries: &[E]) -> Result<Range<u64>, Error> {
        self.submit(entries, None).map(|c| c.range)
    }

    /// As [`Log::append_batch`], committing the writes `with` returns in the
    /// same atomic store batch as the entries: after a crash both are there
    /// or neither is. `with` is called once, by whichever thread writes the
    /// batch, with the indices the entries were given; its keys must not
    /// start with `L`, which is the log's own key space.
    ///
    /// # Errors
    /// As [`Log::append_batch`]; [`Error::Invalid`] if `with` writes a log
    /// key (then nothing in that commit is written).
    pub fn append_batch_with<E, F>(&self, entries: &[E], with: F) -> Result<Committed, Error>
    where
        E: AsRef<[u8]>,
        F: FnOnce(Range<u64>) -> WriteBatch + Send + 'static,
    {
        self.submit(entries, Some(Box::new(with)))
    }

    fn submit<E: AsRef<[u8]>>(
        &self,
        entries: &[E],
        with: Option<WithEntries>,
    ) -> Result<Committed, Error> {
        if let Some(e) = entries.iter().find(|e| e.as_ref().len() > MAX_ENTRY_LEN) {
            return Err(Error::EntryTooLarge {
                len: e.as_ref().len(),
                max: MAX_ENTRY_LEN,
            });
        }
        let mut state = lock(&self.commit);
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        let entries = entries.iter().map(|e| e.as_ref().to_vec()).collect();
        state.queue.push(Job {
            ticket,
            entries,
            with,
        });
        loop {
            if let Some(outcome) = state.done.remove(&ticket) {
                return outcome;
            }
            if state.leading {
                state = self
                    .commit_done
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            state.leading = true;
            let jobs = std::mem::take(&mut state.queue);
            drop(state);
            let tickets: Vec<u64> = jobs.iter().map(|j| j.ticket).collect();
            let outcome = self.commit_jobs(jobs);
            state = lock(&self.commit);
            state.leading = false;
            match outcome {
                Ok(committed) => {
                    for (ticket, c) in tickets.into_iter().zip(committed) {
                        state.done.insert(ticket, Ok(c));
                    }
                }
                Err(e) => {
                    for ticket in tickets {
                        state.done.insert(ticket, Err(shared_error(&e)));
                    }
                }
            }
            self.commit_done.notify_all();
        }
    }

    /// Writes every job's entries as one batch and syncs once; returns each
    /// job's outcome, in order.
    fn commit_jobs(&self, mut jobs: Vec<Job>) -> Result<Vec<Committed>, Error> {
        let withs: Vec<Option<WithEntries>> = jobs.iter_mut().map(|j| j.with.take()).collect();
        let lens: Vec<usize> = jobs.iter().map(|j| j.entries.len()).collect();
        let all: Vec<&[u8]> = jobs
            .iter()
            .flat_map(|j| j.entries.iter().map(Vec::as_slice))
            .collect();
        let sequenced = self.sequence(&all, &lens, withs)?;
        self.store.sync()?;
        self.durable.fetch_max(sequenced.end, Ordering::AcqRel);
        if let Some(signed) = &sequenced.checkpoint {
            self.publish_checkpoint(signed);
        }
        Ok(sequenced
            .ranges
            .into_iter()
            .map(|range| Committed {
                range,
                checkpoint: sequenced.checkpoint.clone(),
            })
            .collect())
    }

    /// Writes `entries` to the store as one batch, in order, with each job's
    /// own writes (`lens[j]` entries, then `withs[j]`), and publishes the new
    /// edge. Not yet durable.
    fn sequence<E: AsRef<[u8]>>(
        &self,
        entries: &[E],
        lens: &[usize],
        withs: Vec<Option<WithEntries>>,
    ) -> Result<Sequenced, Error> {
        let _turn = lock(&self.sequencer);
        let mut edge = Edge::clone(&self.reader().edge);
        let (first, end) = (edge.size, edge.size + entries.len() as u64);
        let mut batch = WriteBatch::new();
        let mut ranges = Vec::with_capacity(lens.len());
        let mut start = first;
        for (&len, with) in lens.iter().zip(withs) {
            let range = start..start + len as u64;
            start = range.end;
            if let Some(with) = with {
                let theirs = with(range.clone());
                if theirs.touches_prefix(b"L") {
                    return Err(Error::Invalid(
                        "writes committed with an append must not use keys starting with 'L'"
                            .into(),
                    ));
                }
                batch.extend(theirs);
            }
            ranges.push(range);
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
        let checkpoint = if self.checkpoint_every_commit.load(Ordering::Acquire) && end > first {
            // Every node of the new root's cover lies on the new right edge,
            // so this reads nothing that is not yet in the store.
            let root = proof::root_at(&self.reader_over(Arc::new(edge.clone())), end)?;
            let signed = self.sign(end, root);
            batch.put(
                layout::checkpoint_key(end),
                signed.note.clone().into_bytes(),
            );
            Some(signed)
        } else {
            None
        };
        if let Some(files) = &self.tile_files {
            files.sync_into(&mut batch);
        }
        let copies: Vec<(u8, u64, Vec<u8>)> = match &self.tile_files {
            Some(_) => completed
                .into_iter()
                .filter_map(|(level, index)| {
                    let key = layout::tile_key(level, index);
                    let tile = batch.pending(&key).flatten()?.to_vec();
                    Some((level, index, tile))
                })
                .collect(),
            None => Vec::new(),
        };

        // The store first, then the edge: a reader holding the old edge finds
        // newly full tiles in the store (or their file copies).
        self.store.apply(batch)?;
        if let Some(files) = &self.tile_files {
            for (level, index, tile) in &copies {
                files.write(*level, *index, tile);
            }
        }
        match self.edge.write() {
            Ok(mut g) => *g = Arc::new(edge),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(edge),
        }
        Ok(Sequenced {
            ranges,
            end,
            checkpoint,
        })
    }
}

/// The same failure, for every caller of a combined append (errors that
/// carry an I/O source are not `Clone`, so those travel as their message).
fn shared_error(e: &Error) -> Error {
    match e {
        Error::Store(e) => Error::Store(e.clone()),
        Error::Corrupt(m) => Error::Corrupt(m.clone()),
        Error::Invalid(m) => Error::Invalid(m.clone()),
        other => Error::Store(StoreError(other.to_string())),
    }
}
