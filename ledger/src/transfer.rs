//! Moving a log whole from one backend to another ([`transfer`]): a data
//! directory into PostgreSQL, or PostgreSQL into a new data directory
//! ([`transfer_into_dir`]), for `xgate log migrate` across backends.
//!
//! The source is read only through [`Ledger`], so any backend is one; the
//! target must be an empty log signed by the same key. What is copied:
//!
//! - every entry, in order, in batches of at most 4096 entries and 4 MiB
//!   (full entry bundles are read whole): the
//!   target is the same RFC 9162 tree, its root checked against the
//!   source's after every batch;
//! - the published checkpoints: at each size the source published one, the
//!   target signs one. Ed25519 signatures are deterministic, so each is the
//!   source's note byte for byte, which is checked. A target on disk may
//!   publish more of its own while the entries go in (its integrator
//!   publishes at most once a second): the same tree, the same key;
//! - the owner's small state (every key not starting with `L`: the log's
//!   own keys are rebuilt by the target), in batches;
//! - every body, with its kind ([`BodyKind`]), in batches of bounded bytes.
//!
//! Memory stays bounded whatever the log's size: one batch of entries, one
//! entry bundle, one batch of keys or bodies at a time (and the list of
//! published checkpoints, which [`Ledger::checkpoints`] returns whole).
//!
//! The source must not change meanwhile: a log on disk is locked while it
//! is open; of a log in PostgreSQL every replica must be stopped (a batch
//! appended during the copy is detected and the copy refused; a change
//! that appends nothing, such as an inbox acknowledged, would not be).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use crate::backend::{BodyKind, Ledger};
use crate::disk::{
    CHECKPOINT_FILE, DB_DIR, DataDir, KEY_FILE, LEDGER_DIR, LOCK_FILE, LOG_DIR, OpenOptions,
    TILES_DIR, key_label,
};
use crate::error::{Error, io_at};
use crate::log::Log;
use crate::store::WriteBatch;
use crate::tlog::{self, Resource, Width};

/// Entries per append at most: one journal record, or one transaction.
const ENTRY_BATCH: usize = 4096;
/// Bytes of entries per append at most.
const ENTRY_BYTES: usize = 4 << 20;
/// Small writes per commit at most.
const KEYS_BATCH: usize = 2048;
/// Bytes of keys and values per commit at most.
const KEYS_BYTES: usize = 4 << 20;
/// Bodies per commit at most.
const BODIES_BATCH: usize = 256;
/// Bytes of bodies per commit at most (a larger body goes alone).
const BODIES_BYTES: usize = 8 << 20;

/// What a transfer copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transferred {
    /// Entries.
    pub entries: u64,
    /// Published checkpoints signed again at their sizes.
    pub checkpoints: u64,
    /// The owner's small-state keys.
    pub keys: u64,
    /// Bodies, of both kinds.
    pub bodies: u64,
}

/// Copies the log `from` whole into `to`, an empty log signed by the same
/// key; `to` ends with a checkpoint for the whole log.
///
/// # Errors
/// [`Error::KeyMismatch`] if the logs' keys differ, [`Error::Invalid`] if
/// `to` is not empty, [`Error::Corrupt`] if the copy does not come out as
/// the same log (a root or a checkpoint differs) or `from` grew meanwhile;
/// any error of either backend, which leaves `to` partly written (empty it
/// and run again).
pub fn transfer(from: &dyn Ledger, to: &dyn Ledger) -> Result<Transferred, Error> {
    let (source, target) = (from.verifier(), to.verifier());
    if source != target {
        return Err(Error::KeyMismatch {
            existing: key_label(&target),
            given: key_label(&source),
        });
    }
    ensure_empty(to)?;
    let size = from.size();
    let mut history: Vec<(u64, String)> = from
        .checkpoints()?
        .into_iter()
        .filter(|(at, _)| *at <= size)
        .collect();
    history.sort_by_key(|(at, _)| *at);
    history.dedup_by_key(|(at, _)| *at);

    let mut done = Transferred::default();
    let mut entries = Entries::new(from);
    for (at, note) in &history {
        copy_entries(&mut entries, to, done.entries, *at)?;
        done.entries = *at;
        let signed = to.checkpoint()?;
        if signed.checkpoint.size != *at || signed.note != *note {
            return Err(Error::Corrupt(format!(
                "the copy's checkpoint for size {at} is not the source's"
            )));
        }
        done.checkpoints += 1;
    }
    copy_entries(&mut entries, to, done.entries, size)?;
    done.entries = size;
    let last = to.checkpoint()?;
    if last.checkpoint.size != size || last.checkpoint.root != from.root_at(size)? {
        return Err(Error::Corrupt(format!(
            "the copy's tree at size {size} is not the source's"
        )));
    }
    done.keys = copy_keys(from, to)?;
    done.bodies = copy_bodies(from, to)?;
    if from.size() != size {
        return Err(Error::Corrupt(format!(
            "the source log grew from {size} to {} entries during the copy (a gateway is \
             writing to it): stop every gateway on it and copy again into an empty target",
            from.size()
        )));
    }
    Ok(done)
}

/// Copies the log `from` into a new data directory `new` (missing or
/// empty), signed by the key in `key_dir` (which must be `from`'s), and
/// copies what else `key_dir` holds (a gateway's PKI and policy, not a log
/// of its own). The log is built in a hidden directory beside `new` and
/// renamed to `new` only once it is whole and reopens as the same log, so
/// an interrupted copy never leaves a directory that opens.
///
/// # Errors
/// [`Error::Invalid`] if `new` is not empty, [`Error::NotALog`] if
/// `key_dir` has no key; as [`transfer`], and any I/O error.
pub fn transfer_into_dir(
    from: &dyn Ledger,
    key_dir: &Path,
    new: &Path,
    options: &OpenOptions,
) -> Result<Transferred, Error> {
    if new.exists() && !new.is_dir() || fs::read_dir(new).is_ok_and(|mut e| e.next().is_some()) {
        return Err(Error::Invalid(format!(
            "{} is not empty; a copy writes a new directory",
            new.display()
        )));
    }
    if !key_dir.join(KEY_FILE).is_file() {
        return Err(Error::NotALog {
            path: key_dir.to_path_buf(),
            reason: "no checkpoint.key".into(),
        });
    }
    let signer = DataDir::create(key_dir, options)?.read_key(options)?;
    let (parent, name) = match (new.parent(), new.file_name()) {
        (Some(parent), Some(name)) => (parent, name.to_string_lossy()),
        _ => {
            return Err(Error::Invalid(format!(
                "{} cannot be a new data directory",
                new.display()
            )));
        }
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    crate::fsutil::create_private_dir(parent).map_err(io_at(parent))?;
    // Removed on any error below; a crash leaves it, hidden, to delete.
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.partial-"))
        .tempdir_in(parent)
        .map_err(io_at(parent))?;
    let private_key = signer.to_private_key();
    let log = Log::create_with(staging.path(), signer, options)?;
    let done = transfer(from, &log)?;
    drop(log);
    crate::copy::copy_others(
        key_dir,
        staging.path(),
        &[
            DB_DIR,
            TILES_DIR,
            CHECKPOINT_FILE,
            KEY_FILE,
            LOCK_FILE,
            LOG_DIR,
            LEDGER_DIR,
        ],
    )?;
    DataDir::create(staging.path(), options)?.write_key(&private_key)?;
    crate::copy::check_same_log(
        staging.path(),
        options,
        done.entries,
        from.root_at(done.entries)?,
    )?;
    let built = staging.keep();
    fs::rename(&built, new).map_err(io_at(new))?;
    fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io_at(parent))?;
    Ok(done)
}

/// [`Error::Invalid`] unless `to` holds nothing at all.
fn ensure_empty(to: &dyn Ledger) -> Result<(), Error> {
    let holds = |what: &str| {
        Err(Error::Invalid(format!(
            "the target log is not empty (it holds {what}): a copy goes into an empty one"
        )))
    };
    if to.size() > 0 {
        return holds("entries");
    }
    if to.latest_checkpoint().is_some() || !to.checkpoints()?.is_empty() {
        return holds("checkpoints");
    }
    for kv in to.store().scan_prefix(b"") {
        if !kv?.0.starts_with(b"L") {
            return holds("state");
        }
    }
    if to.bodies().next().transpose()?.is_some() {
        return holds("bodies");
    }
    Ok(())
}

/// Appends the source's entries `start..end` to `to` in batches, checking
/// the root after each.
fn copy_entries(
    entries: &mut Entries<'_>,
    to: &dyn Ledger,
    start: u64,
    end: u64,
) -> Result<(), Error> {
    let mut next = start;
    while next < end {
        let (mut batch, mut bytes) = (Vec::new(), 0);
        while next + (batch.len() as u64) < end && batch.len() < ENTRY_BATCH && bytes < ENTRY_BYTES
        {
            let entry = entries.get(next + batch.len() as u64)?;
            bytes += entry.len();
            batch.push(entry);
        }
        let count = batch.len() as u64;
        let committed = to.append_batch_with(
            &batch,
            Box::new(|_: std::ops::Range<u64>| WriteBatch::new()),
        )?;
        if committed.range != (next..next + count) {
            return Err(Error::Corrupt(format!(
                "the copy took entries {next}..{} at {:?}: another writer appends to it",
                next + count,
                committed.range
            )));
        }
        next += count;
        if to.root_at(next)? != entries.from.root_at(next)? {
            return Err(Error::Corrupt(format!(
                "the copy's tree at size {next} is not the source's"
            )));
        }
    }
    Ok(())
}

/// The source's entries in order, a full bundle read at a time where the
/// source serves it, else one by one.
struct Entries<'a> {
    from: &'a dyn Ledger,
    /// The source's size when the copy began.
    size: u64,
    /// The bundle last read: its index and entries.
    bundle: Option<(u64, Vec<Vec<u8>>)>,
}

impl<'a> Entries<'a> {
    fn new(from: &'a dyn Ledger) -> Entries<'a> {
        Entries {
            from,
            size: from.size(),
            bundle: None,
        }
    }

    fn get(&mut self, index: u64) -> Result<Vec<u8>, Error> {
        let width = tlog::WIDTH;
        let n = index / width;
        let cached = |b: &Option<(u64, Vec<Vec<u8>>)>| b.as_ref().is_some_and(|(at, _)| *at == n);
        if !cached(&self.bundle) && (n + 1) * width <= self.size {
            let resource = Resource::Bundle {
                index: n,
                width: Width::Full,
            };
            self.bundle = match self.from.read_public(&resource)? {
                Some(bytes) => {
                    let all = tlog::bundle::split(&bytes)
                        .filter(|e| e.len() as u64 == width)
                        .ok_or_else(|| Error::Corrupt(format!("entry bundle {n} is malformed")))?;
                    Some((n, all.into_iter().map(<[u8]>::to_vec).collect()))
                }
                // Not in a file yet (a log on disk integrates off the
                // write path): entry by entry.
                None => None,
            };
        }
        match &self.bundle {
            Some((at, all)) if *at == n => all
                .get((index % width) as usize)
                .cloned()
                .ok_or_else(|| Error::Corrupt(format!("entry bundle {n} is short"))),
            _ => self.from.entry(index),
        }
    }
}

/// Copies the owner's small state (every key not starting with `L`).
fn copy_keys(from: &dyn Ledger, to: &dyn Ledger) -> Result<u64, Error> {
    let (mut keys, mut batch, mut bytes) = (0, WriteBatch::new(), 0);
    for kv in from.store().scan_prefix(b"") {
        let (key, value) = kv?;
        if key.starts_with(b"L") {
            continue;
        }
        bytes += key.len() + value.len();
        batch.put(key, value);
        keys += 1;
        if batch.len() == KEYS_BATCH || bytes >= KEYS_BYTES {
            to.commit_writes(std::mem::take(&mut batch))?;
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        to.commit_writes(batch)?;
    }
    Ok(keys)
}

/// Copies every body with its kind.
fn copy_bodies(from: &dyn Ledger, to: &dyn Ledger) -> Result<u64, Error> {
    let (mut count, mut batch, mut bytes) = (0, WriteBatch::new(), 0);
    // A batch holds one body per key: a key with a body of each kind
    // needs two.
    let mut in_batch = BTreeSet::new();
    for body in from.bodies() {
        let (key, kind, data) = body?;
        if in_batch.contains(&key)
            || !in_batch.is_empty()
                && (in_batch.len() == BODIES_BATCH || bytes + data.len() > BODIES_BYTES)
        {
            to.commit_writes(std::mem::take(&mut batch))?;
            in_batch.clear();
            bytes = 0;
        }
        bytes += data.len();
        in_batch.insert(key.clone());
        match kind {
            BodyKind::Put => batch.put_body(key, data),
            BodyKind::Kept => batch.put_kept(key, data),
        }
        count += 1;
    }
    if !batch.is_empty() {
        to.commit_writes(batch)?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use super::*;
    use crate::backend::StoredBody;
    use crate::checkpoint::NoteSigner;
    use crate::hash::Hash;

    fn signer() -> NoteSigner {
        NoteSigner::generate("transfer.example/log").expect("key")
    }

    fn twin(signer: &NoteSigner) -> NoteSigner {
        NoteSigner::from_private_key(&signer.to_private_key()).expect("key")
    }

    fn entries(range: Range<u64>) -> Vec<Vec<u8>> {
        range.map(|i| format!("entry {i}").into_bytes()).collect()
    }

    /// A log of 700 entries over several appends, checkpoints at three
    /// sizes, state, and bodies of both kinds (one of them dropped).
    fn source(dir: &Path, signer: NoteSigner) -> Log {
        let log = Log::create_with_signer(dir, signer, &OpenOptions::default()).expect("create");
        log.append_batch(&entries(0..100)).expect("append");
        log.checkpoint().expect("checkpoint");
        log.append_batch_with(&entries(100..400), |range| {
            let mut batch = WriteBatch::new();
            batch.put(b"Gk1".to_vec(), range.start.to_be_bytes().to_vec());
            batch.put_body(b"Gi1".to_vec(), b"inbox one".to_vec());
            batch.put_body(b"Gi2".to_vec(), b"inbox two".to_vec());
            batch.put_kept(b"Ge1".to_vec(), vec![7; 70_000]);
            batch
        })
        .expect("append");
        log.checkpoint().expect("checkpoint");
        let mut batch = WriteBatch::new();
        batch.drop_body(b"Gi1".to_vec());
        batch.put(b"Gz".to_vec(), b"last".to_vec());
        log.commit_writes(batch).expect("commit");
        log.append_batch(&entries(400..700)).expect("append");
        log.checkpoint().expect("checkpoint");
        log
    }

    /// Everything a copy must keep.
    #[derive(Debug, PartialEq, Eq)]
    struct Contents {
        roots: Vec<Hash>,
        entries: Vec<Vec<u8>>,
        state: Vec<(Vec<u8>, Vec<u8>)>,
        bodies: Vec<StoredBody>,
        latest: Option<String>,
    }

    fn contents(log: &dyn Ledger) -> Contents {
        let size = log.size();
        let mut bodies: Vec<StoredBody> = log.bodies().map(|b| b.expect("body")).collect();
        bodies.sort_by(|a, b| (&a.0, a.1 as u8).cmp(&(&b.0, b.1 as u8)));
        Contents {
            roots: (1..=size).map(|n| log.root_at(n).expect("root")).collect(),
            entries: (0..size).map(|i| log.entry(i).expect("entry")).collect(),
            state: log
                .store()
                .scan_prefix(b"")
                .map(|kv| kv.expect("state"))
                .filter(|(k, _)| !k.starts_with(b"L"))
                .collect(),
            bodies,
            latest: log.latest_checkpoint().map(|c| c.note),
        }
    }

    /// Every published checkpoint of `from` is `to`'s too.
    fn history_kept(from: &dyn Ledger, to: &dyn Ledger) {
        let kept = to.checkpoints().expect("checkpoints");
        let old = from.checkpoints().expect("checkpoints");
        assert!(old.len() >= 3, "{old:?}");
        for note in old {
            assert!(kept.contains(&note), "checkpoint {} lost", note.0);
        }
    }

    #[test]
    fn a_log_copies_whole_into_an_empty_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = signer();
        let from = source(&dir.path().join("from"), twin(&key));
        let to = Log::create_with_signer(&dir.path().join("to"), key, &OpenOptions::default())
            .expect("create");
        let done = transfer(&from, &to).expect("transfer");
        assert_eq!(
            done,
            Transferred {
                entries: 700,
                checkpoints: from.checkpoints().expect("history").len() as u64,
                keys: 2,
                bodies: 2,
            }
        );
        let copied = contents(&to);
        assert_eq!(copied, contents(&from));
        assert_eq!(copied.bodies.len(), 2, "the dropped body is not copied");
        assert!(
            copied
                .bodies
                .iter()
                .any(|b| b.1 == BodyKind::Kept && b.2.len() == 70_000)
        );
        history_kept(&from, &to);
        to.verify().expect("the copy verifies");

        // Not empty any more.
        let again = transfer(&from, &to).expect_err("not empty");
        assert!(again.to_string().contains("not empty"), "{again}");
    }

    #[test]
    fn a_target_signed_by_another_key_or_holding_anything_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = signer();
        let from = source(&dir.path().join("from"), twin(&key));
        let other =
            Log::create_with_signer(&dir.path().join("other"), signer(), &OpenOptions::default())
                .expect("create");
        assert!(matches!(
            transfer(&from, &other),
            Err(Error::KeyMismatch { .. })
        ));
        assert_eq!(other.size(), 0, "nothing copied");
        let keyed = |name: &str, key: &NoteSigner| {
            Log::create_with_signer(&dir.path().join(name), twin(key), &OpenOptions::default())
                .expect("create")
        };
        let with_state = keyed("state", &key);
        let mut batch = WriteBatch::new();
        batch.put(b"Gx".to_vec(), b"1".to_vec());
        with_state.commit_writes(batch).expect("commit");
        let with_body = keyed("body", &key);
        let mut batch = WriteBatch::new();
        batch.put_kept(b"Gb".to_vec(), b"1".to_vec());
        with_body.commit_writes(batch).expect("commit");
        let with_checkpoint = keyed("checkpoint", &key);
        with_checkpoint.checkpoint().expect("checkpoint");
        for (target, what) in [
            (&with_state, "state"),
            (&with_body, "bodies"),
            (&with_checkpoint, "checkpoints"),
        ] {
            let refused = transfer(&from, target).expect_err("not empty");
            assert!(refused.to_string().contains(what), "{refused}");
            assert_eq!(target.size(), 0);
        }
    }

    #[test]
    fn a_copy_into_a_new_directory_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let from_dir = dir.path().join("from");
        let from = source(&from_dir, signer());
        std::fs::write(from_dir.join("policy.toml"), "# the gateway's\n").expect("write");
        let new = dir.path().join("nested/new");
        let done =
            transfer_into_dir(&from, &from_dir, &new, &OpenOptions::default()).expect("transfer");
        assert_eq!(done.entries, 700);
        assert_eq!(
            std::fs::read_to_string(new.join("policy.toml")).expect("copied"),
            "# the gateway's\n"
        );
        let names: Vec<_> = std::fs::read_dir(new.parent().expect("parent"))
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["new"], "nothing else beside it");
        let copy = Log::open_existing(&new, &OpenOptions::default()).expect("reopen");
        assert_eq!(contents(&copy), contents(&from));
        history_kept(&from, &copy);
        drop(copy);

        let refused = transfer_into_dir(&from, &from_dir, &new, &OpenOptions::default())
            .expect_err("not empty");
        assert!(refused.to_string().contains("not empty"), "{refused}");
        // A key directory whose key is not the log's: nothing is left.
        let stranger = dir.path().join("stranger");
        drop(source(&stranger, signer()));
        let other = dir.path().join("other");
        let refused = transfer_into_dir(&from, &stranger, &other, &OpenOptions::default())
            .expect_err("another key");
        assert!(matches!(refused, Error::KeyMismatch { .. }), "{refused}");
        assert!(!other.exists());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains("partial")), "{names:?}");
    }

    #[test]
    fn a_log_moves_into_postgres_and_back() {
        let server = xgate_tests::require_postgres!();
        let db = server.database();
        let dir = tempfile::tempdir().expect("tempdir");
        let key = signer();
        let from = source(&dir.path().join("from"), twin(&key));
        // A replica's directory: the key alone.
        let replica = dir.path().join("replica");
        crate::disk::DataDir::create(&replica, &OpenOptions::default())
            .and_then(|d| d.write_key(&key.to_private_key()))
            .expect("key");
        let pg = crate::pg::PgLog::open(db.url(), &replica, &OpenOptions::default()).expect("open");
        let done = transfer(&from, &pg).expect("transfer");
        assert_eq!((done.entries, done.keys, done.bodies), (700, 2, 2));
        assert_eq!(contents(&pg), contents(&from));
        history_kept(&from, &pg);
        pg.verify().expect("verifies");

        let back = dir.path().join("back");
        let done = transfer_into_dir(&pg, &replica, &back, &OpenOptions::default())
            .expect("transfer back");
        assert_eq!(done.entries, 700);
        let copy = Log::open_existing(&back, &OpenOptions::default()).expect("reopen");
        assert_eq!(contents(&copy), contents(&pg));
        history_kept(&pg, &copy);

        // A body of each kind under one key goes in two batches.
        let mut batch = WriteBatch::new();
        batch.put_body(b"Gboth".to_vec(), b"inbox".to_vec());
        pg.commit_writes(batch).expect("commit");
        let mut batch = WriteBatch::new();
        batch.put_kept(b"Gboth".to_vec(), b"kept".to_vec());
        pg.commit_writes(batch).expect("commit");
        let other = server.database();
        let pg_copy =
            crate::pg::PgLog::open(other.url(), &replica, &OpenOptions::default()).expect("open");
        assert_eq!(transfer(&pg, &pg_copy).expect("transfer").bodies, 4);
        assert_eq!(contents(&pg_copy), contents(&pg));
    }
}
