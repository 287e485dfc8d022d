//! Converting a data directory of the layout before the journal (format
//! `xgate-ledger/2`: entries, tiles, checkpoints and state all in one sled
//! database) into the current layout, in a new directory ([`migrate`]).
//!
//! Offline, like any copy of a log: the old directory is locked and only
//! read. The entries are appended to the new log in order, so the new tree
//! is the same RFC 9162 tree (same roots at every size); every old
//! checkpoint is checked against it and kept as a published one (it is
//! signed by the same key, which is copied); the old store's keys outside
//! the log's own are handed to the caller's converter, which says what they
//! become (the gateway moves envelopes into body files). The new
//! directory's key is written last, so an interrupted migration leaves a
//! directory every open refuses ("its checkpoint.key is missing"); delete
//! it and run the migration again.

use std::fs;
use std::path::Path;

use crate::checkpoint::verify_checkpoint;
use crate::disk::{CHECKPOINT_FILE, DB_DIR, DataDir, KEY_FILE, LOCK_FILE, OpenOptions, TILES_DIR};
use crate::error::{ConvertError, Error};
use crate::layout::{FORMAT_KEY, FORMAT_V2, decode_u64};
use crate::store::{StoreRead, WriteBatch};
use crate::store_sled::SledStore;
use crate::{DiskStore, Log};

/// Entries per append while copying: one journal record each.
const APPEND_CHUNK: usize = 4096;
/// Converted keys per journal record.
const WRITES_CHUNK: usize = 2048;

/// What a migration did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migrated {
    /// Entries copied.
    pub entries: u64,
    /// Old checkpoints checked and kept.
    pub checkpoints: u64,
    /// Old state keys converted.
    pub keys: u64,
}

/// The owner's conversion of one old key (never one of the log's `L`
/// keys) and its value into writes of the new layout.
pub type Convert<'a> = dyn FnMut(&[u8], &[u8], &mut WriteBatch) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
    + 'a;

/// Converts the log in `old` (layout `xgate-ledger/2`) into a new data
/// directory `new` (missing or empty), with `convert` deciding what each
/// of the owner's keys becomes, and checks the result by reopening it.
///
/// # Errors
/// [`Error::NotALog`] if `old` is not a log of the old layout,
/// [`Error::Invalid`] if `new` is not empty, [`Error::Corrupt`] if an old
/// checkpoint does not match the entries or the reopened copy differs,
/// [`Error::Convert`] if the converter refuses a key; any storage error.
pub fn migrate(
    old: &Path,
    new: &Path,
    options: &OpenOptions,
    convert: &mut Convert<'_>,
) -> Result<Migrated, Error> {
    let old_dir = DataDir::existing(old)?;
    let _old_lock = old_dir.lock()?;
    let signer = old_dir.read_key(options)?;
    let store = SledStore::open(&old.join(DB_DIR), options.cache_bytes)
        .map_err(|e| Error::Corrupt(format!("cannot open the old database: {}", e.0)))?;
    match store.get(FORMAT_KEY)? {
        Some(f) if f.as_slice() == FORMAT_V2 => {}
        Some(f) if f.as_slice() == crate::layout::FORMAT => {
            return Err(old_dir.not_a_log("it is in the current layout already"));
        }
        _ => return Err(old_dir.not_a_log("no xgate-ledger/2 format marker")),
    }
    if fs::read_dir(new).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(Error::Invalid(format!(
            "{} is not empty; a migration writes a new directory",
            new.display()
        )));
    }
    let size = store
        .get(b"Lz")?
        .and_then(|v| decode_u64(v.as_ref()))
        .ok_or_else(|| Error::Corrupt("the old size key is missing".into()))?;

    let private_key = signer.to_private_key();
    let verifier = signer.verifier();
    let log = Log::create_with(new, signer, options)?;
    let entries = copy_entries(&store, size, &log)?;
    let mut checkpoints = 0;
    for kv in store.scan_prefix(b"LC") {
        let (_, note) = kv?;
        let note = String::from_utf8(note)
            .map_err(|_| Error::Corrupt("an old checkpoint is not UTF-8".into()))?;
        let checkpoint = verify_checkpoint(&note, &verifier)
            .map_err(|e| Error::Corrupt(format!("an old checkpoint: {e}")))?;
        if checkpoint.size > entries || log.root_at(checkpoint.size)? != checkpoint.root {
            return Err(Error::Corrupt(format!(
                "the old checkpoint for size {} does not match the old entries",
                checkpoint.size
            )));
        }
        log.import_published(checkpoint.size, &note)?;
        checkpoints += 1;
    }
    let keys = convert_keys(&store, &log, convert)?;
    log.checkpoint()?;
    let root = log.root_at(entries)?;
    drop(log);
    drop(store);

    // What else the old directory holds (the gateway's PKI, policy, ...).
    crate::copy::copy_others(
        old,
        new,
        &[
            DB_DIR,
            TILES_DIR,
            CHECKPOINT_FILE,
            KEY_FILE,
            LOCK_FILE,
            crate::disk::LOG_DIR,
            crate::disk::LEDGER_DIR,
        ],
    )?;
    DataDir::create(new, options)?.write_key(&private_key)?;
    crate::copy::check_same_log(new, options, entries, root)?;
    Ok(Migrated {
        entries,
        checkpoints,
        keys,
    })
}

/// Appends the old entries `0..size` to `log`, in chunks.
fn copy_entries(store: &SledStore, size: u64, log: &Log<DiskStore>) -> Result<u64, Error> {
    let mut chunk: Vec<Vec<u8>> = Vec::with_capacity(APPEND_CHUNK);
    for index in 0..size {
        chunk.push(old_entry(store, index)?);
        if chunk.len() == APPEND_CHUNK {
            log.append_batch(&chunk)?;
            chunk.clear();
        }
    }
    log.append_batch(&chunk)?;
    Ok(log.size())
}

/// Entry `index` of the old layout: in a full bundle of 16 (`LE`, each
/// entry a u32 big-endian length and its bytes) or in the tail (`Le`).
fn old_entry(store: &SledStore, index: u64) -> Result<Vec<u8>, Error> {
    let key = |prefix: &[u8], n: u64| [prefix, &n.to_be_bytes()].concat();
    if let Some(e) = store.get(&key(b"Le", index))? {
        return Ok(e.to_vec());
    }
    let bundle = store
        .get(&key(b"LE", index / 16))?
        .ok_or_else(|| Error::Corrupt(format!("old entry {index} is missing")))?;
    let mut bytes: &[u8] = bundle.as_ref();
    let malformed = || Error::Corrupt(format!("the old bundle holding entry {index} is malformed"));
    for _ in 0..index % 16 {
        let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(malformed)?;
        bytes = rest
            .get(u32::from_be_bytes(*len) as usize..)
            .ok_or_else(malformed)?;
    }
    let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(malformed)?;
    rest.get(..u32::from_be_bytes(*len) as usize)
        .map(<[u8]>::to_vec)
        .ok_or_else(malformed)
}

/// Hands every old key outside the log's own to `convert`, committing its
/// writes in chunks.
fn convert_keys(
    store: &SledStore,
    log: &Log<DiskStore>,
    convert: &mut Convert<'_>,
) -> Result<u64, Error> {
    let (mut keys, mut pending, mut batch) = (0, 0, WriteBatch::new());
    for kv in store.scan_prefix(b"") {
        let (key, value) = kv?;
        if key.starts_with(b"L") {
            continue;
        }
        convert(&key, value.as_ref(), &mut batch).map_err(|source| ConvertError {
            prefix: String::from_utf8_lossy(&key[..key.len().min(2)]).into_owned(),
            source,
        })?;
        keys += 1;
        pending += 1;
        if pending == WRITES_CHUNK {
            log.commit_writes(std::mem::take(&mut batch))?;
            pending = 0;
        }
    }
    if !batch.is_empty() {
        log.commit_writes(batch)?;
    }
    Ok(keys)
}
