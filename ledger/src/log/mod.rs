//! The [`Log`]: what it holds, and one file per thing it does.
//!
//! Each concern is one `impl Log` block in a file of its own, which uses
//! this file and the internals below it, never another concern:
//!
//! - `open`: open a store or a data directory and recover the tree (the
//!   right edge, the tile files, the latest checkpoint, checked against
//!   the tree);
//! - `append`: the one write path, and the [`Committed`](crate::Committed)
//!   it returns;
//! - `read`: sizes, entries, roots, inclusion and consistency proofs;
//! - `publish`: signing and publishing checkpoints;
//! - `audit`: recomputing the whole log ([`Log::verify`]).
//!
//! The internals: `edge` (the unfinished right edge of the tree), `head`
//! (the edge and durable size readers see), `reader` (hashes for proofs,
//! from an edge snapshot and the full tiles), `latest` (the signer, the
//! latest checkpoint and its copy outside the store) and `lock`.
//!
//! One writer at a time: an append, an explicit checkpoint and `verify`
//! take the writer's turn; concurrent appends simply wait for theirs.
//! Group commit is the caller's business (the gateway's committer batches
//! envelopes into one append). Readers never wait for the writer: they work
//! from an immutable snapshot of the right edge plus full tiles, which are
//! written before the snapshot that stops holding them is published, so
//! every node a reader needs is in one place or the other.

use std::fs::File;
use std::sync::{Arc, Mutex};

use crate::store::Store;
use crate::tile_files::TileFiles;

pub(crate) mod append;
pub(crate) mod audit;
mod open;
mod publish;
mod read;

mod edge;
mod head;
mod latest;
mod lock;
mod reader;

use edge::Edge;
use head::Head;
use latest::Latest;
use reader::Reader;

/// An append-only RFC 9162 log over a [`Store`].
///
/// `Log` is `Sync`: appends from many threads take turns, each durable
/// before it returns; reads and proofs run alongside them.
pub struct Log<S: Store> {
    store: S,
    /// File copies of the full tiles, for fast proofs.
    tile_files: Option<TileFiles>,
    /// The writer's turn: held by an append for its whole commit, by
    /// `checkpoint` and by `verify`. Guards no data of its own.
    writer: Mutex<()>,
    /// The right edge and the durable size, as readers see them.
    head: Head,
    /// The signer, the latest checkpoint and its copy outside the store.
    latest: Latest,
    /// Held for the lifetime of the log when opened from a directory.
    _dir_lock: Option<File>,
}

impl<S: Store> Log<S> {
    /// A reader over a snapshot of the published edge.
    fn reader(&self) -> Reader<'_, S> {
        self.reader_over(self.head.edge())
    }

    /// A reader over `edge`, which may be newer than the published one.
    fn reader_over(&self, edge: Arc<Edge>) -> Reader<'_, S> {
        Reader::new(&self.store, self.tile_files.as_ref(), edge)
    }
}

impl<S: Store> Drop for Log<S> {
    /// Leaves the mirror holding the latest checkpoint, which commits may
    /// have signed since its last refresh.
    fn drop(&mut self) {
        if let Err(stale) = self.latest.close() {
            // Nobody is left to tell: the mirror keeps an older checkpoint,
            // still a valid anchor, and the store holds the latest.
            drop(stale);
        }
    }
}
