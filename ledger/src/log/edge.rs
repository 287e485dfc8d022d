//! The right edge of the tree: the unfinished tile of each tile level, the
//! only part of the tree held in memory. Everything left of it is in full
//! tiles, pending or in files.

use crate::error::Error;
use crate::hash::Hash;
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
    /// The edge of a tree of `size` leaves, a multiple of 256 (so its two
    /// lowest tile levels are empty), whose full tiles are all on disk:
    /// `top(level, index)` reads the root of full tile `level`/`index`.
    pub(super) fn rebuild(
        size: u64,
        mut top: impl FnMut(u8, u64) -> Result<Hash, Error>,
    ) -> Result<Edge, Error> {
        debug_assert!(size.is_multiple_of(WIDTH * WIDTH));
        let mut tiles = Vec::new();
        // Nodes at tree level 4L: leaves for L = 0, roots of full tiles of
        // level L - 1 above.
        let mut count = size;
        for level in 0u8.. {
            if level > 0 && count == 0 {
                break;
            }
            let (index, width) = (count / WIDTH, count % WIDTH);
            let first = index * WIDTH;
            let mut bottom = Vec::with_capacity(width as usize);
            for k in first..first + width {
                // Levels 0 and 1 are empty at a multiple of 256 leaves.
                let below = level.checked_sub(1).ok_or_else(|| {
                    Error::Corrupt("an edge is rebuilt only at a multiple of 256 leaves".into())
                })?;
                bottom.push(top(below, k)?);
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

    /// Adds one leaf hash, adding to `completed` every full tile it
    /// completes: (tile level, index, the tile's 31 hashes).
    pub(super) fn push_leaf(&mut self, leaf: Hash, completed: &mut Vec<(u8, u64, Vec<u8>)>) {
        let mut carry = Some(leaf);
        let mut level = 0u8;
        while let Some(hash) = carry.take() {
            if self.tiles.len() == level as usize {
                self.tiles.push(PartialTile::new(0));
            }
            let tile = &mut self.tiles[level as usize];
            if let Some(full) = tile.push(hash) {
                carry = read_hash(&full, TILE_HEIGHT, 0);
                completed.push((level, tile.index - 1, full));
                level += 1;
            }
        }
        self.size += 1;
    }
}
