//! The right edge of the tree: the unfinished tile of each tile level, the
//! only part of the tree held in memory. Everything left of it is in full
//! tiles in the store.

use crate::error::Error;
use crate::hash::{Hash, leaf_hash};
use crate::layout;
use crate::store::{Store, WriteBatch};
use crate::tile::{PartialTile, TILE_HEIGHT, TILE_WIDTH, read_hash};

const WIDTH: u64 = TILE_WIDTH as u64;

/// The unfinished tiles of a tree of [`Edge::size`] leaves.
#[derive(Clone, Debug)]
pub(super) struct Edge {
    /// Number of leaves.
    size: u64,
    /// `tiles[L]` is the unfinished tile at tile level `L`.
    tiles: Vec<PartialTile>,
}

impl Edge {
    /// Rebuilds the edge of a tree of `size` leaves from the store: tail
    /// entries for level 0, stored bottom hashes above.
    pub(super) fn load<S: Store>(store: &S, size: u64) -> Result<Edge, Error> {
        let mut tiles = Vec::new();
        // Nodes at tree level 4L: leaves for L = 0, full tiles below above.
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

    /// Number of leaves in the tree.
    pub(super) fn size(&self) -> u64 {
        self.size
    }

    /// The unfinished tile at tile level `level`, if the tree reaches it.
    pub(super) fn tile(&self, level: u8) -> Option<&PartialTile> {
        self.tiles.get(level as usize)
    }

    /// Adds one leaf hash, recording in `batch` every tile it completes and
    /// every bottom hash of an unfinished upper tile it creates, and in
    /// `completed` which tiles it completed.
    pub(super) fn push_leaf(
        &mut self,
        leaf: Hash,
        batch: &mut WriteBatch,
        completed: &mut Vec<(u8, u64)>,
    ) {
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
