//! Tiles: how stored hashes are grouped, after C2SP tlog-tiles.
//!
//! A tile of height `H` ([`TILE_HEIGHT`]) at tile level `L`, index `N` owns
//! the complete subtrees of tree levels `HL ..= HL + H` that lie under leaves
//! `[N << H(L+1), (N + 1) << H(L+1))`: `2^H` nodes at its bottom, half as many
//! above them, and so on up to the single node at its top. Unlike tlog-tiles
//! we keep the interior levels too, so a proof reads one tile per `H` tree
//! levels and hashes nothing.
//!
//! Why `H = 4` (16 leaves, 31 hashes, 992 bytes) and not tlog-tiles' 8: sled
//! 0.34 keeps up to 16 values in a leaf node and stores any node over 128 KiB
//! as a separate blob file, which its cache cannot evict and which it never
//! fsyncs. Height-8 tiles (16 KiB) and their 256-entry bundles made nearly
//! every node a blob; at height 4 a node of tiles is about 16 KiB, and a
//! node of 16-entry bundles of gateway-sized entries stays far below the
//! threshold.
//!
//! A full tile is written once and never changes. The rightmost, unfinished
//! tile of each level is a [`PartialTile`] held in memory; only its bottom row
//! is stored (as entries at level 0, as separate keys above), and it is
//! rebuilt from that row on open.

use crate::hash::{HASH_LEN, Hash, layers_of, node_hash};
use crate::tree::NodeId;

/// Tree levels per tile.
pub const TILE_HEIGHT: u8 = 4;
/// Nodes in the bottom row of a full tile.
pub const TILE_WIDTH: usize = 1 << TILE_HEIGHT;
/// Hashes in a full tile: 16 + 8 + 4 + 2 + 1.
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
    // Rows 0..row hold W + W/2 + ... hashes: 2W - 2W/2^row.
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

/// Builds a full tile from its bottom row with `rs_merkle` and
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
        let slot = |level, index| TileSlot::of(NodeId::new(level, index));
        let at = |tile_level, tile_index, row, offset| TileSlot {
            tile_level,
            tile_index,
            row,
            offset,
        };
        // Leaf 40 is the 9th leaf of the third level-0 tile.
        assert_eq!(slot(0, 40), at(0, 2, 0, 8));
        // Level 3 node 5 covers leaves 40..48: row 3 of level-0 tile 2.
        assert_eq!(slot(3, 5), at(0, 2, 3, 1));
        // A level-4 node tops one level-0 tile and is the bottom of a level-1 tile.
        assert_eq!(slot(4, 37), at(1, 2, 0, 5));
        // Level 7 node 3 covers leaves 384..512: row 3 of level-1 tile 1.
        assert_eq!(slot(7, 3), at(1, 1, 3, 1));
    }

    #[test]
    fn incremental_tile_matches_rs_merkle_build() {
        let bottom = leaves(TILE_WIDTH);
        let mut tile = PartialTile::new(7);
        let mut full = None;
        for h in &bottom {
            full = tile.push(*h);
        }
        let full = full.expect("a full bottom row fills a tile");
        assert_eq!(tile.index, 8);
        assert_eq!(tile.width(), 0);
        assert_eq!(Some(full.clone()), build_full(&bottom));
        assert_eq!(read_hash(&full, TILE_HEIGHT, 0), Some(root_of(&bottom)));
        assert_eq!(read_hash(&full, 2, 3), Some(root_of(&bottom[12..16])));
        assert_eq!(
            read_hash(&full, 0, TILE_WIDTH - 1),
            Some(bottom[TILE_WIDTH - 1])
        );
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
        assert!(read_hash(&full, TILE_HEIGHT, 1).is_none());
        assert!(read_hash(&full, TILE_HEIGHT + 1, 0).is_none());
        assert!(read_hash(&full[1..], 0, 0).is_none());
    }
}
