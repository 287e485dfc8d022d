//! [`Ledger`] for [`PgLog`]: the gateway holds either backend as an
//! `Arc<dyn Ledger>`.

use super::PgLog;
use crate::checkpoint::{NoteVerifier, SignedCheckpoint};
use crate::error::Error;
use crate::hash::Hash;
use crate::proof::{ConsistencyProof, InclusionProof};
use crate::store::{StoreRead, WriteBatch};
use crate::tlog;
use crate::turn::{Prepare, TurnStats};
use crate::{Committed, DiskUsage, Ledger, VerifyReport, WithEntries};

impl Ledger for PgLog {
    fn origin(&self) -> &str {
        PgLog::origin(self)
    }
    fn verifier(&self) -> NoteVerifier {
        PgLog::verifier(self)
    }
    fn store(&self) -> &dyn StoreRead {
        PgLog::store(self)
    }
    fn body(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        PgLog::body(self, key)
    }
    fn turn(&self, prepare: &mut Prepare<'_>) -> Result<Committed, Error> {
        PgLog::turn(self, prepare)
    }
    fn append_batch_with(
        &self,
        entries: &[Vec<u8>],
        with: WithEntries,
    ) -> Result<Committed, Error> {
        PgLog::append_batch_with(self, entries, with)
    }
    fn commit_writes(&self, batch: WriteBatch) -> Result<(), Error> {
        PgLog::commit_writes(self, batch)
    }
    fn size(&self) -> u64 {
        PgLog::size(self)
    }
    fn next_index(&self) -> u64 {
        PgLog::next_index(self)
    }
    /// Never: a database that is away makes calls fail, and they succeed
    /// again when it is back.
    fn stopped(&self) -> bool {
        false
    }
    /// Nothing is kept on this machine's disk.
    fn disk_usage(&self) -> DiskUsage {
        DiskUsage::default()
    }
    /// None: tiles are written in each batch's transaction.
    fn integration_failure(&self) -> Option<String> {
        None
    }
    fn entry(&self, index: u64) -> Result<Vec<u8>, Error> {
        PgLog::entry(self, index)
    }
    fn leaf_hash(&self, index: u64) -> Result<Hash, Error> {
        PgLog::leaf_hash(self, index)
    }
    fn root_at(&self, size: u64) -> Result<Hash, Error> {
        PgLog::root_at(self, size)
    }
    fn inclusion(&self, index: u64, size: u64) -> Result<InclusionProof, Error> {
        PgLog::inclusion(self, index, size)
    }
    fn consistency(&self, old: u64, new: u64) -> Result<ConsistencyProof, Error> {
        PgLog::consistency(self, old, new)
    }
    fn read_public(&self, resource: &tlog::Resource) -> Result<Option<Vec<u8>>, Error> {
        PgLog::read_public(self, resource)
    }
    fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        PgLog::latest_checkpoint(self)
    }
    fn published_checkpoint(&self) -> Option<SignedCheckpoint> {
        PgLog::published_checkpoint(self)
    }
    fn checkpoint(&self) -> Result<SignedCheckpoint, Error> {
        PgLog::checkpoint(self)
    }
    fn set_checkpoint_every_commit(&self, on: bool) {
        PgLog::set_checkpoint_every_commit(self, on)
    }
    fn checkpoints(&self) -> Result<Vec<(u64, String)>, Error> {
        PgLog::checkpoints(self)
    }
    fn publish_cosigned(&self, note: &str) -> Result<u64, Error> {
        PgLog::publish_cosigned(self, note)
    }
    fn verify(&self) -> Result<VerifyReport, Error> {
        PgLog::verify(self)
    }
    fn turn_stats(&self) -> TurnStats {
        PgLog::stats(self)
    }
}
