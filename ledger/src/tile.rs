//! Tiles: how stored hashes are grouped, after C2SP tlog-tiles.
//!
//! A tile of height 8 at tile level `L`, index `N` owns the complete subtrees
//! of tree levels `8L ..= 8L + 8` that lie under leaves
//! `[N << 8(L+1), (N + 1) << 8(L+1))`: 256 nodes at its bottom, 128 above them,
//! and so on up to the single node at its top, 511 hashes in all. Unlike
//! tlog-tiles we keep the interior levels too, so a proof reads one tile per
//! eight tree levels and hashes nothing.
//!
//! A full tile is written once and never changes. The rightmost, unfinished
//! tile of each level is a [`PartialTile`] held in memory; only its bottom row
//! is stored (as entries at level 0, as separate keys above), and it is
//! rebuilt from that row on open.

use crate::hash::{HASH_LEN, Hash, layers_of, node_hash};
use crate::tree::NodeId;

/// Tree levels per tile.
pub const TILE_HEIGHT: u8 = 8;
/// Nodes in the bottom row of a full tile.
pub const TILE_WIDTH: usize = 1 << TILE_HEIGHT;
/// Hashes in a full tile: 256 + 128 + ... + 1.
pub const TILE_HASHES: usize = 2 * TILE_WIDTH - 1;
/// Bytes of a stored full tile.
pub const TILE_BYTES: usize = TILE_HASHES * HASH_LEN;

/// Where a node lives: tile level, tile index, row in the tile (0 = bottom)
/// and position in that row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TileSlot {
    pub tile_level: u8,
    pub tile_index: u64,
    pub row: u8,
    pub offset: usize,
}

impl TileSlot {
    /// The tile slot of a node. A node at a tree level that is a multiple of
    /// 8 is the top of one tile and the bottom of the next; it is addressed
    /// here as the bottom of the upper tile.
    pub fn of(node: NodeId) -> TileSlot {
        let row = node.level % TILE_HEIGHT;
        let per_tile = TILE_HEIGHT - row;
        TileSlot {
            tile_level: node.level / TILE_HEIGHT,
            tile_index: node.index >> per_tile,
            row,
            offset: (node.index & ((1 << per_tile) - 1)) as usize,
        }
    }
}

/// Offset of the first hash of `row` in a serialized full tile.
fn row_start(row: u8) -> usize {
    // Rows 0..row hold 256 + 128 + ... hashes: 512 - 2^(9 - row).
    (2 * TILE_WIDTH) - ((2 * TILE_WIDTH) >> row)
}

/// Reads one hash out of a serialized full tile.
///
/// Returns `None` if `bytes` is not a full tile or the slot is outside it.
pub(crate) fn read_hash(bytes: &[u8], row: u8, offset: usize) -> Option<Hash> {
    if bytes.len() != TILE_BYTES || row > TILE_HEIGHT || offset >= TILE_WIDTH >> row {
        return None;
    }
    let at = (row_start(row) + offset) * HASH_LEN;
    Hash::from_slice(&bytes[at..at + HASH_LEN])
}

/// Builds a full tile from its 256 bottom hashes with `rs_merkle` and
/// serializes every row. Used to check stored tiles during verification.
pub(crate) fn build_full(bottom: &[Hash]) -> Option<Vec<u8>> {
    if bottom.len() != TILE_WIDTH {
        return None;
    }
    let layers = layers_of(bottom);
    let mut out = Vec::with_capacity(TILE_BYTES);
    for layer in layers {
        for h in layer {
            out.extend_from_slice(h.as_bytes());
        }
    }
    Some(out)
}

/// The unfinished rightmost tile of one tile level, with every complete
/// subtree inside it. Grows by [`PartialTile::push`] until full.
#[derive(Clone, Debug)]
pub(crate) struct PartialTile {
    /// Index of this tile within its tile level.
    pub index: u64,
    /// `rows[r]` holds the complete nodes of row `r`, left to right.
    rows: Vec<Vec<Hash>>,
}

impl PartialTile {
    /// An empty tile at `index`.
    pub fn new(index: u64) -> PartialTile {
        PartialTile {
            index,
            rows: (0..=TILE_HEIGHT)
                .map(|r| Vec::with_capacity(TILE_WIDTH >> r))
                .collect(),
        }
    }

    /// Rebuilds a tile from its stored bottom row. The row must be shorter
    /// than a full tile.
    pub fn from_bottom(index: u64, bottom: &[Hash]) -> PartialTile {
        let mut tile = PartialTile::new(index);
        for h in bottom {
            // A partial row never completes the tile, so no full tile is lost here.
            let completed = tile.push(*h);
            debug_assert!(completed.is_none());
        }
        tile
    }

    /// Number of hashes in the bottom row.
    pub fn width(&self) -> usize {
        self.rows[0].len()
    }

    /// The complete node at `row`, `offset`, if it exists yet.
    pub fn get(&self, row: u8, offset: usize) -> Option<Hash> {
        self.rows.get(row as usize)?.get(offset).copied()
    }

    /// Appends one hash to the bottom row and computes every node it
    /// completes. When the tile fills up, returns it serialized and resets this
    /// tile, empty, at the next index.
    pub fn push(&mut self, hash: Hash) -> Option<Vec<u8>> {
        self.rows[0].push(hash);
        let mut row = 0;
        while row < TILE_HEIGHT as usize && self.rows[row].len().is_multiple_of(2) {
            let n = self.rows[row].len();
            let parent = node_hash(&self.rows[row][n - 2], &self.rows[row][n - 1]);
            self.rows[row + 1].push(parent);
            row += 1;
        }
        if self.rows[TILE_HEIGHT as usize].is_empty() {
            return None;
        }
        let mut bytes = Vec::with_capacity(TILE_BYTES);
        for row in &mut self.rows {
            for h in row.drain(..) {
                bytes.extend_from_slice(h.as_bytes());
            }
        }
        self.index += 1;
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{leaf_hash, root_of};

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    #[test]
    fn slots_address_rows_within_tiles() {
        assert_eq!(
            TileSlot::of(NodeId::new(0, 300)),
            TileSlot {
                tile_level: 0,
                tile_index: 1,
                row: 0,
                offset: 44
            }
        );
        assert_eq!(
            TileSlot::of(NodeId::new(3, 40)),
            TileSlot {
                tile_level: 0,
                tile_index: 1,
                row: 3,
                offset: 8
            }
        );
        assert_eq!(
            TileSlot::of(NodeId::new(8, 5)),
            TileSlot {
                tile_level: 1,
                tile_index: 0,
                row: 0,
                offset: 5
            }
        );
        assert_eq!(
            TileSlot::of(NodeId::new(15, 3)),
            TileSlot {
                tile_level: 1,
                tile_index: 1,
                row: 7,
                offset: 1
            }
        );
    }

    #[test]
    fn incremental_tile_matches_rs_merkle_build() {
        let bottom = leaves(TILE_WIDTH);
        let mut tile = PartialTile::new(7);
        let mut full = None;
        for h in &bottom {
            full = tile.push(*h);
        }
        let full = full.expect("256 pushes fill a tile");
        assert_eq!(tile.index, 8);
        assert_eq!(tile.width(), 0);
        assert_eq!(Some(full.clone()), build_full(&bottom));
        assert_eq!(read_hash(&full, TILE_HEIGHT, 0), Some(root_of(&bottom)));
        assert_eq!(read_hash(&full, 2, 3), Some(root_of(&bottom[12..16])));
        assert_eq!(read_hash(&full, 0, 255), Some(bottom[255]));
    }

    #[test]
    fn partial_tile_holds_only_complete_nodes() {
        let tile = PartialTile::from_bottom(0, &leaves(5));
        assert_eq!(tile.get(0, 4), Some(leaves(5)[4]));
        assert_eq!(tile.get(1, 1), Some(root_of(&leaves(4)[2..4])));
        assert_eq!(tile.get(1, 2), None);
        assert_eq!(tile.get(2, 0), Some(root_of(&leaves(4))));
        assert_eq!(tile.get(2, 1), None);
    }

    #[test]
    fn read_hash_rejects_bad_slots() {
        let full = build_full(&leaves(TILE_WIDTH)).expect("full");
        assert!(read_hash(&full, 8, 1).is_none());
        assert!(read_hash(&full, 9, 0).is_none());
        assert!(read_hash(&full[1..], 0, 0).is_none());
    }
}
