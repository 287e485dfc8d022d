//! The storage boundary of a log, in two halves a backend provides:
//!
//! - a [`Sequencer`]: the durability point. It takes one opaque record per
//!   commit batch, numbers it, and returns only once the record survives a
//!   power loss; it hands records back in order for recovery and forgets
//!   them when told they are integrated. The [`Journal`] (a file per 8 MiB
//!   of records, one `pwritev` and one `fdatasync` per record) is one; a
//!   PostgreSQL table written in one transaction per batch, committed with
//!   `synchronous_commit = on`, is the next (issue 23).
//! - a [`Store`]: the small, mutable state, applied after the sequencer's
//!   barrier and made durable before records are released. [`SledStore`]
//!   is one; PostgreSQL rows the next.
//!
//! Integration (turning sequenced records into tlog-tiles files) is not a
//! backend's business: tiles are files (or objects) whatever holds the
//! sequence, so that the read path never depends on the coordinating
//! database. Both halves are batch-oriented: one call per commit batch,
//! never one per entry.
//!
//! [`contract`] is the test suite every implementation must pass; the
//! ledger runs it against the journal and sled.
//!
//! [`Journal`]: crate::journal::Journal
//! [`Store`]: crate::store::Store
//! [`SledStore`]: crate::store_sled::SledStore

use crate::error::Error;
use crate::journal::Journal;

/// Records in sequence order, as [`Sequencer::read_from`] returns them.
pub type Sequenced<'a> = Box<dyn Iterator<Item = Result<(u64, Vec<u8>), Error>> + 'a>;

/// The durability point of a log: numbered records, durable when
/// [`Sequencer::append`] returns.
///
/// Contract (checked by [`contract::sequencer`]):
/// - records are numbered 0, 1, 2, ... for the life of the sequencer, with
///   no gap, and read back in order exactly as appended;
/// - `append` returns `Ok` only once the record survives a crash or power
///   loss; a failed append leaves either nothing or (if the failure was of
///   the barrier after the write) a record that may or may not be found
///   after a restart, never a part of one;
/// - after a failure it cannot vouch for, a sequencer refuses every later
///   append until it is reopened ([`Sequencer::stopped`]);
/// - `release_before(n)` may forget records below `n`, never one at or
///   above it; reading a forgotten record is an error.
pub trait Sequencer: Send + Sync {
    /// Appends one record (the concatenation of `parts`) and returns its
    /// number once it is durable.
    ///
    /// # Errors
    /// If the record could not be made durable; then it is not
    /// acknowledged.
    fn append(&self, parts: &[&[u8]]) -> Result<u64, Error>;

    /// The number the next record gets.
    fn next_seq(&self) -> u64;

    /// The oldest record still kept (`next_seq` when none is).
    fn first_seq(&self) -> u64;

    /// The records from `seq` to the end, in order.
    ///
    /// # Errors
    /// If `seq` was released or is past the end.
    fn read_from(&self, seq: u64) -> Result<Sequenced<'_>, Error>;

    /// Forgets records below `seq`; returns the bytes freed.
    ///
    /// # Errors
    /// A storage failure; then nothing a later read needs is lost.
    fn release_before(&self, seq: u64) -> Result<u64, Error>;

    /// Whether a failure stopped the sequencer until it is reopened.
    fn stopped(&self) -> bool;

    /// Bytes the kept records take in the backend.
    fn disk_bytes(&self) -> u64;
}

impl Sequencer for Journal {
    fn append(&self, parts: &[&[u8]]) -> Result<u64, Error> {
        Ok(Journal::append(self, parts)?)
    }

    fn next_seq(&self) -> u64 {
        Journal::next_seq(self)
    }

    fn first_seq(&self) -> u64 {
        Journal::first_seq(self)
    }

    fn read_from(&self, seq: u64) -> Result<Sequenced<'_>, Error> {
        let records = Journal::read_from(self, seq)?;
        Ok(Box::new(records.map(|r| r.map_err(Error::from))))
    }

    fn release_before(&self, seq: u64) -> Result<u64, Error> {
        Ok(Journal::release_before(self, seq)?)
    }

    fn stopped(&self) -> bool {
        self.poisoned()
    }

    fn disk_bytes(&self) -> u64 {
        Journal::disk_bytes(self)
    }
}

/// The contract suites: what every [`Sequencer`] and every
/// [`Store`](crate::store::Store) must do, as functions any backend's tests
/// call with a way to open one in a directory (opening the same directory
/// again must find what was made durable there).
pub mod contract {
    use std::path::Path;

    use super::Sequencer;
    use crate::store::{Store, StoreError, WriteBatch};

    /// Runs the sequencer contract against what `open` opens in a fresh
    /// directory (and reopens in the same one).
    ///
    /// # Panics
    /// On the first broken promise, naming it.
    pub fn sequencer<S: Sequencer>(open: impl Fn(&Path) -> S) {
        let dir = tempfile::tempdir().expect("tempdir");
        let seq = open(dir.path());
        assert_eq!(seq.next_seq(), 0, "a new sequencer starts at 0");
        assert_eq!(seq.first_seq(), 0);
        let records: Vec<Vec<u8>> = (0..200u32)
            .map(|i| {
                let len = (i as usize * 37) % 3000;
                (0..len).map(|b| (b as u32 ^ i) as u8).collect()
            })
            .collect();
        for (i, r) in records.iter().enumerate() {
            let (head, tail) = r.split_at(r.len() / 2);
            assert_eq!(
                seq.append(&[head, tail]).expect("append"),
                i as u64,
                "numbered without gaps"
            );
        }
        let read = |s: &S, from: u64| -> Vec<(u64, Vec<u8>)> {
            s.read_from(from)
                .expect("read")
                .collect::<Result<_, _>>()
                .expect("records")
        };
        let all = read(&seq, 0);
        assert_eq!(all.len(), records.len());
        for ((n, got), (i, want)) in all.iter().zip(records.iter().enumerate()) {
            assert_eq!(*n, i as u64, "in order");
            assert_eq!(got, want, "record {i} as appended");
        }
        assert_eq!(read(&seq, 150).len(), 50, "read from the middle");
        assert!(read(&seq, 200).is_empty(), "read from the end");
        assert!(seq.read_from(201).is_err(), "read past the end");
        assert!(!seq.stopped());
        drop(seq);

        // Durable: a reopened sequencer has every record and goes on.
        let seq = open(dir.path());
        assert_eq!(seq.next_seq(), 200, "reopened");
        assert_eq!(read(&seq, 0), all, "the same records after reopening");
        assert_eq!(seq.append(&[b"after"]).expect("append"), 200);

        // Release: never a record at or above the mark.
        seq.release_before(120).expect("release");
        assert!(
            seq.first_seq() <= 120,
            "nothing at or above the mark released"
        );
        let kept = read(&seq, seq.first_seq());
        assert_eq!(kept.last().map(|(n, _)| *n), Some(200));
        assert_eq!(&kept[kept.len() - 81..kept.len() - 1], &all[120..]);
        if seq.first_seq() > 0 {
            assert!(seq.read_from(0).is_err(), "a released record is gone");
        }
        let first = seq.first_seq();
        drop(seq);
        let seq = open(dir.path());
        assert_eq!(seq.first_seq(), first, "the release survives reopening");
        assert_eq!(seq.next_seq(), 201);
    }

    /// Runs the store contract against what `open` opens in a fresh
    /// directory (and reopens in the same one).
    ///
    /// # Panics
    /// On the first broken promise, naming it.
    pub fn store<S: Store>(open: impl Fn(&Path) -> S) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let get = |s: &S, k: &[u8]| s.get(k).expect("get");
        let mut batch = WriteBatch::new();
        for i in 0..100u32 {
            batch.put(format!("Gk{i:03}").into_bytes(), i.to_be_bytes().to_vec());
        }
        batch.put(b"Gz".to_vec(), b"first".to_vec());
        batch.put(b"Gz".to_vec(), b"last wins".to_vec());
        batch.delete(b"Gk050".to_vec());
        store.apply(batch).expect("apply");
        assert_eq!(get(&store, b"Gz").as_deref(), Some(&b"last wins"[..]));
        assert_eq!(get(&store, b"Gk050"), None, "deleted in the same batch");
        assert_eq!(
            get(&store, b"Gk049").as_deref(),
            Some(&49u32.to_be_bytes()[..])
        );
        fn keys<V>(it: impl Iterator<Item = Result<(Vec<u8>, V), StoreError>>) -> Vec<Vec<u8>> {
            it.map(|kv| kv.expect("scan").0).collect()
        }
        let scanned = keys(store.scan_prefix(b"Gk"));
        assert_eq!(scanned.len(), 99);
        assert!(scanned.windows(2).all(|w| w[0] < w[1]), "ascending");
        let from = keys(store.scan_prefix_from(b"Gk", b"Gk090"));
        assert_eq!(from.first().map(Vec::as_slice), Some(&b"Gk090"[..]));
        assert_eq!(from.len(), 10);
        assert_eq!(
            store.last_with_prefix(b"Gk").expect("last").map(|(k, _)| k),
            Some(b"Gk099".to_vec())
        );
        assert!(store.last_with_prefix(b"Gq").expect("last").is_none());
        // Several keys at once: each answer in its key's place, a missing
        // or deleted key `None`, a key asked twice answered twice.
        let asked: Vec<Vec<u8>> = ["Gk001", "Gnone", "Gk050", "Gz", "Gk001"]
            .iter()
            .map(|k| k.as_bytes().to_vec())
            .collect();
        assert_eq!(
            store.get_many(&asked).expect("get_many"),
            vec![
                Some(1u32.to_be_bytes().to_vec()),
                None,
                None,
                Some(b"last wins".to_vec()),
                Some(1u32.to_be_bytes().to_vec()),
            ]
        );
        assert!(store.get_many(&[]).expect("get_many").is_empty());
        store.sync().expect("sync");
        drop(store);
        let store = open(dir.path());
        assert_eq!(
            keys(store.scan_prefix(b"Gk")),
            scanned,
            "durable after sync"
        );
        assert_eq!(get(&store, b"Gz").as_deref(), Some(&b"last wins"[..]));
    }
}
