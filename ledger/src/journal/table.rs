//! The segments that hold records, by number, with the first sequence
//! number of each: what reads look records up in and what releasing
//! removes from.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::{Arc, PoisonError, RwLock};

/// A segment holding records.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    /// The sequence number of its first record.
    pub first: u64,
    /// Its file, open; an unlinked file stays readable through it.
    pub file: Arc<File>,
}

/// The segments holding records.
#[derive(Debug, Default)]
pub(super) struct Table {
    // Held only for lookups and updates in memory, never across I/O.
    segments: RwLock<BTreeMap<u64, Entry>>,
}

impl Table {
    /// A table of `segments`.
    pub fn new(segments: impl IntoIterator<Item = (u64, Entry)>) -> Table {
        Table {
            segments: RwLock::new(segments.into_iter().collect()),
        }
    }

    /// Adds segment `number`, whose first record is `first`.
    pub fn insert(&self, number: u64, first: u64, file: Arc<File>) {
        self.write().insert(number, Entry { first, file });
    }

    /// The oldest record kept, if any.
    pub fn first_seq(&self) -> Option<u64> {
        self.read().values().next().map(|e| e.first)
    }

    /// The segment that holds record `seq` (if it is not older than the
    /// oldest kept): the last whose first record is at or before it.
    pub fn locate(&self, seq: u64) -> Option<(u64, Entry)> {
        self.read()
            .iter()
            .rev()
            .find(|(_, e)| e.first <= seq)
            .map(|(&n, e)| (n, e.clone()))
    }

    /// Segment `number`.
    pub fn get(&self, number: u64) -> Option<Entry> {
        self.read().get(&number).cloned()
    }

    /// The oldest segments, in order, whose records are all below `seq`,
    /// stopping before `tail` (the segment being written): segment `n`
    /// qualifies when segment `n + 1` starts at or before `seq`.
    pub fn releasable(&self, seq: u64, tail: u64) -> Vec<u64> {
        let segments = self.read();
        let mut out = Vec::new();
        for (&n, _) in segments.range(..tail) {
            match n.checked_add(1).and_then(|next| segments.get(&next)) {
                Some(next) if next.first <= seq => out.push(n),
                _ => break,
            }
        }
        out
    }

    /// Removes `numbers`, returning their files.
    pub fn remove(&self, numbers: &[u64]) -> Vec<(u64, Arc<File>)> {
        let mut segments = self.write();
        numbers
            .iter()
            .filter_map(|n| segments.remove(n).map(|e| (*n, e.file)))
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, Entry>> {
        // The map is consistent after every statement: a panic elsewhere
        // cannot leave it half-updated.
        self.segments.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u64, Entry>> {
        self.segments
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
