//! Store-and-forward delivery: each accepted envelope waits in its
//! recipient's inbox until the recipient acknowledges it.
//!
//! Inbox records are written in the same atomic batch as the envelope's log
//! entry (`Log::append_batch_with`), so after any crash an acknowledged
//! envelope is both logged and deliverable. Keys (all under `G`, beside the
//! log's `L` keys in the same store):
//!
//! | key | value |
//! |---|---|
//! | `Gi` recipient `0x00` log index (u64 BE) | the stored envelope, JSON |
//! | `Gd` envelope digest (32 bytes) | recipient `0x00` log index |
//! | `Ge` log index (u64 BE) | a kept envelope's compact JWS |
//!
//! Ordering by log index makes "oldest first" a key scan. The gateway keeps
//! the envelopes its state is recomputed from (asset and medical kinds,
//! for `xgate audit replay`) under `Ge` for good; their inbox records point
//! there instead of holding a second copy of the JWS, which for a medical
//! response is a whole encrypted bundle. A `record.send` is held in its
//! inbox record only, and leaves the gateway when it is acknowledged.

use serde::{Deserialize, Serialize};
use xgate_ledger::{Store, StoreError, WriteBatch};

use crate::envelope::Envelope;
use crate::registry::AgencyId;

const ITEM_PREFIX: &[u8] = b"Gi";
const ID_PREFIX: &[u8] = b"Gd";
const KEPT_PREFIX: &[u8] = b"Ge";

/// An envelope waiting for its recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The envelope id (hex SHA-256 of the JWS).
    pub id: String,
    /// Its entry's index in the log.
    pub log_index: u64,
    /// The sending agency.
    pub from: String,
    /// The envelope kind.
    pub kind: String,
    /// The compact JWS exactly as the sender signed it (empty in the store
    /// when `kept`).
    pub jws: String,
    /// Whether the JWS is kept under `Ge` rather than in this record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kept: bool,
}

/// The key of the envelope kept for good that was logged at `index`.
pub fn kept_key(index: u64) -> Vec<u8> {
    let mut k = KEPT_PREFIX.to_vec();
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// Adds the write that keeps `envelope`, logged at `index`, for good.
pub fn keep(envelope: &Envelope, index: u64, batch: &mut WriteBatch) {
    batch.put(kept_key(index), envelope.compact.as_bytes().to_vec());
}

/// Adds the writes that put `envelope`, logged at `index`, in its
/// recipient's inbox; `kept` says [`keep`] holds its JWS already.
pub fn put(envelope: &Envelope, index: u64, kept: bool, batch: &mut WriteBatch) {
    let stored = Stored {
        id: envelope.id(),
        log_index: index,
        from: envelope.iss.to_string(),
        kind: envelope.kind.to_string(),
        jws: if kept {
            String::new()
        } else {
            envelope.compact.clone()
        },
        kept,
    };
    // Strings and integers only: serialization cannot fail.
    let value = serde_json::to_vec(&stored).unwrap_or_default();
    batch.put(item_key(&envelope.aud, index), value);
    batch.put(id_key(&envelope.digest), locator(&envelope.aud, index));
}

/// Up to `limit` of `recipient`'s envelopes logged after index `after`
/// (from the start if `None`), oldest first, and whether more follow.
///
/// # Errors
/// A storage failure, or a stored record that does not parse.
pub fn list<S: Store>(
    store: &S,
    recipient: &AgencyId,
    after: Option<u64>,
    limit: usize,
) -> Result<(Vec<Stored>, bool), StoreError> {
    let prefix = recipient_prefix(recipient);
    let mut items = Vec::new();
    for kv in store.scan_prefix(&prefix) {
        let (key, value) = kv?;
        let index = key_index(&key).ok_or_else(|| corrupt("inbox key"))?;
        if after.is_some_and(|a| index <= a) {
            continue;
        }
        if items.len() == limit {
            return Ok((items, true));
        }
        let mut stored: Stored =
            serde_json::from_slice(value.as_ref()).map_err(|_| corrupt("inbox record"))?;
        if stored.kept {
            let jws = store
                .get(&kept_key(index))?
                .ok_or_else(|| corrupt("inbox record (its kept envelope is missing)"))?;
            stored.jws =
                String::from_utf8(jws.as_ref().to_vec()).map_err(|_| corrupt("kept envelope"))?;
        }
        items.push(stored);
    }
    Ok((items, false))
}

/// Removes envelope `id` from `recipient`'s inbox, durably. Returns `false`
/// if `recipient` has no such envelope, whether it never existed, was
/// acknowledged already or belongs to someone else: callers cannot tell
/// those apart, so ids do not leak.
///
/// # Errors
/// A storage failure; then the envelope may or may not still be there.
pub fn ack<S: Store>(store: &S, recipient: &AgencyId, id: &str) -> Result<bool, StoreError> {
    let Some(digest) = parse_id(id) else {
        return Ok(false);
    };
    // Look-up and delete must not interleave with another ack of the same
    // envelope, or both would be told it was theirs to remove.
    static ACKS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = ACKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let id_key = id_key(&digest);
    let Some(found) = store.get(&id_key)? else {
        return Ok(false);
    };
    let prefix = recipient_prefix(recipient);
    let Some(index) = found
        .as_ref()
        .strip_prefix(&prefix[ITEM_PREFIX.len()..])
        .and_then(|rest| Some(u64::from_be_bytes(rest.try_into().ok()?)))
    else {
        return Ok(false);
    };
    let mut batch = WriteBatch::new();
    batch.delete(item_key(recipient, index));
    batch.delete(id_key);
    store.apply(batch)?;
    store.sync()?;
    Ok(true)
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
