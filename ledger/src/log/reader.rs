//! Reads complete-subtree hashes for proofs and roots: the unfinished tiles
//! from an edge snapshot, full tiles from `pending` while their files are
//! not yet durable, then from the files: the bottom private level from the
//! public level-0 tlog tiles (16 leaf hashes, interior recomputed), the
//! levels above from the private sidecar.

use std::cell::RefCell;
use std::sync::{Arc, PoisonError, RwLock};

use super::edge::Edge;
use super::pending::Pending;
use crate::checkpoint::Checkpoint;
use crate::error::Error;
use crate::hash::{HASH_LEN, Hash};
use crate::nodes::Nodes;
use crate::proof::{self, NodeSource};
use crate::tile::{TILE_BYTES, TILE_WIDTH, TileSlot, build_full, read_hash};
use crate::tlog::{self, TileDir};
use crate::tree::NodeId;

/// Where full tiles are: pending in memory, or in the files.
#[derive(Clone, Copy)]
pub(super) struct Sources<'a> {
    pub pending: &'a RwLock<Pending>,
    pub nodes: &'a Nodes,
    pub tiles: &'a TileDir,
}

/// A [`NodeSource`] over one edge snapshot.
///
/// A proof takes up to four hashes from each tile it touches, so the reader
/// keeps the last tile it fetched at each level and reads it once.
pub(super) struct Reader<'a> {
    log: Sources<'a>,
    edge: Arc<Edge>,
    recent: RefCell<Vec<Option<(u64, Fetched)>>>,
}

/// A full tile as read: shared from `pending` or copied out of a file.
enum Fetched {
    Pending(Arc<[u8]>),
    File(Box<[u8; TILE_BYTES]>),
    Built(Vec<u8>),
}

impl AsRef<[u8]> for Fetched {
    fn as_ref(&self) -> &[u8] {
        match self {
            Fetched::Pending(t) => t,
            Fetched::File(b) => b.as_slice(),
            Fetched::Built(v) => v,
        }
    }
}

impl<'a> Reader<'a> {
    /// A reader of the tree whose right edge is `edge`: every full tile left
    /// of it must be pending or in the files.
    pub(super) fn new(log: Sources<'a>, edge: Arc<Edge>) -> Self {
        Reader {
            log,
            edge,
            recent: RefCell::new(Vec::new()),
        }
    }

    /// The edge this reader reads.
    pub(super) fn edge(&self) -> &Edge {
        &self.edge
    }

    /// Checks that `checkpoint` describes this tree, or an earlier size of
    /// it: what a log checks before it trusts a checkpoint it finds on open
    /// and before it signs a new one.
    pub(super) fn agrees_with(&self, checkpoint: &Checkpoint) -> Result<(), Error> {
        let size = self.edge.size();
        if checkpoint.size > size {
            return Err(Error::Corrupt(format!(
                "the log signed a checkpoint for size {}, but its journal and tiles hold only \
                 {size} entries: it lost acknowledged writes; restore it from a backup",
                checkpoint.size
            )));
        }
        if proof::root_at(self, checkpoint.size)? != checkpoint.root {
            return Err(Error::Corrupt(format!(
                "tree root at size {} differs from the signed checkpoint",
                checkpoint.size
            )));
        }
        Ok(())
    }

    /// The full tile `level`/`index`: pending, or from its files.
    fn full_tile(&self, level: u8, index: u64) -> Result<Option<Fetched>, Error> {
        let pending = self
            .log
            .pending
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .tile(level, index);
        if let Some(tile) = pending {
            return Ok(Some(Fetched::Pending(tile)));
        }
        if level > 0 {
            return Ok(self.log.nodes.read(level, index)?.map(Fetched::File));
        }
        // Bottom level: its 16 leaf hashes are a slice of a public tile.
        let per = tlog::WIDTH / TILE_WIDTH as u64;
        let mut row = [0u8; TILE_WIDTH * HASH_LEN];
        let slice = (index % per) as usize * TILE_WIDTH;
        if !self.log.tiles.read_tile(0, index / per, slice, &mut row)? {
            return Ok(None);
        }
        let leaves: Vec<Hash> = row
            .chunks_exact(HASH_LEN)
            .filter_map(Hash::from_slice)
            .collect();
        Ok(build_full(&leaves).map(Fetched::Built))
    }

    /// The root of full tile `level`/`index`, for rebuilding an edge.
    pub(super) fn tile_root(&self, level: u8, index: u64) -> Result<Hash, Error> {
        let tile = self
            .full_tile(level, index)?
            .ok_or_else(|| Error::Corrupt(format!("full tile {level}/{index} is missing")))?;
        read_hash(tile.as_ref(), crate::tile::TILE_HEIGHT, 0)
            .ok_or_else(|| Error::Corrupt(format!("full tile {level}/{index} is malformed")))
    }
}

impl NodeSource for Reader<'_> {
    type Error = Error;

    fn node(&self, node: NodeId) -> Result<Hash, Error> {
        let slot = TileSlot::of(node);
        let missing = || {
            Error::Corrupt(format!(
                "hash of node {}/{} is missing",
                node.level, node.index
            ))
        };
        if let Some(partial) = self.edge.tile(slot.tile_level) {
            if partial.index == slot.tile_index {
                return partial.get(slot.row, slot.offset).ok_or_else(missing);
            }
            if partial.index < slot.tile_index {
                return Err(missing());
            }
        }
        let level = slot.tile_level as usize;
        let mut recent = self.recent.borrow_mut();
        if recent.len() <= level {
            recent.resize_with(level + 1, || None);
        }
        if let Some((index, tile)) = &recent[level]
            && *index == slot.tile_index
        {
            return read_hash(tile.as_ref(), slot.row, slot.offset).ok_or_else(missing);
        }
        let tile = self
            .full_tile(slot.tile_level, slot.tile_index)?
            .ok_or_else(missing)?;
        let hash = read_hash(tile.as_ref(), slot.row, slot.offset).ok_or_else(missing);
        recent[level] = Some((slot.tile_index, tile));
        hash
    }
}
