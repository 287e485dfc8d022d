//! Offline compaction: copies a stopped log's data directory into a new
//! one whose database holds only the live keys.
//!
//! The log itself needs no compaction any more (tiles are written once,
//! the journal and the body files are released while the gateway runs),
//! but the small state stays in sled 0.34, which does not reclaim the
//! space of deleted records that share its segments with records kept for
//! good. A fresh database written from the live keys holds each once.
//!
//! The source is opened as a log (so it is locked, recovered from its
//! journal, checked against its checkpoint copy, and its files brought up
//! to date) and the copy is written beside it, never over it: the journal,
//! tiles and body files as they are, the database from its live keys, the
//! checkpoint copy, the signing key last (the creation order `disk` relies
//! on), and the copy is opened as a log and must have the same size and
//! root before this returns. Whatever else the directory holds (a
//! gateway's development PKI and default policy) is copied as it is.
//! Swapping the directories is the operator's step, with the gateway
//! stopped (docs/operations.md).

use std::fs;
use std::path::Path;

use crate::disk::LOCK_FILE;
use crate::error::{Error, io_at};
use crate::fsutil::{create_private_dir, write_atomic};
use crate::store::{Store, WriteBatch};
use crate::store_sled::SledStore;
use crate::{CHECKPOINT_FILE, DB_DIR, KEY_FILE, Log, OpenOptions};

/// Bytes of keys and values written per batch while copying; each batch is
/// flushed, so sled can write out and evict what it holds.
const BATCH_BYTES: usize = 1 << 20;

/// What a compaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compacted {
    /// The log's size, the same in both directories.
    pub entries: u64,
    /// Keys copied (the log's and every other owner's).
    pub keys: u64,
    /// Bytes of the source database's files.
    pub bytes_before: u64,
    /// Bytes of the copy's database files.
    pub bytes_after: u64,
}

/// Copies the log in `src` into `dst`, which must not exist or be empty.
///
/// # Errors
/// [`Error::Locked`] if a gateway has `src` open; [`Error::Invalid`] if
/// `dst` holds anything; a storage or I/O failure; [`Error::Corrupt`] if
/// the copy does not open as the same log (never expected).
pub fn compact(src: &Path, dst: &Path, options: &OpenOptions) -> Result<Compacted, Error> {
    let log = Log::open_existing(src, options)?;
    // Everything the journal holds into the files, so the copy's own
    // journal replay has little to do.
    log.checkpoint()?;
    if fs::read_dir(dst).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(Error::Invalid(format!(
            "{} is not empty; compaction writes a new directory",
            dst.display()
        )));
    }
    create_private_dir(dst).map_err(io_at(dst))?;
    let keys = copy_keys(log.store(), &dst.join(DB_DIR), options.cache_bytes)?;
    crate::copy::copy_others(src, dst, &[DB_DIR, CHECKPOINT_FILE, KEY_FILE, LOCK_FILE])?;
    for (file, mode) in [(CHECKPOINT_FILE, 0o600), (KEY_FILE, 0o600)] {
        let from = src.join(file);
        // A log that never signed a checkpoint has no copy of one.
        if file == CHECKPOINT_FILE && !from.exists() {
            continue;
        }
        let contents = fs::read(&from).map_err(io_at(&from))?;
        let to = dst.join(file);
        write_atomic(&to, &contents, mode).map_err(io_at(&to))?;
    }
    let (entries, root) = (log.size(), log.root_at(log.size())?);
    drop(log);
    crate::copy::check_same_log(dst, options, entries, root)?;
    Ok(Compacted {
        entries,
        keys,
        bytes_before: dir_bytes(&src.join(DB_DIR))?,
        bytes_after: dir_bytes(&dst.join(DB_DIR))?,
    })
}

/// Writes every key of `from` into a new sled database at `path` and makes
/// it durable; returns how many.
fn copy_keys<S: Store>(from: &S, path: &Path, cache_bytes: u64) -> Result<u64, Error> {
    create_private_dir(path).map_err(io_at(path))?;
    let to = SledStore::open(path, cache_bytes)
        .map_err(|e| Error::Corrupt(format!("cannot create {}: {}", path.display(), e.0)))?;
    let (mut keys, mut batch, mut bytes) = (0, WriteBatch::new(), 0);
    for kv in from.scan_prefix(b"") {
        let (key, value) = kv?;
        bytes += key.len() + value.len();
        batch.put(key, value);
        keys += 1;
        if bytes >= BATCH_BYTES {
            to.apply(std::mem::take(&mut batch))?;
            to.sync()?;
            bytes = 0;
        }
    }
    to.apply(batch)?;
    to.sync()?;
    Ok(keys)
}

fn dir_bytes(dir: &Path) -> Result<u64, Error> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let meta = entry.metadata().map_err(io_at(&entry.path()))?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// Every key and value of `log`'s store, in order.
    fn all_keys<S: Store>(log: &Log<S>) -> Vec<(Vec<u8>, Vec<u8>)> {
        log.store()
            .scan_prefix(b"")
            .map(|kv| kv.expect("read"))
            .collect()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn the_copy_is_the_same_log_with_every_live_key_and_none_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        let options = OpenOptions::default();
        {
            let log = Log::create_or_open(&src, &options).expect("log");
            log.set_checkpoint_every_commit(true);
            for round in 0..50u32 {
                let entries: Vec<Vec<u8>> = (0..20)
                    .map(|i| format!("entry {round}/{i}").into_bytes())
                    .collect();
                log.append_batch_with(&entries, move |range| {
                    let mut batch = WriteBatch::new();
                    batch.put(format!("Gi{}", range.start).into_bytes(), vec![7; 1_000]);
                    batch.put(format!("Ge{}", range.start).into_bytes(), vec![9; 100]);
                    if round > 0 {
                        batch.delete(format!("Gi{}", range.start - 20).into_bytes());
                    }
                    batch
                })
                .expect("append");
            }
        }
        // What a gateway keeps beside its log.
        fs::create_dir_all(src.join("pki/state")).expect("mkdir");
        fs::write(src.join("policy.toml"), b"# policy\n").expect("write");
        fs::write(src.join("pki/state/key.pem"), b"secret").expect("write");
        fs::set_permissions(
            src.join("pki/state/key.pem"),
            fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
        let before = all_keys(&Log::open_existing(&src, &options).expect("open"));
        let done = compact(&src, &dst, &options).expect("compact");
        assert_eq!(done.entries, 1_000);
        assert_eq!(done.keys, before.len() as u64);
        let copy = Log::open_existing(&dst, &options).expect("open the copy");
        assert_eq!(all_keys(&copy), before, "the same keys and values");
        assert_eq!(copy.verify().expect("verify").size, 1_000);
        for file in [
            CHECKPOINT_FILE,
            KEY_FILE,
            "policy.toml",
            "pki/state/key.pem",
        ] {
            let read = |dir: &Path| fs::read(dir.join(file)).expect("read");
            assert_eq!(read(&dst), read(&src), "{file}");
        }
        for key in [KEY_FILE, "pki/state/key.pem"] {
            assert_eq!(mode(&dst.join(key)), 0o600, "{key} stays private");
        }
    }

    #[test]
    fn a_non_empty_destination_or_an_open_source_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        let options = OpenOptions::default();
        let log = Log::create_or_open(&src, &options).expect("log");
        assert!(matches!(
            compact(&src, &dst, &options),
            Err(Error::Locked(_))
        ));
        drop(log);
        fs::create_dir_all(&dst).expect("mkdir");
        fs::write(dst.join("something"), b"x").expect("write");
        assert!(matches!(
            compact(&src, &dst, &options),
            Err(Error::Invalid(_))
        ));
    }
}
