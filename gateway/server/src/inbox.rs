//! Store-and-forward delivery: each accepted envelope waits in its
//! recipient's inbox until the recipient acknowledges it.
//!
//! Inbox records are written in the same journal record as the envelope's
//! log entry (`Log::append_batch_with`), so after any crash an acknowledged
//! envelope is both logged and deliverable. Keys (all under `G`, beside the
//! log's `L` keys in the same store):
//!
//! | key | value |
//! |---|---|
//! | `Gi` recipient `0x00` log index (u64 BE) | the stored envelope without its JWS, JSON; its JWS is the body under the same key |
//! | `Gd` envelope digest (32 bytes) | recipient `0x00` log index |
//! | `Ge` log index (u64 BE) | (a body kept for good) a kept envelope's compact JWS |
//!
//! The JWS themselves are *bodies* (`WriteBatch::put_body`): the log keeps
//! them in body files, not in the store, and an acknowledgement drops them,
//! which returns their space once every envelope around them in their file
//! is acknowledged too. Ordering by log index makes "oldest first" a key
//! scan. The gateway keeps the envelopes its state is recomputed from
//! (asset and medical kinds, for `xgate audit replay`) under `Ge` for good;
//! their inbox records point there instead of holding a second copy of the
//! JWS, which for a medical response is a whole encrypted bundle. A
//! `record.send` is held as its inbox record's body only, and leaves the
//! gateway when it is acknowledged.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xgate_ledger::{Ledger, StoreError, StoreRead, WriteBatch};

use crate::envelope::Envelope;
use crate::registry::AgencyId;
use crate::store_keys::Prefix;

const ITEM_PREFIX: &[u8] = Prefix::InboxItem.bytes();
const ID_PREFIX: &[u8] = Prefix::InboxId.bytes();

/// An envelope waiting for its recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxRecord {
    /// The envelope id (hex SHA-256 of the JWS).
    pub id: String,
    /// Its entry's index in the log.
    pub log_index: u64,
    /// The sending agency.
    pub from: String,
    /// The envelope kind.
    pub kind: String,
    /// The compact JWS exactly as the sender signed it (never in the
    /// store: it is the body under the record's key, or kept under `Ge`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jws: String,
    /// Whether the JWS is kept under `Ge` rather than in this record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kept: bool,
    /// A contract's act (`kind` `contract.act`), not an envelope: it has
    /// no JWS, and its log entry, which its receipt carries, is the act.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub act: bool,
}

/// The key of the envelope kept for good that was logged at `index`.
pub fn kept_key(index: u64) -> Vec<u8> {
    Prefix::KeptEnvelope.at(index)
}

/// Adds the write that keeps `envelope`, logged at `index`, for good.
pub fn keep(envelope: &Envelope, index: u64, batch: &mut WriteBatch) {
    batch.put_kept(kept_key(index), envelope.compact.as_bytes().to_vec());
}

/// An inbox record that could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode an inbox record: {0}")]
pub struct EncodeRecordError(#[source] serde_json::Error);

/// Adds the writes that put `envelope`, logged at `index`, in its
/// recipient's inbox; `kept` says [`keep`] holds its JWS already.
///
/// # Errors
/// If the record cannot be encoded (it holds strings and integers only,
/// so a bug); nothing is added then.
pub fn put(
    envelope: &Envelope,
    index: u64,
    kept: bool,
    batch: &mut WriteBatch,
) -> Result<(), EncodeRecordError> {
    let stored = InboxRecord {
        id: envelope.id(),
        log_index: index,
        from: envelope.iss.to_string(),
        kind: envelope.kind.to_string(),
        jws: String::new(),
        kept,
        act: false,
    };
    let value = serde_json::to_vec(&stored).map_err(EncodeRecordError)?;
    let key = item_key(&envelope.aud, index);
    if !kept {
        batch.put_body(key.clone(), envelope.compact.as_bytes().to_vec());
    }
    batch.put(key, value);
    batch.put(id_key(&envelope.digest), locator(&envelope.aud, index));
    Ok(())
}

/// Adds the writes that put the act logged at `index` as `entry` in
/// `recipient`'s inbox, from `from` (the agency whose entry triggered it):
/// a notice, read and acknowledged like an envelope, whose id is the
/// SHA-256 of its entry.
///
/// # Errors
/// As [`put`].
pub fn notify(
    recipient: &AgencyId,
    from: &str,
    index: u64,
    entry: &[u8],
    batch: &mut WriteBatch,
) -> Result<(), EncodeRecordError> {
    let digest: [u8; 32] = Sha256::digest(entry).into();
    let stored = InboxRecord {
        id: hex::encode(digest),
        log_index: index,
        from: from.to_owned(),
        kind: crate::contracts::act::ACT_KIND.to_owned(),
        jws: String::new(),
        kept: false,
        act: true,
    };
    let value = serde_json::to_vec(&stored).map_err(EncodeRecordError)?;
    batch.put(item_key(recipient, index), value);
    batch.put(id_key(&digest), locator(recipient, index));
    Ok(())
}

/// A record of the layout before the journal that cannot be converted.
#[derive(Debug, thiserror::Error)]
#[error("a stored inbox record is malformed")]
pub struct ConvertError;

/// Converts one key of a data directory of the layout before the journal
/// (`xgate log migrate`): an inbox record's JWS, which it held itself,
/// becomes its body; a kept envelope becomes a body kept for good; every
/// other key is copied as it is.
///
/// # Errors
/// An inbox record that does not parse.
pub fn convert_v2(key: &[u8], value: &[u8], batch: &mut WriteBatch) -> Result<(), ConvertError> {
    if key.starts_with(ITEM_PREFIX) {
        let mut stored: InboxRecord = serde_json::from_slice(value).map_err(|_| ConvertError)?;
        let jws = std::mem::take(&mut stored.jws);
        if !stored.kept {
            batch.put_body(key.to_vec(), jws.into_bytes());
        }
        let value = serde_json::to_vec(&stored).map_err(|_| ConvertError)?;
        batch.put(key.to_vec(), value);
    } else if key.starts_with(Prefix::KeptEnvelope.bytes()) {
        batch.put_kept(key.to_vec(), value.to_vec());
    } else {
        batch.put(key.to_vec(), value.to_vec());
    }
    Ok(())
}

/// Up to `limit` of `recipient`'s envelopes logged after index `after`
/// (from the start if `None`), oldest first, with their JWS, and whether
/// more follow.
///
/// # Errors
/// A storage failure, or a stored record that does not parse or whose JWS
/// is missing.
pub fn list(
    log: &dyn Ledger,
    recipient: &AgencyId,
    after: Option<u64>,
    limit: usize,
) -> Result<(Vec<InboxRecord>, bool), xgate_ledger::Error> {
    let (mut items, more) = list_index(log.store(), recipient, after, limit)?;
    for item in items.iter_mut().filter(|i| !i.act) {
        let key = if item.kept {
            kept_key(item.log_index)
        } else {
            item_key(recipient, item.log_index)
        };
        let jws = log
            .body(&key)?
            .ok_or_else(|| corrupt("inbox record (its envelope is missing)"))?;
        item.jws = String::from_utf8(jws).map_err(|_| corrupt("stored envelope"))?;
    }
    Ok((items, more))
}

/// [`list`] without the JWS: the inbox index alone.
///
/// The scan starts at the first key after `after`, so a page costs the
/// same wherever it is in the inbox: earlier pages are not read again.
///
/// # Errors
/// A storage failure, or a stored record that does not parse.
pub fn list_index(
    store: &dyn StoreRead,
    recipient: &AgencyId,
    after: Option<u64>,
    limit: usize,
) -> Result<(Vec<InboxRecord>, bool), StoreError> {
    let prefix = recipient_prefix(recipient);
    let from = match after {
        None => prefix.clone(),
        Some(a) => match a.checked_add(1) {
            Some(next) => item_key(recipient, next),
            // Nothing is logged after the last possible index.
            None => return Ok((Vec::new(), false)),
        },
    };
    let mut items = Vec::new();
    for kv in store.scan_prefix_from(&prefix, &from) {
        let (key, value) = kv?;
        key_index(&key).ok_or_else(|| corrupt("inbox key"))?;
        if items.len() == limit {
            return Ok((items, true));
        }
        let stored: InboxRecord =
            serde_json::from_slice(value.as_ref()).map_err(|_| corrupt("inbox record"))?;
        items.push(stored);
    }
    Ok((items, false))
}

/// What [`ack`] did with each id it was given, in the order given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Acked {
    /// The ids removed from the inbox.
    pub acked: Vec<String>,
    /// The ids the recipient has no envelope under: never sent to it,
    /// acknowledged already (or earlier in the same list), or not an id at
    /// all. Callers cannot tell those apart, so ids do not leak.
    pub unknown: Vec<String>,
}

/// Removes the envelopes `ids` from `recipient`'s inbox, all in one
/// journal record, made durable before this returns.
///
/// # Errors
/// A storage failure; then each envelope may or may not still be there.
pub fn ack(
    log: &dyn Ledger,
    recipient: &AgencyId,
    ids: &[String],
) -> Result<Acked, xgate_ledger::Error> {
    let store = log.store();
    let prefix = recipient_prefix(recipient);
    let mut done = Acked::default();
    // Look-up and delete must not interleave with another ack of the same
    // envelope (here, or on another replica of a shared database), or both
    // would be told it was theirs to remove: both happen on the writer's
    // turn, which holds the log's lock until the deletions are durable.
    // Each id once (a repeat is unknown: acknowledged earlier in the list).
    let mut seen = std::collections::HashSet::new();
    let digests: Vec<Option<[u8; 32]>> = ids
        .iter()
        .map(|id| parse_id(id).filter(|digest| seen.insert(*digest)))
        .collect();
    let keys: Vec<Vec<u8>> = digests.iter().flatten().map(id_key).collect();
    log.commit_writes_with(&mut || {
        done = Acked::default();
        let mut batch = WriteBatch::new();
        // Every id in one read: the lock is held meanwhile.
        let mut values = store.get_many(&keys)?.into_iter();
        for (id, digest) in ids.iter().zip(&digests) {
            let found = digest.and_then(|digest| {
                let index = index_in(values.next().flatten()?, &prefix)?;
                Some((id_key(&digest), index))
            });
            match found {
                Some((id_key, index)) => {
                    let item = item_key(recipient, index);
                    batch.drop_body(item.clone());
                    batch.delete(item);
                    batch.delete(id_key);
                    done.acked.push(id.clone());
                }
                None => done.unknown.push(id.clone()),
            }
        }
        Ok(batch)
    })?;
    Ok(done)
}

/// The log index an id key's value (`locator`) names, if the envelope
/// waits in the inbox whose keys start with `prefix`.
fn index_in(found: Vec<u8>, prefix: &[u8]) -> Option<u64> {
    let rest = found.strip_prefix(&prefix[ITEM_PREFIX.len()..])?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

fn recipient_prefix(recipient: &AgencyId) -> Vec<u8> {
    let mut k = ITEM_PREFIX.to_vec();
    k.extend_from_slice(recipient.as_str().as_bytes());
    k.push(0);
    k
}

fn item_key(recipient: &AgencyId, index: u64) -> Vec<u8> {
    let mut k = recipient_prefix(recipient);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn locator(recipient: &AgencyId, index: u64) -> Vec<u8> {
    let mut v = recipient.as_str().as_bytes().to_vec();
    v.push(0);
    v.extend_from_slice(&index.to_be_bytes());
    v
}

fn id_key(digest: &[u8; 32]) -> Vec<u8> {
    let mut k = ID_PREFIX.to_vec();
    k.extend_from_slice(digest);
    k
}

fn key_index(key: &[u8]) -> Option<u64> {
    let tail = key.get(key.len().checked_sub(8)?..)?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

fn parse_id(id: &str) -> Option<[u8; 32]> {
    if id.len() != 64 || id.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(id).ok()?.try_into().ok()
}

fn corrupt(what: &str) -> StoreError {
    StoreError(format!("a stored {what} is malformed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use xgate_ledger::Store;
    use xgate_ledger::{Log, OpenOptions};

    /// Puts an inbox record for `recipient` at `index` under a made-up id.
    fn deliver(store: &impl Store, recipient: &AgencyId, index: u64) -> String {
        let digest = [index as u8; 32];
        let mut batch = WriteBatch::new();
        batch.put(item_key(recipient, index), b"{}".to_vec());
        batch.put(id_key(&digest), locator(recipient, index));
        store.apply(batch).expect("apply");
        hex::encode(digest)
    }

    /// A store that counts the keys its scans yield.
    struct Counting {
        inner: xgate_ledger::SledStore,
        visited: std::sync::atomic::AtomicUsize,
    }

    impl StoreRead for Counting {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key)
        }

        fn scan_prefix(
            &self,
            prefix: &[u8],
        ) -> Box<dyn Iterator<Item = Result<xgate_ledger::KeyValue<Vec<u8>>, StoreError>> + '_>
        {
            let count = |_: &_| {
                self.visited
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            };
            Box::new(self.inner.scan_prefix(prefix).inspect(count))
        }

        fn scan_prefix_from(
            &self,
            prefix: &[u8],
            from: &[u8],
        ) -> Box<dyn Iterator<Item = Result<xgate_ledger::KeyValue<Vec<u8>>, StoreError>> + '_>
        {
            let count = |_: &_| {
                self.visited
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            };
            Box::new(self.inner.scan_prefix_from(prefix, from).inspect(count))
        }

        fn last_with_prefix(
            &self,
            prefix: &[u8],
        ) -> Result<Option<xgate_ledger::KeyValue<Vec<u8>>>, StoreError> {
            self.inner.last_with_prefix(prefix)
        }
    }

    impl Store for Counting {
        fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
            self.inner.apply(batch)
        }

        fn sync(&self) -> Result<(), StoreError> {
            self.inner.sync()
        }
    }

    #[test]
    fn a_page_reads_from_its_cursor_not_from_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Counting {
            inner: xgate_ledger::SledStore::open(dir.path(), 1 << 20).expect("sled"),
            visited: Default::default(),
        };
        let treasury: AgencyId = "treasury".parse().expect("id");
        let gsa: AgencyId = "gsa".parse().expect("id");
        let mut batch = WriteBatch::new();
        for index in 0..1000 {
            let stored = InboxRecord {
                id: hex::encode([0; 32]),
                log_index: index,
                from: "state".into(),
                kind: "record.send".into(),
                jws: format!("jws-{index}"),
                kept: false,
                act: false,
            };
            let value = serde_json::to_vec(&stored).expect("json");
            // Every tenth is acknowledged already; gsa's inbox sorts before.
            if index % 10 != 5 {
                batch.put(item_key(&treasury, index), value.clone());
            }
            batch.put(item_key(&gsa, index), value);
        }
        store.apply(batch).expect("apply");
        let visited = || store.visited.swap(0, std::sync::atomic::Ordering::Relaxed);
        let indices = |items: &[InboxRecord]| items.iter().map(|i| i.log_index).collect::<Vec<_>>();

        let (first, more) = list_index(&store, &treasury, None, 3).expect("list");
        assert_eq!((indices(&first), more), (vec![0, 1, 2], true));
        assert_eq!(visited(), 4, "a page and the key that says more follow");
        // From an index near the end, and from one acknowledged already.
        let (page, more) = list_index(&store, &treasury, Some(990), 3).expect("list");
        assert_eq!((indices(&page), more), (vec![991, 992, 993], true));
        assert_eq!(visited(), 4, "the 990 keys before the cursor are not read");
        let (page, more) = list_index(&store, &treasury, Some(985), 100).expect("list");
        assert_eq!(
            indices(&page),
            [
                986, 987, 988, 989, 990, 991, 992, 993, 994, 996, 997, 998, 999
            ]
        );
        assert!(!more);
        assert_eq!(visited(), 13);
        for end in [999, 5000, u64::MAX] {
            assert_eq!(
                list_index(&store, &treasury, Some(end), 3).expect("list"),
                (vec![], false)
            );
        }
        assert_eq!(visited(), 0);
    }

    #[test]
    fn concurrent_lists_acknowledge_each_envelope_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
        let store = log.store();
        let treasury: AgencyId = "treasury".parse().expect("id");
        let ids: Vec<String> = (0..50).map(|i| deliver(store, &treasury, i)).collect();
        let log = &log;
        let results: Vec<Acked> = std::thread::scope(|s| {
            let acks: Vec<_> = (0..4)
                .map(|t| {
                    let mut mine = ids.clone();
                    mine.rotate_left(t * 12);
                    let treasury = &treasury;
                    s.spawn(move || ack(log, treasury, &mine).expect("ack"))
                })
                .collect();
            acks.into_iter()
                .map(|a| a.join().expect("thread"))
                .collect()
        });
        let mut acked: Vec<&String> = results.iter().flat_map(|r| &r.acked).collect();
        acked.sort();
        assert_eq!(
            acked,
            ids.iter().collect::<Vec<_>>(),
            "each id acked exactly once"
        );
        assert_eq!(results.iter().map(|r| r.unknown.len()).sum::<usize>(), 150);
        assert_eq!(store.scan_prefix(ITEM_PREFIX).count(), 0);
        assert_eq!(store.scan_prefix(ID_PREFIX).count(), 0);
    }

    #[test]
    fn only_the_recipient_acknowledges_and_a_non_id_is_unknown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
        let store = log.store();
        let treasury: AgencyId = "treasury".parse().expect("id");
        let gsa: AgencyId = "gsa".parse().expect("id");
        let theirs = deliver(store, &treasury, 7);
        let upper = theirs.to_ascii_uppercase();
        let asked = [theirs.clone(), upper, "7".to_owned(), String::new()];
        let by_gsa = ack(&log, &gsa, &asked).expect("ack");
        assert!(by_gsa.acked.is_empty());
        assert_eq!(by_gsa.unknown, asked);
        let by_treasury = ack(&log, &treasury, &asked).expect("ack");
        assert_eq!(by_treasury.acked, [theirs]);
        assert_eq!(by_treasury.unknown, asked[1..]);
    }
}
