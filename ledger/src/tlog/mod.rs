//! The log's public files: C2SP tlog-tiles on disk.
//!
//! A tiled log is a directory any static file server can serve (or rsync
//! can copy): the signed `checkpoint`, the tree as `tile/<L>/<N>[.p/<W>]`
//! (256 hashes of one level per full tile) and the entries as
//! `tile/entries/<N>[.p/<W>]` (256 per full bundle). Full tiles and bundles
//! never change once written; partial ones (`.p/<W>`) exist for the sizes a
//! checkpoint was published for, until the full one replaces them.
//!
//! - `shape`: a tile's height and width;
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
mod shape;

#[cfg(test)]
mod known_answer;

pub use dir::{TileDir, TlogError};
pub use path::{Resource, Width};
pub use shape::{HEIGHT, TILE_BYTES, WIDTH};
