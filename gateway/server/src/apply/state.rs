//! The state as an envelope being applied reads it, and how its records
//! are read and written: JSON values under the keys of
//! [`crate::store_keys`].
//!
//! The same rules run against three readers: the committer's view of the
//! store as the batch being built leaves it, the store as it is (what
//! queries read, [`Stored`]), and the state `xgate audit replay` rebuilds
//! from nothing ([`Memory`]).

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use xgate_ledger::{StoreError, StoreRead, WriteBatch};

use crate::store_keys::Prefix;

/// Reads of the state as an envelope being applied finds it.
pub trait StateRead {
    /// One key's value.
    ///
    /// # Errors
    /// A storage failure.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every key starting with `prefix`, in order.
    ///
    /// # Errors
    /// A storage failure.
    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError>;
}

/// The state of a [`Store`] as it is: what queries read.
pub struct Stored<'a>(pub &'a dyn StoreRead);

impl StateRead for Stored<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key)
    }

    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.0
            .scan_prefix(prefix)
            .map(|kv| kv.map(|(k, _)| k))
            .collect()
    }
}

/// A state as `top`, a batch not yet written, leaves `base`: what a step
/// reads after the steps before it in the same commit (the committer's
/// view of its batch, a contract's act after its trigger).
pub struct Over<'a, S: ?Sized> {
    /// The state under the batch.
    pub base: &'a S,
    /// The writes over it.
    pub top: &'a WriteBatch,
}

impl<S: StateRead + ?Sized> StateRead for Over<'_, S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.top.pending(key) {
            Some(value) => Ok(value.map(<[u8]>::to_vec)),
            None => self.base.get(key),
        }
    }

    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut keys: std::collections::BTreeSet<Vec<u8>> =
            self.base.keys(prefix)?.into_iter().collect();
        for (key, value) in self.top.pending_with_prefix(prefix) {
            match value {
                Some(_) => keys.insert(key.to_vec()),
                None => keys.remove(key),
            };
        }
        Ok(keys.into_iter().collect())
    }
}

/// State held in memory, key by key: what `xgate audit replay` recomputes
/// (and the rules' unit tests fold into).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory(pub BTreeMap<Vec<u8>, Vec<u8>>);

impl StateRead for Memory {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(key).cloned())
    }

    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self.under(prefix).map(|(k, _)| k.clone()).collect())
    }
}

impl Memory {
    /// Applies `batch` as the store would.
    pub fn apply(&mut self, batch: WriteBatch) {
        for (k, v) in batch.into_ops() {
            match v {
                Some(v) => self.0.insert(k, v),
                None => self.0.remove(&k),
            };
        }
    }

    /// Every key and value under `prefix`, in key order.
    pub fn under<'a>(
        &'a self,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)> + 'a {
        self.0
            .range(prefix.to_vec()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
    }
}

/// A state record that could not be encoded as JSON. The records hold
/// strings, integers and lists, so this is a bug; it is reported, never
/// written as an empty value.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode a {what}: {source}")]
pub struct EncodeError {
    /// What the record is ([`Prefix::what`]).
    pub what: &'static str,
    /// Why.
    #[source]
    pub source: serde_json::Error,
}

/// The state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A storage failure or a corrupt record.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Reads and parses a JSON record.
///
/// # Errors
/// A storage failure, or a record that does not parse (a corrupt store).
pub fn read<T: DeserializeOwned>(
    state: &impl StateRead,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    state
        .get(key)?
        .map(|v| serde_json::from_slice(&v).map_err(|_| corrupt(key)))
        .transpose()
}

/// Adds a JSON record to `batch`.
///
/// # Errors
/// If `value` cannot be encoded; nothing is added then.
pub fn write<T: Serialize>(
    batch: &mut WriteBatch,
    key: Vec<u8>,
    value: &T,
) -> Result<(), EncodeError> {
    let bytes = serde_json::to_vec(value).map_err(|source| EncodeError {
        what: Prefix::of(&key).map_or("state record", Prefix::what),
        source,
    })?;
    batch.put(key, bytes);
    Ok(())
}

/// The error for a stored record under `key` that is not what it should
/// be. It names the kind of record, never its key's parts or value.
pub fn corrupt(key: &[u8]) -> StoreError {
    let what = Prefix::of(key).map_or("state record", Prefix::what);
    StoreError(format!("a stored {what} is corrupt"))
}
