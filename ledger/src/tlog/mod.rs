//! The log's public files: C2SP tlog-tiles on disk.
//!
//! A tiled log is a directory any static file server can serve (or rsync
//! can copy): the signed `checkpoint`, the tree as `tile/<L>/<N>[.p/<W>]`
//! (256 hashes of one level per full tile) and the entries as
//! `tile/entries/<N>[.p/<W>]` (256 per full bundle). Full tiles and bundles
//! never change once written; partial ones (`.p/<W>`) exist for the sizes a
//! checkpoint was published for, until the full one replaces them.
//!
//! - [`path`]: the paths, built and parsed (no file system);
//! - [`bundle`]: the entry bundle format (no file system);
//! - `durable`: immutable, durable file creation with `*at` system calls;
//! - `dir` ([`TileDir`]): the directory itself, on top of the three.
//!
//! The log core computes the hashes (from its in-memory right edge) and
//! decides what to write when; this module only stores and reads them.

pub mod bundle;
mod dir;
mod durable;
pub mod path;

#[cfg(test)]
mod known_answer;

pub use dir::{TileDir, TlogError};
pub use path::{Resource, Width};

/// Height of a tile: a tile holds the hashes 8 levels of the tree apart.
pub const HEIGHT: u8 = 8;
/// Hashes in a full tile, and entries in a full bundle: `2^HEIGHT`.
pub const WIDTH: u64 = 1 << HEIGHT;
/// Bytes in a full tile: 256 SHA-256 hashes.
pub const TILE_BYTES: usize = WIDTH as usize * crate::hash::HASH_LEN;
