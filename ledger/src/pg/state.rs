//! [`PgStore`]: the owner's small state in `xgate_state`, read by point
//! lookups and key ranges with keyset paging, and written only in batches
//! that take the log's lock and record their keys in the change feed.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio_postgres::Row;

use super::batch::{self, Want, Writes};
use super::db::{Db, Fail, pg, prepare};
use super::sql;
use crate::error::Error;
use crate::store::{KeyValue, Store, StoreError, StoreRead, WriteBatch};

/// Keys read per page of a scan.
const PAGE: i64 = 256;

/// The small state of a log in PostgreSQL: [`StoreRead`] over the pool,
/// from any replica. A handle: clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    db: Arc<Db>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    pub(super) fn new(db: Arc<Db>) -> PgStore {
        PgStore { db }
    }

    /// The rows `sql` returns for `params` (owned, for the runtime).
    fn rows(
        &self,
        what: &'static str,
        sql: &'static str,
        params: Params,
    ) -> Result<Vec<Row>, StoreError> {
        self.db
            .read(move |client| {
                let params = params.clone();
                async move {
                    let s = prepare(&client, &[sql]).await?;
                    let refs = params.refs();
                    client.query(&s[0], &refs).await.map_err(pg(what))
                }
            })
            .map_err(store_error)
    }

    /// A page of keys from `from` (inclusive), below `end` if any.
    fn page(
        &self,
        from: Vec<u8>,
        end: Option<Vec<u8>>,
    ) -> Result<Vec<KeyValue<Vec<u8>>>, StoreError> {
        let rows = match end {
            Some(end) => self.rows(
                "scan state",
                sql::STATE_PAGE,
                Params::Page(from, Some(end), PAGE),
            )?,
            None => self.rows(
                "scan state",
                sql::STATE_PAGE_OPEN,
                Params::Page(from, None, PAGE),
            )?,
        };
        rows.iter().map(key_value).collect()
    }
}

/// Statement parameters, owned so that a read can be retried.
#[derive(Clone)]
enum Params {
    Key(Vec<u8>),
    Keys(Vec<Vec<u8>>),
    Page(Vec<u8>, Option<Vec<u8>>, i64),
    Range(Vec<u8>, Option<Vec<u8>>),
}

impl Params {
    fn refs(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        match self {
            Params::Key(k) => vec![k],
            Params::Keys(keys) => vec![keys],
            Params::Page(from, Some(end), n) => vec![from, end, n],
            Params::Page(from, None, n) => vec![from, n],
            Params::Range(from, Some(end)) => vec![from, end],
            Params::Range(from, None) => vec![from],
        }
    }
}

fn key_value(row: &Row) -> Result<KeyValue<Vec<u8>>, StoreError> {
    let key: Vec<u8> = row
        .try_get(0)
        .map_err(|e| store_error(pg("read state")(e).into()))?;
    let value: Vec<u8> = row
        .try_get(1)
        .map_err(|e| store_error(pg("read state")(e).into()))?;
    Ok((key, value))
}

fn store_error(e: Error) -> StoreError {
    match e {
        Error::Store(e) => e,
        other => StoreError(other.to_string()),
    }
}

/// The first key past every key starting with `prefix`, if there is one
/// (none for an empty prefix or one of `0xff` bytes only).
pub(super) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A scan, one page at a time.
struct Scan<'a> {
    store: &'a PgStore,
    next: Option<Vec<u8>>,
    end: Option<Vec<u8>>,
    page: VecDeque<KeyValue<Vec<u8>>>,
}

impl Iterator for Scan<'_> {
    type Item = Result<KeyValue<Vec<u8>>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() {
            let from = self.next.take()?;
            match self.store.page(from, self.end.clone()) {
                Ok(page) => {
                    if page.len() as i64 == PAGE
                        && let Some((last, _)) = page.last()
                    {
                        // The next page starts just past the last key.
                        let mut next = last.clone();
                        next.push(0);
                        self.next = Some(next);
                    }
                    self.page = page.into();
                }
                Err(e) => return Some(Err(e)),
            }
        }
        self.page.pop_front().map(Ok)
    }
}

impl StoreRead for PgStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.rows("read state", sql::STATE_GET, Params::Key(key.to_vec()))?;
        rows.first()
            .map(|row| {
                row.try_get(0)
                    .map_err(|e| store_error(pg("read state")(e).into()))
            })
            .transpose()
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.rows(
            "read state",
            sql::STATE_GET_MANY,
            Params::Keys(keys.to_vec()),
        )?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in rows {
            let read = |i| -> Result<Vec<u8>, StoreError> {
                row.try_get(i)
                    .map_err(|e| store_error(pg("read state")(e).into()))
            };
            found.insert(read(0)?, read(1)?);
        }
        Ok(keys.iter().map(|key| found.get(key).cloned()).collect())
    }

    fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> Box<dyn Iterator<Item = Result<KeyValue<Vec<u8>>, StoreError>> + '_> {
        self.scan_prefix_from(prefix, prefix)
    }

    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        from: &[u8],
    ) -> Box<dyn Iterator<Item = Result<KeyValue<Vec<u8>>, StoreError>> + '_> {
        let start = if from > prefix { from } else { prefix };
        Box::new(Scan {
            store: self,
            next: Some(start.to_vec()),
            end: prefix_end(prefix),
            page: VecDeque::new(),
        })
    }

    fn last_with_prefix(&self, prefix: &[u8]) -> Result<Option<KeyValue<Vec<u8>>>, StoreError> {
        let end = prefix_end(prefix);
        let sql = if end.is_some() {
            sql::STATE_LAST
        } else {
            sql::STATE_LAST_OPEN
        };
        let rows = self.rows("read state", sql, Params::Range(prefix.to_vec(), end))?;
        rows.first().map(key_value).transpose()
    }
}

impl Store for PgStore {
    /// Commits `batch` (small writes and bodies) in a batch of its own,
    /// under the log's lock, with its keys in the change feed: durable when
    /// this returns. Keys starting with `L` are refused.
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let pool = self.db.pool();
        self.db
            .run(async move {
                let locked = batch::lock(&pool, Want::default()).await?;
                let mut writes = Writes::at(&locked.tree);
                writes.small(batch).map_err(Fail::Log)?;
                batch::commit(locked, &writes).await?;
                Ok(())
            })
            .map_err(store_error)
    }

    /// Nothing to do: every batch is durable once applied.
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_are_the_first_key_past_the_prefix() {
        assert_eq!(prefix_end(b"Ga"), Some(b"Gb".to_vec()));
        assert_eq!(prefix_end(&[0x47, 0xff]), Some(vec![0x48]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }
}
