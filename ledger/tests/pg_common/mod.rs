//! What the `pg_*` tests share: opening a log on a test database, entries
//! to append, and an independent computation of roots and proofs to check
//! them against.

#![allow(dead_code)]

use std::path::Path;

use xgate_ledger::pg::PgLog;
use xgate_ledger::proof::MemoryLeaves;
use xgate_ledger::{Hash, NoteSigner, OpenOptions, leaf_hash};

/// Options with the given signing key.
pub fn with_key(signer: &NoteSigner) -> OpenOptions {
    OpenOptions {
        key: Some(signer.to_private_key()),
        ..OpenOptions::default()
    }
}

/// Opens the log of `url` with the key in `dir` (created if missing).
pub fn open(url: &str, dir: &Path) -> PgLog {
    PgLog::open(url, dir, &OpenOptions::default()).expect("open the log")
}

/// A replica's data directory: a copy of `from`'s key in a new directory.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    std::fs::copy(from.join("checkpoint.key"), to.join("checkpoint.key")).expect("copy key");
}

/// Entries `from..to`, of varying lengths (empty ones included).
pub fn entries(from: u64, to: u64) -> Vec<Vec<u8>> {
    (from..to)
        .map(|i| {
            let len = (i * 7919 % 97) as usize;
            let mut e = format!("entry {i}:").into_bytes();
            e.extend((0..len).map(|b| (b as u64 ^ i) as u8));
            if i % 41 == 0 {
                e.clear();
            }
            e
        })
        .collect()
}

/// The leaf hashes of `entries`, for [`MemoryLeaves`].
pub fn leaves(entries: &[Vec<u8>]) -> Vec<Hash> {
    entries.iter().map(|e| leaf_hash(e)).collect()
}

/// An in-memory tree over the first `n` leaves.
pub fn memory(leaves: &[Hash], n: u64) -> MemoryLeaves {
    MemoryLeaves(leaves[..n as usize].to_vec())
}
