//! Where the asset state lives in the store, and how it is read while an
//! envelope is applied.
//!
//! Every key is under `G` (beside the log's `L` keys), with the parts after
//! a two-byte prefix separated by NUL, which no tag, agency id, location or
//! person contains (their alphabets exclude control characters):
//!
//! | key | value | what |
//! |---|---|---|
//! | `Ga` tag | [`Asset`] JSON | current state |
//! | `Gv` tag `0` index (u64 BE) | [`Event`] JSON | the custody chain |
//! | `Gh` agency `0` tag | empty | the agency holds or has held it |
//! | `Gl` agency `0` location `0` tag | empty | where its holder keeps it |
//! | `Go` agency `0` tag | empty | an offer to the agency was made (it may have lapsed since) |
//! | `Gq` tag | [`Discrepancy`] list, JSON | its open discrepancies |
//! | `Gc` index (u64 BE) | [`Report`] JSON | a reconciliation report |
//! | `Gn` index (u64 BE) seq (u32 BE) | [`Notice`] JSON | discrepancy feed |
//! | `Ge` index (u64 BE) | the compact JWS | envelopes to replay ([`crate::inbox::kept_key`]) |
//! | `Gk` | 32 random bytes | salt of person hashes |
//!
//! The first eight are the state that `xgate audit replay` recomputes from
//! the log and the stored envelopes ([`STATE_PREFIXES`]).

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use xgate_ledger::{Store, StoreError, WriteBatch};

use super::custody::{Asset, Event};
use super::reconcile::{Discrepancy, Notice, Report};
use crate::registry::AgencyId;

/// Key prefixes of the recomputable asset state.
pub const STATE_PREFIXES: [&[u8]; 8] = [b"Ga", b"Gv", b"Gh", b"Gl", b"Go", b"Gq", b"Gc", b"Gn"];

const ASSET: &[u8] = b"Ga";
const EVENT: &[u8] = b"Gv";
const HELD: &[u8] = b"Gh";
const LOCATED: &[u8] = b"Gl";
const OFFERED: &[u8] = b"Go";
const OPEN: &[u8] = b"Gq";
const REPORT: &[u8] = b"Gc";
const NOTICE: &[u8] = b"Gn";
const SALT: &[u8] = b"Gk";

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

impl StateRead for crate::committer::View<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        crate::committer::View::get(self, key)
    }

    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        crate::committer::View::keys(self, prefix)
    }
}

/// The state of a [`Store`] as it is: what queries read.
pub struct Stored<'a, S: Store>(pub &'a S);

impl<S: Store> StateRead for Stored<'_, S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(key)?.map(|v| v.as_ref().to_vec()))
    }

    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.0
            .scan_prefix(prefix)
            .map(|kv| kv.map(|(k, _)| k))
            .collect()
    }
}

pub(crate) fn key(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p);
    }
    k
}

pub(crate) fn index_key(prefix: &[u8], index: u64) -> Vec<u8> {
    key(prefix, &[&index.to_be_bytes()])
}

/// The record of `tag`.
pub fn asset_key(tag: &str) -> Vec<u8> {
    key(ASSET, &[tag.as_bytes()])
}

/// The chain of `tag`: every key of its events starts with this.
pub fn events_prefix(tag: &str) -> Vec<u8> {
    key(EVENT, &[tag.as_bytes(), b""])
}

/// The key of an event of `tag` at `index`.
pub fn event_key(tag: &str, index: u64) -> Vec<u8> {
    key(EVENT, &[tag.as_bytes(), &index.to_be_bytes()])
}

/// The assets `agency` holds or has held: every key starts with this.
pub fn held_prefix(agency: &AgencyId) -> Vec<u8> {
    key(HELD, &[agency.as_str().as_bytes(), b""])
}

/// `agency` holds or has held `tag`.
pub fn held_key(agency: &AgencyId, tag: &str) -> Vec<u8> {
    key(HELD, &[agency.as_str().as_bytes(), tag.as_bytes()])
}

/// The assets offered to `agency`: every key starts with this.
pub fn offered_prefix(agency: &AgencyId) -> Vec<u8> {
    key(OFFERED, &[agency.as_str().as_bytes(), b""])
}

/// `tag` was offered to `agency` (the offer may have lapsed since).
pub fn offered_key(agency: &AgencyId, tag: &str) -> Vec<u8> {
    key(OFFERED, &[agency.as_str().as_bytes(), tag.as_bytes()])
}

/// The assets `agency` keeps at `location`: every key starts with this.
pub fn located_prefix(agency: &AgencyId, location: &str) -> Vec<u8> {
    key(
        LOCATED,
        &[agency.as_str().as_bytes(), location.as_bytes(), b""],
    )
}

/// `agency` keeps `tag` at `location`.
pub fn located_key(agency: &AgencyId, location: &str, tag: &str) -> Vec<u8> {
    key(
        LOCATED,
        &[
            agency.as_str().as_bytes(),
            location.as_bytes(),
            tag.as_bytes(),
        ],
    )
}

/// The open discrepancies of `tag`.
pub fn open_key(tag: &str) -> Vec<u8> {
    key(OPEN, &[tag.as_bytes()])
}

/// The report of the inventory report logged at `index`.
pub fn report_key(index: u64) -> Vec<u8> {
    index_key(REPORT, index)
}

/// Every notice key starts with this.
pub const NOTICE_PREFIX: &[u8] = NOTICE;

/// The `seq`th notice of the envelope logged at `index`.
pub fn notice_key(index: u64, seq: u32) -> Vec<u8> {
    let mut k = index_key(NOTICE, index);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The last part of a key: a tag, after the last NUL.
pub fn last_part(key: &[u8]) -> Option<String> {
    let start = key.iter().rposition(|b| *b == 0).map_or(2, |i| i + 1);
    String::from_utf8(key.get(start..)?.to_vec()).ok()
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
pub fn write<T: Serialize>(batch: &mut WriteBatch, key: Vec<u8>, value: &T) {
    // The state types hold strings, integers and lists: cannot fail.
    batch.put(key, serde_json::to_vec(value).unwrap_or_default());
}

/// An asset's record.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn asset(state: &impl StateRead, tag: &str) -> Result<Option<Asset>, StoreError> {
    read(state, &asset_key(tag))
}

/// An asset's custody chain, oldest first.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn chain<S: Store>(store: &S, tag: &str) -> Result<Vec<Event>, StoreError> {
    store
        .scan_prefix(&events_prefix(tag))
        .map(|kv| {
            let (k, v) = kv?;
            serde_json::from_slice(v.as_ref()).map_err(|_| corrupt(&k))
        })
        .collect()
}

/// The open discrepancies of `tag`.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn open_discrepancies(
    state: &impl StateRead,
    tag: &str,
) -> Result<Vec<Discrepancy>, StoreError> {
    Ok(read(state, &open_key(tag))?.unwrap_or_default())
}

/// A reconciliation report.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn report<S: Store>(store: &S, index: u64) -> Result<Option<Report>, StoreError> {
    read(&Stored(store), &report_key(index))
}

/// Up to `limit` notices after the one at `after` (from the start of the
/// entry at `from_index` if `after` is `None`).
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn notices_after<S: Store>(
    store: &S,
    after: Option<(u64, u32)>,
    from_index: u64,
    limit: usize,
) -> Result<Vec<Notice>, StoreError> {
    let from = match after {
        Some((index, seq)) => match seq.checked_add(1) {
            Some(next) => notice_key(index, next),
            None => notice_key(index.saturating_add(1), 0),
        },
        None => notice_key(from_index, 0),
    };
    store
        .scan_prefix_from(NOTICE_PREFIX, &from)
        .take(limit)
        .map(|kv| {
            let (k, v) = kv?;
            serde_json::from_slice(v.as_ref()).map_err(|_| corrupt(&k))
        })
        .collect()
}

/// The salt of person hashes, created on first use. Written and synced
/// before any entry uses it.
///
/// # Errors
/// A storage failure, or no randomness.
pub fn salt<S: Store>(store: &S) -> Result<[u8; 32], StoreError> {
    if let Some(v) = store.get(SALT)? {
        return v
            .as_ref()
            .try_into()
            .map_err(|_| StoreError("the person-hash salt is corrupt".into()));
    }
    let mut salt = [0u8; 32];
    getrandom::fill(&mut salt).map_err(|e| StoreError(format!("no randomness: {e}")))?;
    let mut batch = WriteBatch::new();
    batch.put(SALT.to_vec(), salt.to_vec());
    store.apply(batch)?;
    store.sync()?;
    Ok(salt)
}

/// The salt, if the gateway ever made one (for replay, which never writes).
///
/// # Errors
/// A storage failure or a corrupt salt.
pub fn existing_salt<S: Store>(store: &S) -> Result<Option<[u8; 32]>, StoreError> {
    store
        .get(SALT)?
        .map(|v| {
            v.as_ref()
                .try_into()
                .map_err(|_| StoreError("the person-hash salt is corrupt".into()))
        })
        .transpose()
}

/// What the log holds for a person: lowercase hex SHA-256 of the gateway's
/// salt followed by the identifier. Without the salt, which never leaves
/// the data directory, the hash cannot be matched to a guess.
pub fn person_hash(salt: &[u8; 32], person: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(person.as_bytes());
    hex::encode(h.finalize())
}

pub(crate) fn corrupt(key: &[u8]) -> StoreError {
    StoreError(format!(
        "corrupt asset state record under {}",
        String::from_utf8_lossy(key.get(..2).unwrap_or(key))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_their_parts_and_prefixes_are_exact() {
        let a: AgencyId = "gsa".parse().expect("id");
        assert!(event_key("T1", 2) < event_key("T1", 10));
        assert!(event_key("T1", u64::MAX) < event_key("T10", 0));
        assert!(event_key("T1", 5).starts_with(&events_prefix("T1")));
        assert!(!event_key("T10", 5).starts_with(&events_prefix("T1")));
        assert!(located_key(&a, "HQ", "T1").starts_with(&located_prefix(&a, "HQ")));
        assert!(!located_key(&a, "HQ-2", "T1").starts_with(&located_prefix(&a, "HQ")));
        assert_eq!(
            last_part(&located_key(&a, "HQ", "T-9")).as_deref(),
            Some("T-9")
        );
        assert_eq!(last_part(&asset_key("T-9")).as_deref(), Some("T-9"));
        assert!(notice_key(1, u32::MAX) < notice_key(2, 0));
    }

    #[test]
    fn person_hashes_depend_on_the_salt() {
        let h1 = person_hash(&[1; 32], "p-1");
        assert_eq!(h1.len(), 64);
        assert_ne!(h1, person_hash(&[2; 32], "p-1"));
        assert_ne!(h1, person_hash(&[1; 32], "p-2"));
        assert!(!h1.contains("p-1"));
    }
}
