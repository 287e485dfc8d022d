//! [`Ledger`] for [`PgLog`]: the gateway holds either backend as an
//! `Arc<dyn Ledger>`; and what only offline tools need: opening a log
//! that must already exist ([`PgLog::open_existing`]) and reading every
//! body ([`Ledger::bodies`]) to copy a log whole.

use std::collections::VecDeque;
use std::path::Path;

use super::PgLog;
use super::db::{Db, pg, prepare};
use crate::backend::{BodyKind, StoredBody};
use crate::checkpoint::{NoteVerifier, SignedCheckpoint};
use crate::disk::{KEY_FILE, OpenOptions};
use crate::error::Error;
use crate::hash::Hash;
use crate::proof::{ConsistencyProof, InclusionProof};
use crate::store::{StoreRead, WriteBatch};
use crate::tlog;
use crate::turn::{Decide, Prepare, TurnStats};
use crate::{Committed, DiskUsage, Ledger, VerifyReport, WithEntries};

/// Whether the schema exists, and then whether it holds a log: read only.
const HOLDS_LOG: &str = "SELECT to_regclass('xgate_tree') IS NOT NULL";
const TREE_ROWS: &str = "SELECT count(*) FROM xgate_tree";
/// Bodies in primary-key order, a page at a time (keyset paging on the
/// key's index: no page sorts the table).
const BODIES_FIRST: &str = "SELECT key, kept, data FROM xgate_bodies ORDER BY key, kept LIMIT $1";
const BODIES_AFTER: &str = "SELECT key, kept, data FROM xgate_bodies \
                            WHERE (key, kept) > ($1::bytea, $2::boolean) \
                            ORDER BY key, kept LIMIT $3";
/// Bodies per page: envelopes, so a page stays a few MiB.
const BODIES_PAGE: i64 = 32;

impl PgLog {
    /// Opens the log the database at `url` already holds, with the signing
    /// key in `data_dir`, as an offline tool reading it must: it never
    /// creates a key or a log. Otherwise as [`PgLog::open`] (which also
    /// brings an older schema up to date, as any replica starting would).
    ///
    /// # Errors
    /// [`Error::NotALog`] if `data_dir` has no `checkpoint.key`,
    /// [`Error::Invalid`] if the database holds no log (an empty database,
    /// or one only `xgate db migrate` has touched), and as
    /// [`PgLog::open`].
    pub fn open_existing(
        url: &str,
        data_dir: &Path,
        options: &OpenOptions,
    ) -> Result<PgLog, Error> {
        let not_a_log = |reason: &str| Error::NotALog {
            path: data_dir.to_path_buf(),
            reason: reason.to_owned(),
        };
        if !data_dir.is_dir() {
            return Err(not_a_log("no such directory"));
        }
        if !data_dir.join(KEY_FILE).is_file() {
            return Err(not_a_log("no checkpoint.key"));
        }
        let db = Db::connect(url)?;
        if !holds_log(&db)? {
            return Err(Error::Invalid(
                "the database holds no xgate log (it is empty: a gateway on it, or \
                 `xgate log migrate --into` it, creates one)"
                    .into(),
            ));
        }
        drop(db);
        PgLog::open(url, data_dir, options)
    }

    /// A page of bodies after `after` (key and kind), in key order.
    fn bodies_page(&self, after: Option<(Vec<u8>, bool)>) -> Result<Vec<StoredBody>, Error> {
        self.db.read(move |client| {
            let after = after.clone();
            async move {
                let rows = match &after {
                    None => {
                        let s = prepare(&client, &[BODIES_FIRST]).await?;
                        client.query(&s[0], &[&BODIES_PAGE]).await
                    }
                    Some((key, kept)) => {
                        let s = prepare(&client, &[BODIES_AFTER]).await?;
                        client.query(&s[0], &[key, kept, &BODIES_PAGE]).await
                    }
                }
                .map_err(pg("read bodies"))?;
                rows.iter()
                    .map(|row| {
                        let key: Vec<u8> = row.try_get(0).map_err(pg("read bodies"))?;
                        let kept: bool = row.try_get(1).map_err(pg("read bodies"))?;
                        let data: Vec<u8> = row.try_get(2).map_err(pg("read bodies"))?;
                        let kind = if kept { BodyKind::Kept } else { BodyKind::Put };
                        Ok((key, kind, data))
                    })
                    .collect()
            }
        })
    }
}

/// Whether the database holds a log, changing nothing (no schema is
/// created).
fn holds_log(db: &Db) -> Result<bool, Error> {
    db.read(|client| async move {
        let schema: bool = client
            .query_one(HOLDS_LOG, &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(pg("read the log"))?;
        if !schema {
            return Ok(false);
        }
        let rows: i64 = client
            .query_one(TREE_ROWS, &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(pg("read the log"))?;
        Ok(rows > 0)
    })
}

/// [`Ledger::bodies`] of a [`PgLog`]: one page in memory at a time.
struct Bodies<'a> {
    log: &'a PgLog,
    /// Where the next page starts; `None` once the last page is read.
    after: Option<Option<(Vec<u8>, bool)>>,
    page: VecDeque<StoredBody>,
}

impl Iterator for Bodies<'_> {
    type Item = Result<StoredBody, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() {
            let after = self.after.take()?;
            match self.log.bodies_page(after) {
                Ok(page) => {
                    if page.len() as i64 == BODIES_PAGE
                        && let Some((key, kind, _)) = page.last()
                    {
                        self.after = Some(Some((key.clone(), *kind == BodyKind::Kept)));
                    }
                    self.page = page.into();
                }
                Err(e) => return Some(Err(e)),
            }
        }
        self.page.pop_front().map(Ok)
    }
}

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
    /// From `xgate_bodies`, in key order (for one key, the put body
    /// first), a page at a time.
    fn bodies(&self) -> Box<dyn Iterator<Item = Result<StoredBody, Error>> + '_> {
        Box::new(Bodies {
            log: self,
            after: Some(None),
            page: VecDeque::new(),
        })
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
    fn commit_writes_with(&self, decide: &mut Decide<'_>) -> Result<(), Error> {
        PgLog::commit_writes_with(self, decide)
    }
    fn size(&self) -> u64 {
        PgLog::size(self)
    }
    fn size_at_least(&self, wanted: u64) -> Result<u64, Error> {
        PgLog::size_at_least(self, wanted)
    }
    fn next_index(&self) -> u64 {
        PgLog::next_index(self)
    }
    /// Never: a database that is away makes calls fail, and they succeed
    /// again when it is back.
    fn stopped(&self) -> bool {
        false
    }
    /// Any number of replicas append to one database.
    fn shared(&self) -> bool {
        true
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
