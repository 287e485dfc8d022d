//! Where the hashes a proof needs live in a tiled log, and a
//! [`NodeSource`] over fetched tiles, so `xgate_ledger::proof` computes
//! roots and proofs from tiles exactly as the log computes them from its
//! own storage.
//!
//! A tile at level `L` holds hashes of tree level `8 L`; a complete
//! subtree at tree level `8 L + r` (`r` below 8) is the Merkle tree hash of
//! `2^r` consecutive hashes of one such tile (C2SP tlog-tiles: "the Merkle
//! Tree levels between those expressed by the tile hashes are
//! reconstructed by hashing the leaves").

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use xgate_ledger::proof::NodeSource;
use xgate_ledger::tlog::{HEIGHT, Width};
use xgate_ledger::{Hash, NodeId};

/// One tile of a tree of a given size: its level, index and width there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileRef {
    /// Tile level (tree level `8 * level`).
    pub level: u8,
    /// Index within the level.
    pub index: u64,
    /// How many hashes the tile has at the tree size: 256 for a full tile.
    pub width: u16,
}

impl TileRef {
    /// Tile `index` at `level` as it is in a tree of `size` entries:
    /// full, or partial of width `floor(size / 256^level) mod 256`.
    pub fn at(level: u8, index: u64, size: u64) -> TileRef {
        // 256^(level + 1) passes 2^64 at level 7: count in u128.
        let shift = u32::from(HEIGHT) * (u32::from(level) + 1);
        let end = (u128::from(index) + 1) << shift;
        let width = if end <= u128::from(size) {
            256
        } else {
            u16::from(xgate_ledger::tlog::path::partial_width(size, level))
        };
        TileRef {
            level,
            index,
            width,
        }
    }

    /// The spec's width: full or partial.
    pub fn spec_width(self) -> Width {
        match u8::try_from(self.width) {
            Ok(w) if w > 0 => Width::Partial(w),
            _ => Width::Full,
        }
    }

    /// The tile's path under the log's prefix.
    pub fn path(self) -> String {
        xgate_ledger::tlog::path::tile_path(self.level, self.index, self.spec_width())
    }

    /// The path of the entry bundle beside this level-0 tile.
    pub fn bundle_path(self) -> String {
        xgate_ledger::tlog::path::bundle_path(self.index, self.spec_width())
    }

    /// Whether the tile is full (immutable, cacheable).
    pub fn is_full(self) -> bool {
        self.width == 256
    }
}

/// The tile holding complete subtree `node` of a tree of `size` entries,
/// and the range of its hashes that `node` spans.
pub fn locate(node: NodeId, size: u64) -> (TileRef, std::ops::Range<usize>) {
    let level = node.level / HEIGHT;
    let within = node.level % HEIGHT;
    // The node's first hash at tree level 8 * level, and how many it spans.
    let first = node.index << within;
    let span = 1usize << within;
    let tile = TileRef::at(level, first >> HEIGHT, size);
    let offset = (first % 256) as usize;
    (tile, offset..offset + span)
}

/// Why a node could not be produced from tiles.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// The node lies past the tree size the tiles are for, or in a tile not
    /// fetched: a bug in the caller, never the log's doing.
    #[error("no tile holds node {level}/{index}")]
    Missing {
        /// Tree level.
        level: u8,
        /// Index at that level.
        index: u64,
    },
}

/// Fetched tiles for a tree of one size, as a [`NodeSource`].
#[derive(Clone, Debug, Default)]
pub struct Tiles {
    size: u64,
    tiles: HashMap<(u8, u64), Arc<[Hash]>>,
}

impl Tiles {
    /// No tiles yet, for a tree of `size` entries.
    pub fn new(size: u64) -> Tiles {
        Tiles {
            size,
            tiles: HashMap::new(),
        }
    }

    /// Adds the hashes of `tile` (at least `tile.width` of them).
    pub fn insert(&mut self, tile: TileRef, hashes: Arc<[Hash]>) {
        self.tiles.insert((tile.level, tile.index), hashes);
    }

    /// The hashes of `tile`, if fetched.
    pub fn get(&self, tile: TileRef) -> Option<&[Hash]> {
        self.tiles
            .get(&(tile.level, tile.index))
            .map(|h| &h[..usize::from(tile.width).min(h.len())])
    }
}

impl NodeSource for Tiles {
    type Error = LayoutError;

    fn node(&self, node: NodeId) -> Result<Hash, LayoutError> {
        let missing = LayoutError::Missing {
            level: node.level,
            index: node.index,
        };
        let (tile, range) = locate(node, self.size);
        let hashes = self.get(tile).ok_or(missing.clone())?;
        let span = hashes.get(range).ok_or(missing)?;
        Ok(if span.len() == 1 {
            span[0]
        } else {
            xgate_ledger::hash::root_of(span)
        })
    }
}

/// A [`NodeSource`] that answers nothing but records which tiles were
/// asked for: running a proof builder over it first lists the tiles to
/// fetch (the builders' reads do not depend on the hashes read).
#[derive(Debug)]
pub struct Needed {
    size: u64,
    tiles: RefCell<BTreeSet<TileRef>>,
}

impl Needed {
    /// Records for a tree of `size` entries.
    pub fn new(size: u64) -> Needed {
        Needed {
            size,
            tiles: RefCell::new(BTreeSet::new()),
        }
    }

    /// The tiles asked for so far.
    pub fn into_tiles(self) -> BTreeSet<TileRef> {
        self.tiles.into_inner()
    }
}

impl NodeSource for Needed {
    type Error = LayoutError;

    fn node(&self, node: NodeId) -> Result<Hash, LayoutError> {
        self.tiles.borrow_mut().insert(locate(node, self.size).0);
        Ok(Hash::EMPTY_ROOT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xgate_ledger::proof::{MemoryLeaves, prove_consistency, prove_inclusion, root_at};

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| xgate_ledger::leaf_hash(&i.to_be_bytes()))
            .collect()
    }

    /// Tiles built from the spec's definition: tile `n` at level `l` is
    /// `MTH(D[(n*256+i)*256^l : (n*256+i+1)*256^l])` for each `i` whose
    /// range is complete in the tree.
    fn spec_tiles(all: &[Hash]) -> Tiles {
        let size = all.len() as u64;
        let mut tiles = Tiles::new(size);
        for level in 0u8..3 {
            let per = 256usize.pow(u32::from(level));
            let hashes: Vec<Hash> = all
                .chunks(per)
                .filter(|c| c.len() == per)
                .map(xgate_ledger::hash::root_of)
                .collect();
            for (n, chunk) in hashes.chunks(256).enumerate() {
                let tile = TileRef::at(level, n as u64, size);
                assert_eq!(usize::from(tile.width), chunk.len(), "width of {level}/{n}");
                tiles.insert(tile, chunk.to_vec().into());
            }
        }
        tiles
    }

    #[test]
    fn widths_follow_the_spec_example() {
        // "a tree of size 70,000 will be represented by 273 full level 0
        // tiles, one partial level 0 tile of width 112, one full level 1
        // tile, one partial level 1 tile of width 17, and one partial level
        // 2 tile of width 1."
        assert_eq!(TileRef::at(0, 272, 70_000).width, 256);
        assert_eq!(TileRef::at(0, 273, 70_000).width, 112);
        assert_eq!(TileRef::at(1, 0, 70_000).width, 256);
        assert_eq!(TileRef::at(1, 1, 70_000).width, 17);
        assert_eq!(TileRef::at(2, 0, 70_000).width, 1);
        assert_eq!(TileRef::at(1, 0, 256).width, 1);
        assert_eq!(TileRef::at(0, 0, 256).width, 256);
        assert_eq!(TileRef::at(0, 273, 70_000).path(), "tile/0/273.p/112");
        assert_eq!(TileRef::at(7, 0, u64::MAX).width, 255);
    }

    #[test]
    fn proofs_from_tiles_equal_proofs_from_leaves() {
        for size in [1u64, 2, 255, 256, 257, 511, 513, 65_536, 65_537, 70_000] {
            let all = leaves(size);
            let tiles = spec_tiles(&all);
            let memory = MemoryLeaves(all);
            assert_eq!(root_at(&tiles, size), Ok(root_at(&memory, size).unwrap()));
            for old in [1, size / 3, size - 1, size].into_iter().filter(|&o| o > 0) {
                let from_tiles = prove_consistency(&tiles, old, size).expect("tiles");
                assert_eq!(from_tiles, prove_consistency(&memory, old, size).unwrap());
                let needed = Needed::new(size);
                prove_consistency(&needed, old, size).expect("record");
                assert!(needed.into_tiles().iter().all(|t| tiles.get(*t).is_some()));
            }
            for index in [0, size / 2, size - 1] {
                let from_tiles = prove_inclusion(&tiles, index, size).expect("tiles");
                assert_eq!(from_tiles, prove_inclusion(&memory, index, size).unwrap());
            }
        }
    }

    #[test]
    fn a_node_in_a_tile_not_fetched_is_missing() {
        let tiles = Tiles::new(1000);
        assert_eq!(
            tiles.node(NodeId::new(3, 1)),
            Err(LayoutError::Missing { level: 3, index: 1 })
        );
    }
}
