//! The replay store: each sender's `jti`s, kept until the envelope's `exp`
//! plus the clock skew, after which the envelope would be refused as
//! expired anyway.
//!
//! Seen ids are written in the same atomic batch as the envelope's log
//! entry, so a refused envelope leaves no trace and an accepted one cannot
//! be accepted twice, even across a crash. Two copies of one envelope in
//! flight at once are kept apart by an in-memory reservation taken before
//! the append and released after it. Keys (under `G`):
//!
//! | key | value |
//! |---|---|
//! | `Gr` sender `0x00` jti | keep-until, seconds (u64 BE) |
//! | `Gx` keep-until (u64 BE) sender `0x00` jti | empty: the expiry index |

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use xgate_ledger::{Store, StoreError, WriteBatch};

use crate::registry::AgencyId;

const SEEN_PREFIX: &[u8] = b"Gr";
const EXPIRY_PREFIX: &[u8] = b"Gx";

/// Replay protection: the durable store plus ids in flight.
#[derive(Debug, Default)]
pub struct Replay {
    in_flight: Arc<Mutex<HashSet<Vec<u8>>>>,
}

/// A `jti` held for one append; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    key: Vec<u8>,
    in_flight: Arc<Mutex<HashSet<Vec<u8>>>>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        lock(&self.in_flight).remove(&self.key);
    }
}

impl Replay {
    /// Reserves `sender`'s `jti`: `Ok(None)` if it was seen before or is in
    /// flight now.
    ///
    /// # Errors
    /// A storage failure reading the store.
    pub fn reserve<S: Store>(
        &self,
        store: &S,
        sender: &AgencyId,
        jti: &str,
    ) -> Result<Option<Reservation>, StoreError> {
        let key = seen_key(sender, jti);
        if !lock(&self.in_flight).insert(key.clone()) {
            return Ok(None);
        }
        let reservation = Reservation {
            key,
            in_flight: Arc::clone(&self.in_flight),
        };
        if store.get(&reservation.key)?.is_some() {
            return Ok(None);
        }
        Ok(Some(reservation))
    }

    /// Removes every id whose keep-until is before `now`; returns how many.
    ///
    /// # Errors
    /// A storage failure.
    pub fn purge<S: Store>(&self, store: &S, now: u64) -> Result<usize, StoreError> {
        let mut batch = WriteBatch::new();
        let mut purged = 0;
        for kv in store.scan_prefix(EXPIRY_PREFIX) {
            let (key, _) = kv?;
            let rest = &key[EXPIRY_PREFIX.len()..];
            let Some((until, id)) = rest.split_first_chunk::<8>() else {
                continue;
            };
            if u64::from_be_bytes(*until) >= now {
                break;
            }
            let mut seen = SEEN_PREFIX.to_vec();
            seen.extend_from_slice(id);
            batch.delete(seen);
            batch.delete(key.clone());
            purged += 1;
        }
        if purged > 0 {
            store.apply(batch)?;
            store.sync()?;
        }
        Ok(purged)
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xgate_ledger::{Log, OpenOptions};

    #[test]
    fn ids_are_refused_until_purged_after_their_keep_until() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
        let store = log.store();
        let replay = Replay::default();
        let state: AgencyId = "state".parse().expect("id");
        let gsa: AgencyId = "gsa".parse().expect("id");

        let held = replay
            .reserve(store, &state, "j1")
            .expect("read")
            .expect("free");
        assert!(
            replay.reserve(store, &state, "j1").expect("read").is_none(),
            "in flight"
        );
        assert!(
            replay.reserve(store, &gsa, "j1").expect("read").is_some(),
            "per sender"
        );
        let mut batch = WriteBatch::new();
        put(&state, "j1", 100, &mut batch);
        put(&state, "j2", 300, &mut batch);
        store.apply(batch).expect("apply");
        drop(held);
        assert!(
            replay.reserve(store, &state, "j1").expect("read").is_none(),
            "stored"
        );

        assert_eq!(replay.purge(store, 200).expect("purge"), 1);
        assert!(
            replay.reserve(store, &state, "j1").expect("read").is_some(),
            "purged"
        );
        assert!(
            replay.reserve(store, &state, "j2").expect("read").is_none(),
            "kept"
        );
    }
}
