//! [`Ledger`]: what the gateway needs of a log, whatever holds it.
//!
//! Two backends implement it: [`Log`] (a data directory: the journal, the
//! tile files and sled, one process) and, with the `postgres` feature,
//! `pg::PgLog` (every part in one PostgreSQL database that several
//! processes append to, issue 23). The gateway holds an
//! `Arc<dyn Ledger>` and never knows which.

use crate::checkpoint::{NoteVerifier, SignedCheckpoint};
use crate::error::Error;
use crate::hash::Hash;
use crate::log::Log;
use crate::log::append::{Committed, WithEntries};
use crate::log::audit::VerifyReport;
use crate::log::read::DiskUsage;
use crate::proof::{ConsistencyProof, InclusionProof};
use crate::store::{Store, StoreRead, WriteBatch};
use crate::tlog;
use crate::turn::{Prepare, TurnStats};

/// A transparency log with its owner's small state, as the gateway uses it.
///
/// Every method has the meaning [`Log`]'s method of the same name
/// documents; a backend differs only in where things are kept and in
/// [`Ledger::turn`]'s changes.
pub trait Ledger: Send + Sync {
    /// The log's origin (the name of its checkpoint key).
    fn origin(&self) -> &str;
    /// The verifier key of the log's checkpoints.
    fn verifier(&self) -> NoteVerifier;
    /// The owner's small state (keys not starting with `L`), to read.
    fn store(&self) -> &dyn StoreRead;
    /// A body committed with `put_body` or `put_kept`, if still there.
    fn body(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error>;

    /// Takes the writer's turn and commits what `prepare` decides from
    /// where the log stands ([`crate::turn`]).
    fn turn(&self, prepare: &mut Prepare<'_>) -> Result<Committed, Error>;
    /// Appends `entries` with the writes `with` makes for their indices.
    fn append_batch_with(&self, entries: &[Vec<u8>], with: WithEntries)
    -> Result<Committed, Error>;
    /// Commits `batch` alone, durably.
    fn commit_writes(&self, batch: WriteBatch) -> Result<(), Error>;

    /// The number of durable entries.
    fn size(&self) -> u64;
    /// The index the next append will get (a hint with several writers).
    fn next_index(&self) -> u64;
    /// Whether the log takes no more commits until it is reopened.
    fn stopped(&self) -> bool;
    /// Bytes kept on this machine's disk, by part.
    fn disk_usage(&self) -> DiskUsage;
    /// Why the last integration round failed, if it did.
    fn integration_failure(&self) -> Option<String>;

    /// The entry at `index`, exactly as appended.
    fn entry(&self, index: u64) -> Result<Vec<u8>, Error>;
    /// The leaf hash of entry `index`.
    fn leaf_hash(&self, index: u64) -> Result<Hash, Error>;
    /// The root hash at `size`.
    fn root_at(&self, size: u64) -> Result<Hash, Error>;
    /// An inclusion proof for `index` in the tree of `size`.
    fn inclusion(&self, index: u64, size: u64) -> Result<InclusionProof, Error>;
    /// A consistency proof from `old` to `new`.
    fn consistency(&self, old: u64, new: u64) -> Result<ConsistencyProof, Error>;
    /// A public C2SP tlog-tiles resource, as a server must serve it.
    fn read_public(&self, resource: &tlog::Resource) -> Result<Option<Vec<u8>>, Error>;

    /// The newest checkpoint signed, if any.
    fn latest_checkpoint(&self) -> Option<SignedCheckpoint>;
    /// The newest checkpoint published.
    fn published_checkpoint(&self) -> Option<SignedCheckpoint>;
    /// A checkpoint for the current size, signed now if needed.
    fn checkpoint(&self) -> Result<SignedCheckpoint, Error>;
    /// Whether every commit signs a checkpoint.
    fn set_checkpoint_every_commit(&self, on: bool);
    /// Every published checkpoint: (size, note).
    fn checkpoints(&self) -> Result<Vec<(u64, String)>, Error>;
    /// Publishes a cosigned checkpoint of this log.
    fn publish_cosigned(&self, note: &str) -> Result<u64, Error>;
    /// Recomputes the whole log and checks every stored hash.
    fn verify(&self) -> Result<VerifyReport, Error>;
    /// What this process's turns have cost the backend so far.
    fn turn_stats(&self) -> TurnStats;
}

impl<S: Store> Ledger for Log<S> {
    fn origin(&self) -> &str {
        Log::origin(self)
    }
    fn verifier(&self) -> NoteVerifier {
        Log::verifier(self)
    }
    fn store(&self) -> &dyn StoreRead {
        Log::<S>::store(self)
    }
    fn body(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Log::body(self, key)
    }
    fn turn(&self, prepare: &mut Prepare<'_>) -> Result<Committed, Error> {
        Log::turn(self, prepare)
    }
    fn append_batch_with(
        &self,
        entries: &[Vec<u8>],
        with: WithEntries,
    ) -> Result<Committed, Error> {
        Log::append_batch_with(self, entries, with)
    }
    fn commit_writes(&self, batch: WriteBatch) -> Result<(), Error> {
        Log::commit_writes(self, batch)
    }
    fn size(&self) -> u64 {
        Log::size(self)
    }
    fn next_index(&self) -> u64 {
        Log::next_index(self)
    }
    fn stopped(&self) -> bool {
        Log::stopped(self)
    }
    fn disk_usage(&self) -> DiskUsage {
        Log::disk_usage(self)
    }
    fn integration_failure(&self) -> Option<String> {
        Log::integration_failure(self)
    }
    fn entry(&self, index: u64) -> Result<Vec<u8>, Error> {
        Log::entry(self, index)
    }
    fn leaf_hash(&self, index: u64) -> Result<Hash, Error> {
        Log::leaf_hash(self, index)
    }
    fn root_at(&self, size: u64) -> Result<Hash, Error> {
        Log::root_at(self, size)
    }
    fn inclusion(&self, index: u64, size: u64) -> Result<InclusionProof, Error> {
        Log::inclusion(self, index, size)
    }
    fn consistency(&self, old: u64, new: u64) -> Result<ConsistencyProof, Error> {
        Log::consistency(self, old, new)
    }
    fn read_public(&self, resource: &tlog::Resource) -> Result<Option<Vec<u8>>, Error> {
        Log::read_public(self, resource)
    }
    fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        Log::latest_checkpoint(self)
    }
    fn published_checkpoint(&self) -> Option<SignedCheckpoint> {
        Log::published_checkpoint(self)
    }
    fn checkpoint(&self) -> Result<SignedCheckpoint, Error> {
        Log::checkpoint(self)
    }
    fn set_checkpoint_every_commit(&self, on: bool) {
        Log::set_checkpoint_every_commit(self, on)
    }
    fn checkpoints(&self) -> Result<Vec<(u64, String)>, Error> {
        Log::checkpoints(self)
    }
    fn publish_cosigned(&self, note: &str) -> Result<u64, Error> {
        Log::publish_cosigned(self, note)
    }
    fn verify(&self) -> Result<VerifyReport, Error> {
        Log::verify(self)
    }
    fn turn_stats(&self) -> TurnStats {
        // One writer, no lock to wait for or hold across processes.
        TurnStats::default()
    }
}
