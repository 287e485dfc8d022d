//! Whole-log verification: recompute every leaf hash, every tile and every
//! stored checkpoint from the entries alone, and report the first
//! discrepancy.
//!
//! Tiles are rebuilt with `rs_merkle` (via `tile::build_full` and
//! `hash::layers_of`), an implementation independent of the incremental code
//! that wrote them.

use super::Log;
use super::latest;
use super::lock::lock;
use crate::checkpoint::verify_checkpoint;
use crate::error::Error;
use crate::hash::{Hash, layers_of, leaf_hash};
use crate::layout;
use crate::proof;
use crate::store::Store;
use crate::tile::{PartialTile, TILE_HEIGHT, TILE_WIDTH, build_full, read_hash};

const WIDTH: u64 = TILE_WIDTH as u64;

/// What a successful [`Log::verify`] checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries checked.
    pub size: u64,
    /// The recomputed root at that size.
    pub root: Hash,
    /// Full tiles recomputed.
    pub tiles: u64,
    /// Signed checkpoints checked (signature and root).
    pub checkpoints: u64,
}

impl<S: Store> Log<S> {
    /// Recomputes the whole log from its entries and checks every stored hash
    /// and checkpoint. Appends wait while it runs.
    ///
    /// # Errors
    /// [`Error::Corrupt`] describing the first discrepancy found, or
    /// [`Error::Store`] if the store cannot be read.
    pub fn verify(&self) -> Result<VerifyReport, Error> {
        let _turn = lock(&self.writer);
        let reader = self.reader();
        let size = reader.edge().size();
        let mut tiles = 0;

        // Level 0: entries -> leaf hashes -> tiles; collect each tile's root.
        let mut tops = Vec::with_capacity((size / WIDTH) as usize);
        expect_keys(
            &self.store,
            layout::BUNDLE_PREFIX,
            0..size / WIDTH,
            "entry bundle",
        )?;
        for bundle in 0..size / WIDTH {
            let bytes = self
                .store
                .get(&layout::bundle_key(bundle))?
                .ok_or_else(|| corrupt(format!("entry bundle {bundle} is missing")))?;
            let entries = layout::bundle_entries(bytes.as_ref())
                .ok_or_else(|| corrupt(format!("entry bundle {bundle} is malformed")))?;
            let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
            tops.push(self.check_tile(0, bundle, &leaves)?);
            tiles += 1;
        }
        let tail_start = size / WIDTH * WIDTH;
        expect_keys(
            &self.store,
            layout::TAIL_ENTRY_PREFIX,
            tail_start..size,
            "tail entry",
        )?;
        let mut bottom = Vec::new();
        for i in tail_start..size {
            let e = self
                .store
                .get(&layout::tail_entry_key(i))?
                .ok_or_else(|| corrupt(format!("tail entry {i} is missing")))?;
            bottom.push(leaf_hash(e.as_ref()));
        }
        let tail = reader
            .edge()
            .tile(0)
            .ok_or_else(|| corrupt("edge has no level 0"))?;
        check_partial(tail, &bottom, 0)?;

        // Upper levels: each tile's bottom row is the roots of the tiles below.
        let mut level = 1u8;
        while !tops.is_empty() {
            let full = tops.len() as u64 / WIDTH;
            let mut next = Vec::with_capacity(full as usize);
            for n in 0..full {
                let row = &tops[(n * WIDTH) as usize..((n + 1) * WIDTH) as usize];
                next.push(self.check_tile(level, n, row)?);
                tiles += 1;
            }
            let first = full * WIDTH;
            let prefix = layout::tail_hash_prefix(level);
            expect_keys(&self.store, &prefix, first..tops.len() as u64, "edge hash")?;
            let rest = &tops[first as usize..];
            for (k, expected) in (first..).zip(rest) {
                let stored = self.store.get(&layout::tail_hash_key(level, k))?;
                if stored.as_ref().and_then(|h| Hash::from_slice(h.as_ref())) != Some(*expected) {
                    return Err(corrupt(format!("edge hash {level}/{k} is wrong")));
                }
            }
            let partial = reader
                .edge()
                .tile(level)
                .ok_or_else(|| corrupt("edge is too short"))?;
            check_partial(partial, rest, level)?;
            tops = next;
            level += 1;
        }

        let root = proof::root_at(&reader, size)?;
        let verifier = self.latest.verifier();
        let mut checkpoints = 0;
        for stored in latest::stored(&self.store) {
            let (at, note) = stored?;
            let checkpoint = verify_checkpoint(&note, &verifier)
                .map_err(|e| corrupt(format!("checkpoint at size {at}: {e}")))?;
            if checkpoint.size != at || at > size {
                return Err(corrupt(format!(
                    "checkpoint at size {at} claims size {}",
                    checkpoint.size
                )));
            }
            if proof::root_at(&reader, at)? != checkpoint.root {
                return Err(corrupt(format!(
                    "checkpoint at size {at} has the wrong root"
                )));
            }
            checkpoints += 1;
        }
        Ok(VerifyReport {
            size,
            root,
            tiles,
            checkpoints,
        })
    }

    /// Rebuilds the full tile `level`/`index` from its bottom row and
    /// compares every hash with the stored tile and with its file copy, if
    /// there is one. Returns the tile's root.
    fn check_tile(&self, level: u8, index: u64, bottom: &[Hash]) -> Result<Hash, Error> {
        let stored = self
            .store
            .get(&layout::tile_key(level, index))?
            .ok_or_else(|| corrupt(format!("tile {level}/{index} is missing")))?;
        let rebuilt =
            build_full(bottom).ok_or_else(|| corrupt("tile bottom row has the wrong width"))?;
        if stored.as_ref() != rebuilt.as_slice() {
            return Err(corrupt(format!(
                "tile {level}/{index} does not match its entries"
            )));
        }
        let copy = self.tile_files.as_ref().and_then(|f| f.read(level, index));
        if copy.is_some_and(|c| c.as_slice() != rebuilt.as_slice()) {
            return Err(corrupt(format!(
                "the file copy of tile {level}/{index} does not match its entries"
            )));
        }
        read_hash(&rebuilt, TILE_HEIGHT, 0).ok_or_else(|| corrupt("tile has no root"))
    }
}

fn corrupt(msg: impl Into<String>) -> Error {
    Error::Corrupt(msg.into())
}

/// Compares the in-memory unfinished tile with `rs_merkle`'s layers over the
/// stored bottom row (complete nodes only).
fn check_partial(tile: &PartialTile, bottom: &[Hash], level: u8) -> Result<(), Error> {
    if tile.width() != bottom.len() {
        return Err(corrupt(format!(
            "edge of tile level {level} has the wrong width"
        )));
    }
    for (row, layer) in layers_of(bottom).iter().enumerate() {
        let complete = bottom.len() >> row;
        for (offset, h) in layer.iter().take(complete).enumerate() {
            if tile.get(row as u8, offset) != Some(*h) {
                return Err(corrupt(format!(
                    "edge of tile level {level} is wrong at {row}/{offset}"
                )));
            }
        }
    }
    Ok(())
}

/// Checks that the keys under `prefix` are exactly `range`, in order.
fn expect_keys<S: Store>(
    store: &S,
    prefix: &[u8],
    range: std::ops::Range<u64>,
    what: &str,
) -> Result<(), Error> {
    let mut expected = range.clone();
    for kv in store.scan_prefix(prefix) {
        let (key, _) = kv?;
        let n = layout::key_number(&key).filter(|_| key.len() == prefix.len() + 8);
        if n != expected.next() {
            return Err(corrupt(format!(
                "unexpected {what} key (expected {what}s {range:?} only)"
            )));
        }
    }
    match expected.next() {
        Some(n) => Err(corrupt(format!("{what} {n} is missing"))),
        None => Ok(()),
    }
}
