//! The replay store: each sender's `jti`s, kept until the envelope's `exp`
//! plus the clock skew, after which the envelope would be refused as
//! expired anyway.
//!
//! Seen ids are written in the same atomic batch as the envelope's log
//! entry, so a refused envelope leaves no trace and an accepted one cannot
//! be accepted twice, even across a crash. The check runs in the committer,
//! in log order, against the store plus the batch being built, so two
//! copies of one envelope in flight at once are told apart there. Keys
//! (under `G`):
//!
//! | key | value |
//! |---|---|
//! | `Gr` sender `0x00` jti | keep-until, seconds (u64 BE) |
//! | `Gx` keep-until (u64 BE) sender `0x00` jti | empty: the expiry index |

use xgate_ledger::{Store, StoreError, WriteBatch};

use crate::committer::View;
use crate::registry::AgencyId;

const SEEN_PREFIX: &[u8] = b"Gr";
const EXPIRY_PREFIX: &[u8] = b"Gx";

/// Whether `sender` already used `jti`, as of `view`.
///
/// # Errors
/// A storage failure.
pub fn seen(view: &View<'_>, sender: &AgencyId, jti: &str) -> Result<bool, StoreError> {
    Ok(view.get(&seen_key(sender, jti))?.is_some())
}

/// Most ids removed in one batch. A purge after a burst can find hundreds
/// of thousands expired at once; one batch of them all took gigabytes of
/// memory and held sled's write lock (so every commit) for seconds.
const PURGE_CHUNK: usize = 2048;

/// Removes every id whose keep-until is before `now`, in batches of at
/// most [`PURGE_CHUNK`]; returns how many.
///
/// It does not flush: the committer's next flush makes the removals
/// durable, and ids a crash brings back are expired and purged again.
///
/// # Errors
/// A storage failure.
pub fn purge<S: Store>(store: &S, now: u64) -> Result<usize, StoreError> {
    let mut purged = 0;
    loop {
        let mut batch = WriteBatch::new();
        let mut chunk = 0;
        for kv in store.scan_prefix(EXPIRY_PREFIX) {
            let (key, _) = kv?;
            let rest = &key[EXPIRY_PREFIX.len()..];
            let Some((until, id)) = rest.split_first_chunk::<8>() else {
                continue;
            };
            if u64::from_be_bytes(*until) >= now || chunk == PURGE_CHUNK {
                break;
            }
            let mut seen = SEEN_PREFIX.to_vec();
            seen.extend_from_slice(id);
            batch.delete(seen);
            batch.delete(key);
            chunk += 1;
        }
        if chunk == 0 {
            return Ok(purged);
        }
        store.apply(batch)?;
        purged += chunk;
        if chunk < PURGE_CHUNK {
            return Ok(purged);
        }
        // Let the committer's batches in between.
        std::thread::yield_now();
    }
}

/// Adds the writes that record `sender`'s `jti` until `keep_until`.
pub fn put(sender: &AgencyId, jti: &str, keep_until: u64, batch: &mut WriteBatch) {
    batch.put(seen_key(sender, jti), keep_until.to_be_bytes().to_vec());
    let mut expiry = EXPIRY_PREFIX.to_vec();
    expiry.extend_from_slice(&keep_until.to_be_bytes());
    expiry.extend_from_slice(&id_bytes(sender, jti));
    batch.put(expiry, Vec::new());
}

fn seen_key(sender: &AgencyId, jti: &str) -> Vec<u8> {
    let mut k = SEEN_PREFIX.to_vec();
    k.extend_from_slice(&id_bytes(sender, jti));
    k
}

fn id_bytes(sender: &AgencyId, jti: &str) -> Vec<u8> {
    let mut k = sender.as_str().as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(jti.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use xgate_ledger::{Log, OpenOptions};

    #[test]
    fn ids_are_kept_until_purged_after_their_keep_until() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
        let store = log.store();
        let state: AgencyId = "state".parse().expect("id");
        let mut batch = WriteBatch::new();
        put(&state, "j1", 100, &mut batch);
        put(&state, "j2", 300, &mut batch);
        store.apply(batch).expect("apply");
        let present = |jti: &str| store.get(&seen_key(&state, jti)).expect("read").is_some();
        assert!(present("j1") && present("j2"));
        assert_eq!(purge(store, 200).expect("purge"), 1);
        assert!(!present("j1"), "purged");
        assert!(present("j2"), "kept");
        assert_eq!(purge(store, 200).expect("purge"), 0);
    }

    #[test]
    fn a_purge_larger_than_a_chunk_removes_every_expired_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
        let store = log.store();
        let state: AgencyId = "state".parse().expect("id");
        let expired = PURGE_CHUNK * 2 + 7;
        let mut batch = WriteBatch::new();
        for i in 0..expired {
            put(&state, &format!("old-{i}"), 100, &mut batch);
        }
        put(&state, "live", 300, &mut batch);
        store.apply(batch).expect("apply");
        assert_eq!(purge(store, 200).expect("purge"), expired);
        assert_eq!(
            store.scan_prefix(SEEN_PREFIX).count(),
            1,
            "only the live id"
        );
        assert_eq!(store.scan_prefix(EXPIRY_PREFIX).count(), 1);
        assert!(
            store
                .get(&seen_key(&state, "live"))
                .expect("read")
                .is_some()
        );
    }
}
