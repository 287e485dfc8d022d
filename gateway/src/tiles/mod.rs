//! A C2SP tlog-tiles client, for auditors and monitors: everything it
//! reports is recomputed from the log's tiles and checked against
//! checkpoints the caller verified, so the server is trusted for nothing
//! but availability.
//!
//! - [`fetch`] ([`Fetcher`]): `GET` a resource under the log's prefix,
//!   HTTPS trusting one CA, or plain HTTP;
//! - [`layout`]: which tile holds which hash, and a
//!   [`NodeSource`](xgate_ledger::proof::NodeSource) over fetched tiles,
//!   so `xgate_ledger::proof` builds proofs from them;
//! - [`edge`] ([`Edge`]): a tree's right edge, to check a checkpoint's
//!   root from the entries appended since the last one;
//! - [`client`] ([`LogClient`]): the checkpoint, consistency and inclusion
//!   recomputed from tiles, entry bundles checked against tiles.

pub mod client;
pub mod edge;
pub mod fetch;
pub mod layout;

pub use client::{LogClient, TilesError};
pub use edge::Edge;
pub use fetch::{FetchError, Fetcher};
