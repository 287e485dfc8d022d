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
use crate::layout::{BODY_PREFIX, KEPT_PREFIX, body_key};
use crate::log::Log;
use crate::log::append::{Committed, WithEntries};
use crate::log::audit::VerifyReport;
use crate::log::read::DiskUsage;
use crate::proof::{ConsistencyProof, InclusionProof};
use crate::store::{Store, StoreRead, WriteBatch};
use crate::tlog;
use crate::turn::{Decide, Prepare, TurnStats};

/// How a body was committed: what [`Ledger::bodies`] says of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// With [`WriteBatch::put_body`]: kept until dropped.
    Put,
    /// With [`WriteBatch::put_kept`]: kept for good.
    Kept,
}

/// A body as [`Ledger::bodies`] yields it: its key, how it was committed,
/// and its bytes.
pub type StoredBody = (Vec<u8>, BodyKind, Vec<u8>);

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
    /// Every body still there, each once, in an order of the backend's
    /// choosing, read one at a time: for copying a log whole
    /// ([`transfer`](crate::transfer())).
    fn bodies(&self) -> Box<dyn Iterator<Item = Result<StoredBody, Error>> + '_>;

    /// Takes the writer's turn and commits what `prepare` decides from
    /// where the log stands ([`crate::turn`]).
    fn turn(&self, prepare: &mut Prepare<'_>) -> Result<Committed, Error>;
    /// Appends `entries` with the writes `with` makes for their indices.
    fn append_batch_with(&self, entries: &[Vec<u8>], with: WithEntries)
    -> Result<Committed, Error>;
    /// Commits `batch` alone, durably.
    fn commit_writes(&self, batch: WriteBatch) -> Result<(), Error>;
    /// Commits what `decide` returns, alone, durably, deciding it under the
    /// writer's lock (on a shared database, the lock every replica's
    /// writes take): nothing commits between its reads and the commit, so
    /// two processes can never both remove one thing. Nothing is written
    /// if it returns no write.
    fn commit_writes_with(&self, decide: &mut Decide<'_>) -> Result<(), Error>;

    /// The number of durable entries.
    fn size(&self) -> u64;
    /// The number of durable entries, read again from the store if fewer
    /// than `wanted` are known here: on a shared database another process
    /// may have appended since this one last looked, and an index it handed
    /// out must be provable from here at once. Afterwards
    /// [`Ledger::latest_checkpoint`] is at least as new as what was read.
    ///
    /// # Errors
    /// The store failing as it is read.
    fn size_at_least(&self, wanted: u64) -> Result<u64, Error>;
    /// The newest checkpoint, read as far as one that covers entry `index`
    /// ([`Ledger::size_at_least`]): what a receipt for `index` is built on.
    /// `None` if the log has signed none.
    ///
    /// # Errors
    /// The store failing as it is read.
    fn checkpoint_covering(&self, index: u64) -> Result<Option<SignedCheckpoint>, Error> {
        self.size_at_least(index.saturating_add(1))?;
        Ok(self.latest_checkpoint())
    }
    /// The index the next append will get (a hint with several writers).
    fn next_index(&self) -> u64;
    /// Whether the log takes no more commits until it is reopened.
    fn stopped(&self) -> bool;
    /// Whether other processes append to this log too (a shared database):
    /// then what this one knows of its size grows without it committing.
    fn shared(&self) -> bool;
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
    /// Found through the store's locator keys (`Lb` and `LB`, see
    /// `layout`) and read with [`Log::body`].
    fn bodies(&self) -> Box<dyn Iterator<Item = Result<StoredBody, Error>> + '_> {
        let store = Log::<S>::store(self);
        let put = store
            .scan_prefix(BODY_PREFIX)
            .map(move |kv| self.located(kv, BODY_PREFIX.len(), BodyKind::Put));
        let kept = store
            .scan_prefix(KEPT_PREFIX)
            .map(move |kv| self.located(kv, KEPT_PREFIX.len(), BodyKind::Kept));
        Box::new(put.chain(kept))
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
    fn commit_writes_with(&self, decide: &mut Decide<'_>) -> Result<(), Error> {
        Log::commit_writes_with(self, decide)
    }
    fn size(&self) -> u64 {
        Log::size(self)
    }
    /// This process is the only writer: what it knows is all there is.
    fn size_at_least(&self, _wanted: u64) -> Result<u64, Error> {
        Ok(Log::size(self))
    }
    fn next_index(&self) -> u64 {
        Log::next_index(self)
    }
    fn stopped(&self) -> bool {
        Log::stopped(self)
    }
    /// The data directory is locked to one process.
    fn shared(&self) -> bool {
        false
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

impl<S: Store> Log<S> {
    /// The body whose locator key a scan found (`prefix` bytes, then the
    /// owner's key).
    fn located(
        &self,
        kv: Result<crate::store::KeyValue<Vec<u8>>, crate::store::StoreError>,
        prefix: usize,
        kind: BodyKind,
    ) -> Result<StoredBody, Error> {
        let (locator, _) = kv?;
        let key = locator.get(prefix..).unwrap_or_default().to_vec();
        // `Log::body` reads the body put under a key before the one kept
        // under it: a kept body whose key also has a put one cannot be
        // told apart here. The gateway never uses one key for both.
        if kind == BodyKind::Kept && Log::<S>::store(self).get(&body_key(&key))?.is_some() {
            return Err(Error::Corrupt(
                "a key holds both a body and a kept body; they cannot be copied apart".into(),
            ));
        }
        let body = Log::body(self, &key)?
            .ok_or_else(|| Error::Corrupt("a body locator names no body".into()))?;
        Ok((key, kind, body))
    }
}
