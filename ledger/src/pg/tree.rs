//! The tree as the database holds it: C2SP tlog-tiles tiles of height 8,
//! each the row of 256 hashes of one tree level (every 8th), nodes in
//! between computed from them.
//!
//! - [`Layers`]: one tile with every complete node inside it, grown hash by
//!   hash (the right edge) or built from a stored row;
//! - [`Edge`]: the unfinished tile of each level, which a writer appends to;
//! - [`Nodes`]: a [`NodeSource`] over an edge and the tiles a proof needs,
//!   and the recorder that tells which tiles those are before they are
//!   fetched (a proof's nodes depend on its sizes and indices only).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::error::Error;
use crate::hash::{HASH_LEN, Hash, node_hash};
use crate::proof::NodeSource;
use crate::tree::NodeId;

/// Tree levels per tile.
pub(super) const HEIGHT: u8 = 8;
/// Hashes in a full tile, entries in a full bundle.
pub(super) const WIDTH: u64 = 1 << HEIGHT;
/// Bytes of a full tile.
pub(super) const TILE_BYTES: usize = WIDTH as usize * HASH_LEN;
/// The log grows no larger than this: tile level 7 (trees past 2^56
/// entries) never exists, which keeps every shift of a size in range.
pub(super) const MAX_SIZE: u64 = 1 << 56;

/// A tile: (tile level, index).
pub(super) type TileKey = (u8, u64);

/// Where `node` lives: its tile, its row in the tile (0 = the stored
/// row) and its offset in that row. A node of a level that is a multiple
/// of 8 is the top of one tile and is addressed as a hash of the stored
/// row of the tile above.
pub(super) fn slot(node: NodeId) -> (TileKey, u8, usize) {
    let level = node.level / HEIGHT;
    let row = node.level % HEIGHT;
    let per_tile = HEIGHT - row;
    let index = node.index >> per_tile;
    let offset = (node.index & ((1u64 << per_tile) - 1)) as usize;
    ((level, index), row, offset)
}

/// The hashes of a stored tile row.
pub(super) fn hashes_of(bytes: &[u8]) -> Option<Vec<Hash>> {
    if !bytes.len().is_multiple_of(HASH_LEN) || bytes.len() > TILE_BYTES {
        return None;
    }
    Some(
        bytes
            .chunks_exact(HASH_LEN)
            .filter_map(Hash::from_slice)
            .collect(),
    )
}

/// A tile with every complete node inside it: `rows[r]` holds the nodes
/// `r` levels above the stored row, left to right.
#[derive(Clone, Debug)]
pub(super) struct Layers {
    rows: Vec<Vec<Hash>>,
}

impl Layers {
    /// An empty tile.
    pub(super) fn new() -> Layers {
        Layers {
            rows: (0..=HEIGHT)
                .map(|r| Vec::with_capacity((WIDTH >> r) as usize))
                .collect(),
        }
    }

    /// The tile whose stored row is `row` (at most 256 hashes).
    pub(super) fn from_row(row: &[Hash]) -> Layers {
        let mut layers = Layers::new();
        for h in row {
            layers.push(*h);
        }
        layers
    }

    /// Hashes in the stored row.
    pub(super) fn width(&self) -> usize {
        self.rows[0].len()
    }

    /// Whether the tile holds all 256.
    pub(super) fn is_full(&self) -> bool {
        self.width() == WIDTH as usize
    }

    /// The complete node at `row`, `offset`, if there is one yet.
    pub(super) fn get(&self, row: u8, offset: usize) -> Option<Hash> {
        self.rows.get(row as usize)?.get(offset).copied()
    }

    /// The stored row, as bytes.
    pub(super) fn row_bytes(&self) -> Vec<u8> {
        self.rows[0].iter().flat_map(|h| *h.as_bytes()).collect()
    }

    /// The tile's root, once it is full.
    pub(super) fn root(&self) -> Option<Hash> {
        self.get(HEIGHT, 0)
    }

    /// Adds a hash to the stored row and every node it completes. A full
    /// tile takes no more (returns false).
    pub(super) fn push(&mut self, hash: Hash) -> bool {
        if self.is_full() {
            return false;
        }
        self.rows[0].push(hash);
        let mut row = 0;
        while row < HEIGHT as usize && self.rows[row].len().is_multiple_of(2) {
            let n = self.rows[row].len();
            let parent = node_hash(&self.rows[row][n - 2], &self.rows[row][n - 1]);
            self.rows[row + 1].push(parent);
            row += 1;
        }
        true
    }
}

/// Hashes one batch appended to one tile: where the tile stood (hashes it
/// held) and the hashes added to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct TileAppend {
    /// Hashes in the tile before the batch.
    pub before: u16,
    /// The hashes appended, 32 bytes each.
    pub hashes: Vec<u8>,
}

/// The unfinished tile of each tile level of a tree of [`Edge::size`]
/// leaves. Everything left of it is in full tiles, which never change.
#[derive(Clone, Debug)]
pub(super) struct Edge {
    size: u64,
    /// `tiles[L]`: the index and contents of the unfinished tile at level L
    /// (possibly empty).
    tiles: Vec<(u64, Layers)>,
}

impl Edge {
    /// The edge of the empty tree.
    #[cfg(test)]
    pub(super) fn empty() -> Edge {
        Edge {
            size: 0,
            tiles: Vec::new(),
        }
    }

    /// The tile levels a tree of `size` leaves has: those with a node.
    pub(super) fn levels(size: u64) -> u8 {
        (0u8..8)
            .take_while(|l| size >> (u32::from(*l) * u32::from(HEIGHT)) > 0)
            .count() as u8
    }

    /// The edge of a tree of `size` leaves from its unfinished tiles'
    /// stored rows, by level (rows of other sizes hold more hashes: the
    /// first ones are taken).
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a row is missing, malformed or too short.
    pub(super) fn from_rows(size: u64, rows: &BTreeMap<u8, Vec<u8>>) -> Result<Edge, Error> {
        let mut tiles = Vec::new();
        for level in 0..Edge::levels(size) {
            let shift = u32::from(level) * u32::from(HEIGHT);
            let width = ((size >> shift) % WIDTH) as usize;
            let index = size >> (shift + u32::from(HEIGHT));
            let layers = if width == 0 {
                Layers::new()
            } else {
                let row = rows
                    .get(&level)
                    .and_then(|bytes| hashes_of(bytes))
                    .filter(|row| row.len() >= width)
                    .ok_or_else(|| {
                        Error::Corrupt(format!(
                            "tile {level}/{index} does not hold the {width} hashes of size {size}"
                        ))
                    })?;
                Layers::from_row(&row[..width])
            };
            tiles.push((index, layers));
        }
        Ok(Edge { size, tiles })
    }

    /// Number of leaves.
    pub(super) fn size(&self) -> u64 {
        self.size
    }

    /// The unfinished tile at `level`, if the tree reaches it.
    pub(super) fn tile(&self, level: u8) -> Option<(u64, &Layers)> {
        self.tiles.get(level as usize).map(|(i, l)| (*i, l))
    }

    /// Appends `leaves`, returning what each tile gained.
    pub(super) fn push(&mut self, leaves: &[Hash]) -> BTreeMap<TileKey, TileAppend> {
        let mut appended: BTreeMap<TileKey, TileAppend> = BTreeMap::new();
        for leaf in leaves {
            let mut carry = Some(*leaf);
            let mut level = 0u8;
            while let Some(hash) = carry.take() {
                if self.tiles.len() == level as usize {
                    self.tiles.push((0, Layers::new()));
                }
                let (index, tile) = &mut self.tiles[level as usize];
                let write = appended
                    .entry((level, *index))
                    .or_insert_with(|| TileAppend {
                        before: tile.width() as u16,
                        hashes: Vec::new(),
                    });
                write.hashes.extend_from_slice(hash.as_bytes());
                tile.push(hash);
                if tile.is_full() {
                    carry = tile.root();
                    *tile = Layers::new();
                    *index += 1;
                    level += 1;
                }
            }
            self.size += 1;
        }
        appended
    }
}

/// A [`NodeSource`] over an edge and fetched tiles, or a recorder of the
/// tiles a computation reads.
pub(super) enum Nodes<'a> {
    /// Records the tiles asked for and answers a placeholder.
    Recorder(RefCell<BTreeSet<TileKey>>),
    /// Reads `edge` for its unfinished tiles, `tiles` for the others.
    Reader {
        /// An edge of at least the size read at, if any.
        edge: Option<&'a Edge>,
        /// Every other tile the computation reads.
        tiles: &'a HashMap<TileKey, Arc<Layers>>,
    },
}

impl Nodes<'_> {
    /// A recorder.
    pub(super) fn recorder() -> Nodes<'static> {
        Nodes::Recorder(RefCell::new(BTreeSet::new()))
    }

    /// The tiles recorded.
    pub(super) fn recorded(self) -> BTreeSet<TileKey> {
        match self {
            Nodes::Recorder(keys) => keys.into_inner(),
            Nodes::Reader { .. } => BTreeSet::new(),
        }
    }
}

impl NodeSource for Nodes<'_> {
    type Error = Error;

    fn node(&self, node: NodeId) -> Result<Hash, Error> {
        let (key, row, offset) = slot(node);
        let found = match self {
            Nodes::Recorder(keys) => {
                keys.borrow_mut().insert(key);
                return Ok(Hash::EMPTY_ROOT);
            }
            Nodes::Reader { edge, tiles } => {
                let on_edge = edge
                    .and_then(|e| e.tile(key.0))
                    .filter(|(index, _)| *index == key.1);
                match on_edge {
                    Some((_, layers)) => layers.get(row, offset),
                    None => tiles.get(&key).and_then(|t| t.get(row, offset)),
                }
            }
        };
        found.ok_or_else(|| {
            Error::Corrupt(format!(
                "hash of node {}/{} is missing",
                node.level, node.index
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{leaf_hash, root_of};
    use crate::proof::{MemoryLeaves, prove_consistency, prove_inclusion, root_at};

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// Every tile a tree of `all` leaves has, as a database would hold it.
    fn stored(all: &[Hash]) -> HashMap<TileKey, Arc<Layers>> {
        let mut edge = Edge::empty();
        let mut rows: BTreeMap<TileKey, Vec<u8>> = BTreeMap::new();
        for (key, add) in edge.push(all) {
            rows.entry(key).or_default().extend(add.hashes);
        }
        rows.into_iter()
            .map(|(k, bytes)| {
                let row = hashes_of(&bytes).expect("row");
                (k, Arc::new(Layers::from_row(&row)))
            })
            .collect()
    }

    #[test]
    fn slots_address_height_8_tiles() {
        assert_eq!(slot(NodeId::new(0, 300)), ((0, 1), 0, 44));
        assert_eq!(slot(NodeId::new(3, 37)), ((0, 1), 3, 5));
        assert_eq!(slot(NodeId::new(8, 2)), ((1, 0), 0, 2));
        assert_eq!(slot(NodeId::new(15, 1)), ((1, 0), 7, 1));
        assert_eq!(slot(NodeId::new(16, 0)), ((2, 0), 0, 0));
    }

    #[test]
    fn levels_follow_the_size() {
        assert_eq!(Edge::levels(0), 0);
        assert_eq!(Edge::levels(1), 1);
        assert_eq!(Edge::levels(255), 1);
        assert_eq!(Edge::levels(256), 2);
        assert_eq!(Edge::levels(65_536), 3);
        assert_eq!(Edge::levels(MAX_SIZE - 1), 7);
    }

    #[test]
    fn a_full_tile_matches_rs_merkle() {
        let all = leaves(256);
        let layers = Layers::from_row(&all);
        assert!(layers.is_full());
        assert_eq!(layers.root(), Some(root_of(&all)));
        assert_eq!(layers.get(3, 2), Some(root_of(&all[16..24])));
        assert!(!Layers::from_row(&all).clone().push(all[0]));
    }

    #[test]
    fn pushing_reports_what_each_tile_gained() {
        let all = leaves(600);
        let mut edge = Edge::empty();
        let first = edge.push(&all[..250]);
        assert_eq!(first.len(), 1);
        assert_eq!(first[&(0, 0)].before, 0);
        let second = edge.push(&all[250..600]);
        assert_eq!(second[&(0, 0)].before, 250);
        assert_eq!(second[&(0, 0)].hashes.len(), 6 * 32);
        assert_eq!(second[&(0, 1)].hashes.len(), 256 * 32);
        assert_eq!(second[&(0, 2)].hashes.len(), 88 * 32);
        assert_eq!(second[&(1, 0)].before, 0);
        assert_eq!(second[&(1, 0)].hashes.len(), 2 * 32);
        assert_eq!(edge.size(), 600);
        assert_eq!(
            edge.tile(1).map(|(_, t)| t.get(0, 1)),
            Some(Some(root_of(&all[256..512])))
        );
    }

    #[test]
    fn an_edge_rebuilt_from_rows_proves_as_the_leaves_do() {
        for n in [
            1u64, 2, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 70_000,
        ] {
            let all = leaves(n);
            let tiles = stored(&all);
            let rows: BTreeMap<u8, Vec<u8>> = (0..Edge::levels(n))
                .filter_map(|l| {
                    let index = n >> (8 * u32::from(l) + 8);
                    tiles.get(&(l, index)).map(|t| (l, t.row_bytes()))
                })
                .collect();
            let edge = Edge::from_rows(n, &rows).expect("edge");
            let memory = MemoryLeaves(all.clone());
            for source in [
                Nodes::Reader {
                    edge: Some(&edge),
                    tiles: &tiles,
                },
                Nodes::Reader {
                    edge: None,
                    tiles: &tiles,
                },
            ] {
                assert_eq!(root_at(&source, n).ok(), root_at(&memory, n).ok(), "{n}");
                for i in [0, n / 2, n - 1] {
                    assert_eq!(
                        prove_inclusion(&source, i, n).ok(),
                        prove_inclusion(&memory, i, n).ok(),
                        "{i} in {n}"
                    );
                }
                for old in [1, n / 3 + 1, n] {
                    assert_eq!(
                        prove_consistency(&source, old, n).ok(),
                        prove_consistency(&memory, old, n).ok(),
                        "{old} to {n}"
                    );
                }
            }
            // The recorder asks for the tiles the reader reads.
            let recorder = Nodes::recorder();
            let _ = prove_inclusion(&recorder, 0, n);
            let wanted = recorder.recorded();
            assert!(wanted.iter().all(|k| tiles.contains_key(k)), "{n}");
        }
    }

    #[test]
    fn a_short_row_is_refused() {
        let all = leaves(10);
        let mut rows = BTreeMap::new();
        rows.insert(0u8, Layers::from_row(&all[..9]).row_bytes());
        assert!(matches!(Edge::from_rows(10, &rows), Err(Error::Corrupt(_))));
        assert!(matches!(
            Edge::from_rows(10, &BTreeMap::new()),
            Err(Error::Corrupt(_))
        ));
        assert!(Edge::from_rows(9, &rows).is_ok());
    }
}
