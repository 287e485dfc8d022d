//! [`Store`] on sled: one sled tree, batches as `sled::Batch`, `sync` as
//! `Db::flush`.
//!
//! sled writes each batch to its log with a seal that recovery honours, so a
//! crash leaves every batch whole or absent, and recovery keeps a prefix of
//! the batches in the order they were applied: the contract `Store` states.

use std::path::Path;

use crate::store::{KeyValue, Store, StoreError, StoreRead, WriteBatch};

/// A log store in a sled database.
#[derive(Clone, Debug)]
pub struct SledStore {
    db: sled::Db,
}

impl SledStore {
    /// Opens (creating if needed) the sled database at `path`, with a page
    /// cache of `cache_bytes`.
    ///
    /// # Errors
    /// [`StoreError`] if sled cannot open the database (missing permissions,
    /// corruption, or another process holding it).
    pub fn open(path: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            // The log flushes when it acknowledges; a timer flush adds nothing.
            .flush_every_ms(None)
            .open()
            .map_err(to_store_error)?;
        Ok(SledStore { db })
    }
}

fn to_store_error(e: sled::Error) -> StoreError {
    StoreError(e.to_string())
}

impl StoreRead for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(to_store_error)
    }

    fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> Box<dyn Iterator<Item = Result<KeyValue<Vec<u8>>, StoreError>> + '_> {
        Box::new(
            self.db
                .scan_prefix(prefix)
                .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(to_store_error)),
        )
    }

    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        from: &[u8],
    ) -> Box<dyn Iterator<Item = Result<KeyValue<Vec<u8>>, StoreError>> + '_> {
        let prefix = prefix.to_vec();
        let start = if from > prefix.as_slice() {
            from.to_vec()
        } else {
            prefix.clone()
        };
        Box::new(
            self.db
                .range(start..)
                .take_while(move |r| r.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
                .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(to_store_error)),
        )
    }

    fn last_with_prefix(&self, prefix: &[u8]) -> Result<Option<KeyValue<Vec<u8>>>, StoreError> {
        match self.db.scan_prefix(prefix).next_back() {
            Some(Ok((k, v))) => Ok(Some((k.to_vec(), v.to_vec()))),
            Some(Err(e)) => Err(to_store_error(e)),
            None => Ok(None),
        }
    }

}

impl Store for SledStore {
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch.into_ops() {
            match value {
                Some(v) => sled_batch.insert(key, v),
                None => sled_batch.remove(key),
            }
        }
        self.db.apply_batch(sled_batch).map_err(to_store_error)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(to_store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_resume_from_a_key_and_stay_in_their_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(&dir.path().join("db"), 1 << 20).expect("open");
        let mut batch = WriteBatch::new();
        for k in [&b"Ga"[..], b"Gb1", b"Gb2", b"Gb3", b"Gc"] {
            batch.put(k.to_vec(), vec![1]);
        }
        store.apply(batch.clone()).expect("apply");
        let keys = |from: &[u8]| -> Vec<Vec<u8>> {
            store
                .scan_prefix_from(b"Gb", from)
                .map(|kv| kv.expect("read").0)
                .collect()
        };
        assert_eq!(keys(b"Gb2"), [b"Gb2".to_vec(), b"Gb3".to_vec()]);
        assert_eq!(keys(b"Gb21"), [b"Gb3".to_vec()]);
        // A start before the prefix starts at the prefix.
        assert_eq!(keys(b"A").len(), 3);
        assert!(keys(b"Gc").is_empty());
        // The pending writes of a batch, by prefix.
        let pending: Vec<&[u8]> = batch.pending_with_prefix(b"Gb").map(|(k, _)| k).collect();
        assert_eq!(pending, [&b"Gb1"[..], b"Gb2", b"Gb3"]);
    }
}
