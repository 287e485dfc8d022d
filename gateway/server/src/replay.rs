//! The replay store: each sender's `jti`s, kept until the envelope's `exp`
//! plus the clock skew plus the request timeout
//! ([`crate::pipeline::replay_keep_until`]): after the first two the
//! envelope is refused as expired on arrival, and after the third it can
//! no longer be waiting in the commit queue either (where its expiry is
//! checked again).
//!
//! The store holds one key per id, written in the same atomic batch as the
//! envelope's log entry, so a refused envelope leaves no trace and an
//! accepted one cannot be accepted twice, even across a crash:
//!
//! | key | value |
//! |---|---|
//! | `Gx` keep-until (u64 BE) sender `0x00` jti | empty |
//!
//! Keys sort by expiry, so new ids land in the last few sled leaves and a
//! purge removes whole leaves from the front. The question "did this
//! sender use this jti" is answered from memory: [`Replay`] holds a 64-bit
//! digest of every id in the store, loaded at open. An index in the store
//! keyed by id instead (as earlier versions kept under `Gr`) put each id in
//! a random sled leaf: a read and a leaf rewrite per envelope in the commit
//! thread, and about half of the gateway's memory growth under load
//! (docs/reliability.md, "Soak").
//!
//! Only the commit thread checks and records ids, in log order, so two
//! copies of one envelope in flight at once are told apart there: the
//! first records its id before the second is checked.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use sha2::{Digest, Sha256};
use xgate_ledger::{Ledger, StoreError, StoreRead, WriteBatch};

use crate::registry::AgencyId;
use crate::store_keys::Prefix;

const EXPIRY_PREFIX: &[u8] = Prefix::ReplayId.bytes();
/// Where earlier versions kept a second copy of each id; dropped at open.
const LEGACY_PREFIX: &[u8] = Prefix::LegacyReplayId.bytes();

/// Most keys removed in one batch. A purge after a burst can find hundreds
/// of thousands expired at once; one batch of them all took gigabytes of
/// memory and held sled's write lock (so every commit) for seconds.
const PURGE_CHUNK: usize = 2048;

/// A sender's id, as the replay set knows it: the first 64 bits of
/// SHA-256(sender `0x00` jti). With a million ids in the window, a new id
/// meets one of them by chance with probability 5 * 10^-14; a collision can
/// only refuse an envelope, never admit one twice, and nobody can aim one
/// at another agency's ids, which are not known before they are sent.
type IdDigest = u64;

/// The ids in the store, by digest, with their keep-until times (seconds,
/// which fit 32 bits until 2106; later ones are kept as `u32::MAX`). 17
/// bytes a slot: a million ids take about 18 MB.
#[derive(Debug)]
pub struct Replay {
    ids: Mutex<HashMap<IdDigest, u32>>,
}

impl Replay {
    /// Loads every id in `store`, first dropping the index earlier
    /// versions kept under `Gr`.
    ///
    /// # Errors
    /// A storage failure.
    pub fn load(log: &dyn Ledger) -> Result<Replay, StoreError> {
        while delete_chunk(log, LEGACY_PREFIX, |_| true)? == PURGE_CHUNK {}
        Ok(Replay {
            ids: Mutex::new(read_ids(log.store())?),
        })
    }

    /// Reads the ids again from `store`, after a commit that failed and may
    /// or may not have left its ids there.
    ///
    /// # Errors
    /// A storage failure; the ids in memory are then left as they were.
    pub fn reload(&self, store: &dyn StoreRead) -> Result<(), StoreError> {
        let ids = read_ids(store)?;
        *self.lock() = ids;
        Ok(())
    }

    /// Whether `sender` used `jti` in an envelope committed, or accepted
    /// earlier in the batch being built.
    pub fn seen(&self, sender: &AgencyId, jti: &str) -> bool {
        self.lock().contains_key(&digest(&id_bytes(sender, jti)))
    }

    /// Records `sender`'s `jti` until `keep_until`: in memory now, and in
    /// the store with `batch`. The commit thread calls this once the
    /// envelope is accepted, and [`reload`](Self::reload)s if the batch
    /// then fails.
    pub fn put(&self, sender: &AgencyId, jti: &str, keep_until: u64, batch: &mut WriteBatch) {
        let id = id_bytes(sender, jti);
        self.lock().insert(digest(&id), seconds(keep_until));
        batch.put(expiry_key(keep_until, &id), Vec::new());
    }

    /// Records an id another process committed (its `Gx` key, from a
    /// turn's [`xgate_ledger::turn::Changes`]); any other key is ignored.
    pub fn note_written(&self, key: &[u8]) {
        if let Some((until, id)) = parse_expiry_key(key) {
            self.lock().insert(digest(id), seconds(until));
        }
    }

    /// How many ids are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Removes every id whose keep-until is before `now`, from memory and
    /// from `store` (in batches of at most [`PURGE_CHUNK`]); returns how
    /// many the store held.
    ///
    /// Each chunk is committed through the log ([`Ledger::commit_writes`]),
    /// durable when it returns; ids a crash brings back before that are
    /// expired and purged again.
    ///
    /// # Errors
    /// A storage failure.
    pub fn purge(&self, log: &dyn Ledger, now: u64) -> Result<usize, StoreError> {
        self.lock().retain(|_, until| u64::from(*until) >= now);
        let expired = |key: &[u8]| parse_expiry_key(key).is_some_and(|(until, _)| until < now);
        let mut purged = 0;
        loop {
            let chunk = delete_chunk(log, EXPIRY_PREFIX, expired)?;
            purged += chunk;
            if chunk < PURGE_CHUNK {
                return Ok(purged);
            }
            // Let the committer's batches in between.
            std::thread::yield_now();
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IdDigest, u32>> {
        // The map is consistent after any panic (each change is one
        // insert, retain or replace), so a poisoned lock is still usable.
        self.ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Deletes the first keys under `prefix` (in key order) while `take` says
/// so, at most [`PURGE_CHUNK`]; returns how many.
fn delete_chunk(
    log: &dyn Ledger,
    prefix: &[u8],
    take: impl Fn(&[u8]) -> bool,
) -> Result<usize, StoreError> {
    let mut batch = WriteBatch::new();
    let mut chunk = 0;
    for kv in log.store().scan_prefix(prefix) {
        let (key, _) = kv?;
        if chunk == PURGE_CHUNK || !take(&key) {
            break;
        }
        batch.delete(key);
        chunk += 1;
    }
    if chunk > 0 {
        // Through the log, like every write: on a shared database the
        // other replicas see the deletions in their next turn's changes.
        log.commit_writes(batch)
            .map_err(|e| StoreError(e.to_string()))?;
    }
    Ok(chunk)
}

fn read_ids(store: &dyn StoreRead) -> Result<HashMap<IdDigest, u32>, StoreError> {
    let mut ids = HashMap::new();
    for kv in store.scan_prefix(EXPIRY_PREFIX) {
        let (key, _) = kv?;
        if let Some((until, id)) = parse_expiry_key(&key) {
            ids.insert(digest(id), seconds(until));
        }
    }
    Ok(ids)
}

fn expiry_key(keep_until: u64, id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(EXPIRY_PREFIX.len() + 8 + id.len());
    k.extend_from_slice(EXPIRY_PREFIX);
    k.extend_from_slice(&keep_until.to_be_bytes());
    k.extend_from_slice(id);
    k
}

/// The keep-until time and the id of an expiry key.
fn parse_expiry_key(key: &[u8]) -> Option<(u64, &[u8])> {
    let rest = key.strip_prefix(EXPIRY_PREFIX)?;
    let (until, id) = rest.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*until), id))
}

fn id_bytes(sender: &AgencyId, jti: &str) -> Vec<u8> {
    let mut k = sender.as_str().as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(jti.as_bytes());
    k
}

fn digest(id: &[u8]) -> IdDigest {
    let hash = Sha256::digest(id);
    let mut first = [0; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first)
}

fn seconds(keep_until: u64) -> u32 {
    u32::try_from(keep_until).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xgate_ledger::Store;
    use xgate_ledger::{Log, OpenOptions};

    fn put(replay: &Replay, store: &impl Store, sender: &AgencyId, jti: &str, until: u64) {
        let mut batch = WriteBatch::new();
        replay.put(sender, jti, until, &mut batch);
        store.apply(batch).expect("apply");
    }

    #[test]
    fn ids_are_kept_until_purged_after_their_keep_until() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
        let store = log.store();
        let replay = Replay::load(&log).expect("load");
        let state: AgencyId = "state".parse().expect("id");
        let gsa: AgencyId = "gsa".parse().expect("id");
        put(&replay, store, &state, "j1", 100);
        put(&replay, store, &state, "j2", 300);
        assert!(replay.seen(&state, "j1") && replay.seen(&state, "j2"));
        assert!(!replay.seen(&gsa, "j1"), "ids are per sender");
        assert_eq!(replay.purge(&log, 200).expect("purge"), 1);
        assert!(!replay.seen(&state, "j1"), "purged");
        assert!(replay.seen(&state, "j2"), "kept");
        assert_eq!(replay.purge(&log, 200).expect("purge"), 0);
        let reopened = Replay::load(&log).expect("load");
        assert!(reopened.seen(&state, "j2") && !reopened.seen(&state, "j1"));
    }

    #[test]
    fn a_purge_larger_than_a_chunk_removes_every_expired_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
        let store = log.store();
        let replay = Replay::load(&log).expect("load");
        let state: AgencyId = "state".parse().expect("id");
        let expired = PURGE_CHUNK * 2 + 7;
        let mut batch = WriteBatch::new();
        for i in 0..expired {
            replay.put(&state, &format!("old-{i}"), 100, &mut batch);
        }
        replay.put(&state, "live", 300, &mut batch);
        store.apply(batch).expect("apply");
        assert_eq!(replay.purge(&log, 200).expect("purge"), expired);
        assert_eq!(
            store.scan_prefix(EXPIRY_PREFIX).count(),
            1,
            "only the live id"
        );
        assert_eq!(replay.len(), 1);
        assert!(replay.seen(&state, "live"));
    }

    #[test]
    fn a_reload_forgets_ids_the_store_never_got() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
        let store = log.store();
        let replay = Replay::load(&log).expect("load");
        let state: AgencyId = "state".parse().expect("id");
        put(&replay, store, &state, "durable", 300);
        // A batch whose commit failed: its id is in memory only.
        replay.put(&state, "lost", 300, &mut WriteBatch::new());
        assert!(replay.seen(&state, "lost"));
        replay.reload(store).expect("reload");
        assert!(!replay.seen(&state, "lost"), "may be sent again");
        assert!(replay.seen(&state, "durable"));
    }

    #[test]
    fn the_index_of_earlier_versions_is_dropped_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
        let store = log.store();
        let mut batch = WriteBatch::new();
        for i in 0..PURGE_CHUNK + 3 {
            batch.put(
                format!("Grstate\0j{i}").into_bytes(),
                300u64.to_be_bytes().to_vec(),
            );
        }
        store.apply(batch).expect("apply");
        Replay::load(&log).expect("load");
        assert_eq!(store.scan_prefix(LEGACY_PREFIX).count(), 0);
    }
}
