//! The storage contract under the log: an ordered key-value map with atomic
//! batches and an explicit durability barrier.
//!
//! The log has exactly one write path, [`Store::apply`], and acknowledges
//! nothing until [`Store::sync`] has returned. A backend is one more file
//! beside `store_sled`.

use std::collections::BTreeMap;

/// A storage failure. The message is for operators; it never holds entry data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("storage failure: {0}")]
pub struct StoreError(pub String);

/// A set of writes applied all together or not at all. When a key is written
/// twice in one batch, the last write wins.
///
/// Besides small values, a batch committed with an append can carry
/// *bodies*: larger values the log keeps in its body files rather than in
/// the store, under a key of the caller's choosing ([`WriteBatch::put_body`],
/// [`WriteBatch::put_kept`]), read back with `Log::body`. A body put with
/// `put_body` is dropped with [`WriteBatch::drop_body`], which returns its
/// space once every body around it in its file is dropped too.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    ops: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    bodies: BTreeMap<Vec<u8>, BodyWrite>,
}

/// A write of a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyWrite {
    /// Keep `body` until it is dropped.
    Put(Vec<u8>),
    /// Keep `body` for good.
    Keep(Vec<u8>),
    /// Drop the body put under this key.
    Drop,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.insert(key, Some(value));
    }

    /// Removes `key` (a no-op if it does not exist).
    pub fn delete(&mut self, key: Vec<u8>) {
        self.ops.insert(key, None);
    }

    /// The value this batch will give `key`: `Some(None)` for a deletion,
    /// `None` if the batch does not touch `key`.
    pub fn pending(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.ops.get(key).map(|v| v.as_deref())
    }

    /// The writes to keys starting with `prefix`, in key order: `None` for a
    /// deletion.
    pub fn pending_with_prefix<'a>(
        &'a self,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        self.ops
            .range::<[u8], _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    /// Keeps `body` under `key` in the log's body files until a later batch
    /// drops it ([`WriteBatch::drop_body`]): for values that live a while
    /// and then go, such as envelopes waiting in an inbox.
    pub fn put_body(&mut self, key: Vec<u8>, body: Vec<u8>) {
        self.bodies.insert(key, BodyWrite::Put(body));
    }

    /// Keeps `body` under `key` in the log's body files for good.
    pub fn put_kept(&mut self, key: Vec<u8>, body: Vec<u8>) {
        self.bodies.insert(key, BodyWrite::Keep(body));
    }

    /// Drops the body [`WriteBatch::put_body`] put under `key` (a no-op if
    /// there is none).
    pub fn drop_body(&mut self, key: Vec<u8>) {
        self.bodies.insert(key, BodyWrite::Drop);
    }

    /// The body writes, in key order.
    pub fn bodies(&self) -> impl Iterator<Item = (&[u8], &BodyWrite)> {
        self.bodies.iter().map(|(k, w)| (k.as_slice(), w))
    }

    /// Takes the body writes out of the batch, leaving its small writes.
    pub fn take_bodies(&mut self) -> BTreeMap<Vec<u8>, BodyWrite> {
        std::mem::take(&mut self.bodies)
    }

    /// Adds every write of `other`, which win over this batch's own writes
    /// to the same keys.
    pub fn extend(&mut self, other: WriteBatch) {
        self.ops.extend(other.ops);
        self.bodies.extend(other.bodies);
    }

    /// Whether any write in the batch (a body included) is to a key
    /// starting with `prefix`.
    pub fn touches_prefix(&self, prefix: &[u8]) -> bool {
        self.ops
            .keys()
            .chain(self.bodies.keys())
            .any(|k| k.starts_with(prefix))
    }

    /// Whether the batch holds no writes.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.bodies.is_empty()
    }

    /// The number of small writes (bodies not counted).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// The writes, in key order.
    pub fn into_ops(self) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> {
        self.ops.into_iter()
    }
}

/// A key and value read from a scan.
pub type KeyValue<V> = (Vec<u8>, V);

/// The reading half of a store, as any backend serves it: what the log's
/// owner reads its keys through ([`crate::Ledger::store`]), whatever holds
/// them. Values are owned bytes so that a trait object can return them.
pub trait StoreRead: Send + Sync {
    /// Reads one key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Reads several keys, each answer in the place of its key: on a
    /// store across a network, in one round trip.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    /// Every key starting with `prefix`, in ascending key order.
    fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> Box<dyn Iterator<Item = Result<KeyValue<Vec<u8>>, StoreError>> + '_>;

    /// Every key starting with `prefix` and not less than `from`, in
    /// ascending key order: how a reader resumes a scan.
    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        from: &[u8],
    ) -> Box<dyn Iterator<Item = Result<KeyValue<Vec<u8>>, StoreError>> + '_> {
        let from = from.to_vec();
        Box::new(
            self.scan_prefix(prefix)
                .filter(move |kv| kv.as_ref().map_or(true, |(k, _)| *k >= from)),
        )
    }

    /// The greatest key starting with `prefix`, if any.
    fn last_with_prefix(&self, prefix: &[u8]) -> Result<Option<KeyValue<Vec<u8>>>, StoreError>;
}

/// An ordered key-value store with atomic batches and a durability barrier.
///
/// Durability promise: every batch for which [`Store::apply`] returned `Ok`
/// before a call to [`Store::sync`] began survives any crash once that `sync`
/// has returned `Ok`. A crash at any other time leaves a prefix of the applied
/// batches, each batch whole or absent, never part of one.
pub trait Store: StoreRead + 'static {
    /// Applies `batch` atomically. Visible to reads at once; durable only
    /// after the next [`Store::sync`].
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// Makes every batch applied before this call durable.
    fn sync(&self) -> Result<(), StoreError>;
}
