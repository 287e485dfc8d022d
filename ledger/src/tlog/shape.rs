//! The shape of a tlog-tiles tile (C2SP tlog-tiles: height 8).

/// Height of a tile: a tile holds the hashes 8 levels of the tree apart.
pub const HEIGHT: u8 = 8;
/// Hashes in a full tile, and entries in a full bundle: `2^HEIGHT`.
pub const WIDTH: u64 = 1 << HEIGHT;
/// Bytes in a full tile: 256 SHA-256 hashes.
pub const TILE_BYTES: usize = WIDTH as usize * crate::hash::HASH_LEN;
