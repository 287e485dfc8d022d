//! Reads complete-subtree hashes for proofs and roots: the unfinished tiles
//! from an edge snapshot, everything else from full tiles, in their files
//! or in the store.

use std::cell::RefCell;
use std::sync::Arc;

use super::edge::Edge;
use crate::checkpoint::Checkpoint;
use crate::error::Error;
use crate::hash::Hash;
use crate::layout;
use crate::proof::{self, NodeSource};
use crate::store::Store;
use crate::tile::{TILE_BYTES, TileSlot, read_hash};
use crate::tile_files::TileFiles;
use crate::tree::NodeId;

/// A [`NodeSource`] over one edge snapshot.
///
/// A proof takes up to four hashes from each tile it touches, so the reader
/// keeps the last tile it fetched at each level and reads it once.
pub(super) struct Reader<'a, S: Store> {
    store: &'a S,
    files: Option<&'a TileFiles>,
    edge: Arc<Edge>,
    recent: RefCell<Vec<Option<HeldTile<S::Value>>>>,
}

/// A tile index and the tile read for it.
type HeldTile<V> = (u64, Fetched<V>);

/// A full tile as read: borrowed from the store or copied out of its file.
enum Fetched<V> {
    Store(V),
    File(Box<[u8; TILE_BYTES]>),
}

impl<V: AsRef<[u8]>> AsRef<[u8]> for Fetched<V> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Fetched::Store(v) => v.as_ref(),
            Fetched::File(b) => b.as_slice(),
        }
    }
}

impl<'a, S: Store> Reader<'a, S> {
    /// A reader of the tree whose right edge is `edge`: every full tile left
    /// of it must be in `store` (and may be in `files`).
    pub(super) fn new(store: &'a S, files: Option<&'a TileFiles>, edge: Arc<Edge>) -> Self {
        Reader {
            store,
            files,
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
                "the log signed a checkpoint for size {}, but the database holds only {size} \
                 entries: it lost acknowledged writes; restore it from a backup",
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

    /// The full tile `level`/`index`, from its file if it is there.
    fn full_tile(&self, level: u8, index: u64) -> Result<Option<Fetched<S::Value>>, Error> {
        if let Some(tile) = self.files.and_then(|f| f.read(level, index)) {
            return Ok(Some(Fetched::File(tile)));
        }
        Ok(self
            .store
            .get(&layout::tile_key(level, index))?
            .map(Fetched::Store))
    }
}

impl<S: Store> NodeSource for Reader<'_, S> {
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
