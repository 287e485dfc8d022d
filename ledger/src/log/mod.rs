//! The [`Log`]: what it holds, and one file per thing it does.
//!
//! Each concern is one `impl` block in a file of its own, which uses this
//! file and the internals below it, never another concern:
//!
//! - `open`: open a data directory and recover (replay the journal past
//!   what the tiles and the store already hold, check the checkpoints);
//! - `append`: the one write path (one journal record, one barrier), and
//!   the [`Committed`](crate::Committed) it returns;
//! - `integrate`: off the write path, turning what the journal holds into
//!   tlog-tiles files, publishing checkpoints and releasing the journal;
//! - `read`: sizes, entries, bodies, roots, inclusion and consistency proofs;
//! - `publish`: signing checkpoints on demand or with every commit;
//! - `audit`: recomputing the whole log ([`Log::verify`]).
//!
//! The internals: `record` (a journal record), `edge` (the unfinished right
//! edge of the tree), `head` (the edge and durable size readers see),
//! `pending` (what is durable in the journal but not yet in tile files),
//! `reader` (hashes for proofs), `latest` (the signer, the latest checkpoint
//! and its copy outside the store), `notes` (the published checkpoints) and
//! `lock`.
//!
//! One writer at a time: an append and an explicit checkpoint take the
//! writer's turn; concurrent appends simply wait for theirs. Group commit
//! is the caller's business (the gateway's committer batches envelopes into
//! one append). Readers never wait for the writer: they work from an
//! immutable snapshot of the right edge plus full tiles, which stay in
//! `pending` until their files are durable, so every node a reader needs is
//! in one place or the other.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use crate::DiskStore;
use crate::blobs::Blobs;
use crate::nodes::Nodes;
use crate::sequencer::Sequencer;
use crate::store::Store;
use crate::tlog::TileDir;

pub(crate) mod append;
pub(crate) mod audit;
mod integrate;
mod open;
mod publish;
pub(crate) mod read;

mod edge;
mod head;
mod latest;
mod lock;
mod notes;
mod pending;
mod progress;
mod reader;
pub(crate) mod record;
mod worker;

use edge::Edge;
use head::Head;
use latest::Latest;
use notes::Notes;
use pending::Pending;
use progress::Progress;
use reader::{Reader, Sources};
use worker::Integrator;

/// An append-only RFC 9162 log in a data directory: a journal that makes
/// each commit durable with one barrier, the tree as C2SP tlog-tiles files,
/// and a store (`S`) for its owner's small state.
///
/// `Log` is `Sync`: appends from many threads take turns, each durable
/// before it returns; reads and proofs run alongside them.
pub struct Log<S: Store = DiskStore> {
    shared: Arc<Shared<S>>,
    /// The thread that writes tiles and publishes checkpoints.
    integrator: Option<Integrator>,
}

/// Everything the writer, the readers and the integrator share.
pub(crate) struct Shared<S: Store> {
    /// Small state: the owner's keys and the log's own `L` keys.
    store: S,
    /// The durability point: one record per commit (the journal).
    journal: Box<dyn Sequencer>,
    /// The public tiles, bundles and checkpoint.
    tiles: TileDir,
    /// Private interior tiles for fast proofs.
    nodes: Nodes,
    /// Bodies kept until dropped.
    bodies: Blobs,
    /// Bodies kept for good.
    kept: Blobs,
    /// Every published checkpoint.
    notes: Notes,
    /// What the tile files are trusted for.
    integrated_file: PathBuf,
    /// The store's data file, synced before the journal is released.
    store_file: PathBuf,
    /// The writer's turn: held by an append for its whole commit and by
    /// `checkpoint`. Guards no data of its own.
    writer: Mutex<()>,
    /// The right edge and the durable size, as readers see them.
    head: Head,
    /// Durable in the journal, not yet in files.
    pending: RwLock<Pending>,
    /// The signer, the latest checkpoint and its copy outside the store.
    latest: Latest,
    /// What the integrator has done; held for each of its rounds.
    progress: Mutex<Progress>,
    /// Set when a write past the journal's barrier failed: the log's
    /// memory no longer matches its files, so it refuses appends until it
    /// is reopened (which replays the journal).
    broken: AtomicBool,
    /// The tlog-tiles `checkpoint` file holds only cosigned checkpoints
    /// (`OpenOptions::witnessed`), written by `Log::publish_cosigned`.
    witnessed: bool,
    /// Held for the lifetime of the log.
    _dir_lock: File,
}

impl<S: Store> Shared<S> {
    /// A reader over a snapshot of the published edge.
    fn reader(&self) -> Reader<'_> {
        self.reader_over(self.head.edge())
    }

    /// A reader over `edge`, which may be newer than the published one.
    fn reader_over(&self, edge: Arc<Edge>) -> Reader<'_> {
        let sources = Sources {
            pending: &self.pending,
            nodes: &self.nodes,
            tiles: &self.tiles,
        };
        Reader::new(sources, edge)
    }
}

impl<S: Store> Drop for Log<S> {
    /// Stops the integrator after a last round, so a log closed cleanly
    /// leaves its tile files and published checkpoint up to date, and the
    /// mirror holding the latest checkpoint.
    fn drop(&mut self) {
        if let Some(integrator) = self.integrator.take() {
            integrator.stop();
        }
        if let Err(stale) = self.shared.latest.close() {
            // Nobody is left to tell: the mirror keeps an older checkpoint,
            // still a valid anchor, and the journal holds the latest.
            drop(stale);
        }
    }
}
