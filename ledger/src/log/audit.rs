//! Whole-log verification: recompute every leaf hash, every tile (public
//! and private) and every published checkpoint from the entries alone, and
//! report the first discrepancy.
//!
//! Tiles are rebuilt with `rs_merkle` (via `tile::build_full` and
//! `hash::layers_of`), an implementation independent of the incremental code
//! that wrote them.

use super::Log;
use crate::error::Error;
use crate::error::check_kept_note;
use crate::hash::{Hash, layers_of, leaf_hash};
use crate::proof;
use crate::store::Store;
use crate::tile::{PartialTile, TILE_HEIGHT, TILE_WIDTH, build_full, read_hash};
use crate::tlog::{self, bundle};

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
    /// Recomputes the whole log from its entries and checks every hash the
    /// files and memory hold (public tiles, the proof sidecar, the right
    /// edge) and every published checkpoint. Appends go on meanwhile; the
    /// check covers the size at its start.
    ///
    /// # Errors
    /// [`Error::Corrupt`] describing the first discrepancy found, or a
    /// storage error if something cannot be read.
    pub fn verify(&self) -> Result<VerifyReport, Error> {
        let reader = self.shared.reader();
        let size = reader.edge().size();
        let mut check = Recompute::new(&self.shared);
        let base = self
            .shared
            .pending_read()
            .base()
            .min(size / tlog::WIDTH * tlog::WIDTH);
        for b in 0..base / tlog::WIDTH {
            let bytes = self
                .shared
                .tiles
                .read_bundle(b)?
                .ok_or_else(|| corrupt(format!("entry bundle {b} is missing")))?;
            let entries = bundle::split(&bytes)
                .filter(|e| e.len() == tlog::WIDTH as usize)
                .ok_or_else(|| corrupt(format!("entry bundle {b} is malformed")))?;
            for e in entries {
                check.leaf(leaf_hash(e))?;
            }
        }
        for i in base..size {
            check.leaf(leaf_hash(&self.entry(i)?))?;
        }
        // The unfinished tiles: the in-memory edge must match what is left.
        for (level, row) in check.private.iter().enumerate() {
            let partial = reader
                .edge()
                .tile(level as u8)
                .ok_or_else(|| corrupt("edge is too short"))?;
            check_partial(partial, row, level as u8)?;
        }

        let root = proof::root_at(&reader, size)?;
        let verifier = self.shared.latest.verifier();
        let mut checkpoints = 0;
        for (at, note) in self.shared.notes.read_all()? {
            if at > size {
                return Err(corrupt(format!(
                    "checkpoint at size {at} is past the log's {size} entries"
                )));
            }
            check_kept_note(at, &note, &verifier, |at| proof::root_at(&reader, at))?;
            checkpoints += 1;
        }
        Ok(VerifyReport {
            size,
            root,
            tiles: check.tiles,
            checkpoints,
        })
    }
}

/// The recomputation: bottom rows of the unfinished private tiles and of
/// the unfinished public tiles, filled leaf by leaf, each full one compared
/// with what the files (or `pending`) hold.
struct Recompute<'a, S: Store> {
    log: &'a super::Shared<S>,
    /// `private[L]`: the bottom row of the private tile at level L so far.
    private: Vec<Vec<Hash>>,
    /// Full private tiles recomputed, per level.
    private_done: Vec<u64>,
    /// `public[L]`: the row of the public tile at tlog level L so far.
    public: Vec<Vec<Hash>>,
    /// Full public tiles recomputed, per level.
    public_done: Vec<u64>,
    tiles: u64,
}

impl<S: Store> Recompute<'_, S> {
    fn new(log: &super::Shared<S>) -> Recompute<'_, S> {
        Recompute {
            log,
            private: Vec::new(),
            private_done: Vec::new(),
            public: Vec::new(),
            public_done: Vec::new(),
            tiles: 0,
        }
    }

    /// Adds the next leaf hash.
    fn leaf(&mut self, leaf: Hash) -> Result<(), Error> {
        self.public_node(0, leaf)?;
        let mut carry = leaf;
        for level in 0u8.. {
            if self.private.len() == level as usize {
                self.private.push(Vec::new());
                self.private_done.push(0);
            }
            let row = &mut self.private[level as usize];
            row.push(carry);
            if row.len() < TILE_WIDTH {
                break;
            }
            let bottom = std::mem::take(row);
            let index = self.private_done[level as usize];
            self.private_done[level as usize] += 1;
            carry = self.check_private(level, index, &bottom)?;
            // Tree level 4(L+1) is a public row when it is a multiple of 8:
            // the row of public tile level (L+1)/2.
            let above = level + 1;
            if above.is_multiple_of(2) {
                self.public_node(above / 2, carry)?;
            }
        }
        Ok(())
    }

    /// Rebuilds private tile `level`/`index` from its bottom row with
    /// `rs_merkle`, compares it with the stored one (the sidecar or
    /// `pending`; level 0 is stored only as public tiles), returns its root.
    fn check_private(&mut self, level: u8, index: u64, bottom: &[Hash]) -> Result<Hash, Error> {
        let rebuilt =
            build_full(bottom).ok_or_else(|| corrupt("tile bottom row has the wrong width"))?;
        if level > 0 {
            let pending = self.log.pending_read().tile(level, index);
            let stored = match pending {
                Some(t) => Some(t.to_vec()),
                None => self.log.nodes.read(level, index)?.map(|t| t.to_vec()),
            };
            if stored.as_deref() != Some(rebuilt.as_slice()) {
                return Err(corrupt(format!(
                    "private tile {level}/{index} is missing or does not match its entries"
                )));
            }
            self.tiles += 1;
        }
        read_hash(&rebuilt, TILE_HEIGHT, 0).ok_or_else(|| corrupt("tile has no root"))
    }

    /// Adds a node of tree level `8 * level` to its public tile, and checks
    /// the tile's file once it is full (if the integrator has written it).
    fn public_node(&mut self, level: u8, hash: Hash) -> Result<(), Error> {
        if self.public.len() <= level as usize {
            self.public.resize_with(level as usize + 1, Vec::new);
            self.public_done.resize(level as usize + 1, 0);
        }
        let row = &mut self.public[level as usize];
        row.push(hash);
        if row.len() < tlog::WIDTH as usize {
            return Ok(());
        }
        let expected: Vec<u8> = std::mem::take(row)
            .iter()
            .flat_map(|h| *h.as_bytes())
            .collect();
        let n = self.public_done[level as usize];
        self.public_done[level as usize] += 1;
        let mut stored = vec![0u8; tlog::TILE_BYTES];
        if self.log.tiles.read_tile(level, n, 0, &mut stored)? {
            if stored != expected {
                return Err(corrupt(format!(
                    "public tile {level}/{n} does not match its entries"
                )));
            }
            self.tiles += 1;
        }
        Ok(())
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
