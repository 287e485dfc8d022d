//! A log in a data directory: the sled database, the checkpoint signing key
//! and a lock that keeps a second process out.
//!
//! ```text
//! DIR/checkpoint.key   signed-note private key; its name is the origin
//! DIR/checkpoint       the latest signed checkpoint, kept outside the database
//! DIR/db/              the sled database
//! DIR/tiles/level-N    copies of the full tiles of tile level N, for fast
//!                      proofs; rebuilt from the database when needed
//! DIR/lock             advisory lock held while the log is open
//! ```
//!
//! The directories the log creates are private (mode 0700), and so are the
//! files it writes itself (0600): the key, the checkpoint copy, the tiles and
//! the lock. sled creates its own files with the process's umask, which the
//! gateway sets to 077; the 0700 directory keeps them private either way.
//!
//! Creation order makes a half-created log recognisable: the database is
//! initialised first and the key written last, so a directory with a key
//! always has an initialised database, and a database without a key holds
//! nothing (creation is simply finished on the next open).
//!
//! The copy of the latest checkpoint outside sled is what stops a damaged
//! database from quietly becoming a shorter log under the same key: a
//! database that is behind the checkpoint the log last handed out is refused.
//! Opening runs sled's recovery, which may rewrite sled's own files; the
//! log's contents are not changed by opening.

use std::fs::{self, File, OpenOptions as FsOpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use fs2::FileExt;

use crate::DiskStore;
use crate::checkpoint::{NoteSigner, NoteVerifier, check_name, verify_checkpoint};
use crate::error::{Error, io_at};
use crate::fsutil::{create_private_dir, write_atomic};
use crate::log::{Attached, Log, SignedCheckpoint};
use crate::store_sled::SledStore;

/// Origin (and key name) of a new log when none is configured.
pub const DEFAULT_ORIGIN: &str = "localhost/xgate";
/// File holding the checkpoint signing key.
pub const KEY_FILE: &str = "checkpoint.key";
/// File holding a copy of the latest signed checkpoint note.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// Directory holding the sled database.
pub const DB_DIR: &str = "db";
/// Directory holding the tile files.
pub const TILES_DIR: &str = "tiles";
/// File locked while the log is open.
pub(crate) const LOCK_FILE: &str = "lock";

/// How to open a log directory.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Origin for a new log; for an existing log, must match if set.
    pub origin: Option<String>,
    /// sled page cache size in bytes. sled counts the on-disk size of the
    /// nodes it caches, so resident memory is a small multiple of this,
    /// whatever the log's size (see docs/performance.md).
    pub cache_bytes: u64,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            origin: None,
            cache_bytes: 16 << 20,
        }
    }
}

impl Log<DiskStore> {
    /// Opens the log in `dir`, creating the directory, key and database if
    /// they do not exist yet.
    ///
    /// # Errors
    /// [`Error::Locked`] if another process has it open, [`Error::OriginMismatch`]
    /// if `options.origin` differs from the existing log's, [`Error::NotALog`]
    /// or [`Error::Corrupt`] for a directory that holds something else.
    pub fn create_or_open(dir: &Path, options: &OpenOptions) -> Result<Log<DiskStore>, Error> {
        if let Some(origin) = &options.origin {
            check_name(origin)?;
        }
        if dir.exists() && !dir.is_dir() {
            return Err(not_a_log(dir, "not a directory"));
        }
        create_private_dir(dir).map_err(io_at(dir))?;
        let lock = lock_dir(dir)?;
        let key_path = dir.join(KEY_FILE);
        if key_path.exists() {
            let signer = read_key(dir, options)?;
            return open_db(dir, signer, options, false, lock);
        }
        // A new log, or one whose creation was interrupted before the key
        // was written (then its database is initialised but empty).
        let signer = NoteSigner::generate(options.origin.as_deref().unwrap_or(DEFAULT_ORIGIN))?;
        let private_key = signer.to_private_key();
        let log = open_db(dir, signer, options, true, lock)?;
        if log.size() > 0 || log.latest_checkpoint().is_some() {
            return Err(Error::Corrupt(format!(
                "{} holds a log but its {KEY_FILE} is missing",
                dir.display()
            )));
        }
        write_atomic(&key_path, format!("{private_key}\n").as_bytes(), 0o600)
            .map_err(io_at(&key_path))?;
        Ok(log)
    }

    /// Opens an existing log in `dir`; never creates anything but the lock file.
    ///
    /// # Errors
    /// As [`Log::create_or_open`], and [`Error::NotALog`] if `dir` is missing
    /// or has no log in it.
    pub fn open_existing(dir: &Path, options: &OpenOptions) -> Result<Log<DiskStore>, Error> {
        check_log_dir(dir)?;
        let lock = lock_dir(dir)?;
        let signer = read_key(dir, options)?;
        open_db(dir, signer, options, false, lock)
    }
}

/// The verifier key of the log in `dir`, read from its key file alone, so
/// it works while another process (a running gateway) has the log open.
///
/// # Errors
/// [`Error::NotALog`] if `dir` holds no log, [`Error::Corrupt`] for an
/// unreadable key.
pub fn verifier_of(dir: &Path) -> Result<NoteVerifier, Error> {
    check_log_dir(dir)?;
    Ok(read_key(dir, &OpenOptions::default())?.verifier())
}

/// The latest checkpoint the log in `dir` published outside its database
/// (the `checkpoint` file), checked against the log's key. It works while
/// another process has the log open; a gateway signing a checkpoint per
/// commit refreshes the file at least once a second, so it may trail the
/// database by that much. `None` if the log never signed one.
///
/// # Errors
/// [`Error::NotALog`] if `dir` holds no log, [`Error::Corrupt`] if the file
/// does not verify.
pub fn published_checkpoint(dir: &Path) -> Result<Option<SignedCheckpoint>, Error> {
    let verifier = verifier_of(dir)?;
    let path = dir.join(CHECKPOINT_FILE);
    let note = match fs::read_to_string(&path) {
        Ok(note) => note,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at(&path)(e)),
    };
    let checkpoint = verify_checkpoint(&note, &verifier)
        .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
    Ok(Some(SignedCheckpoint { checkpoint, note }))
}

/// The checks `open_existing` makes before taking the lock.
fn check_log_dir(dir: &Path) -> Result<(), Error> {
    if !dir.exists() {
        return Err(not_a_log(dir, "no such directory"));
    }
    if !dir.is_dir() {
        return Err(not_a_log(dir, "not a directory"));
    }
    if !dir.join(KEY_FILE).is_file() {
        return Err(not_a_log(dir, "no checkpoint.key"));
    }
    if !dir.join(DB_DIR).join("conf").is_file() {
        return Err(not_a_log(dir, "no database"));
    }
    Ok(())
}

fn open_db(
    dir: &Path,
    signer: NoteSigner,
    options: &OpenOptions,
    create: bool,
    lock: File,
) -> Result<Log<DiskStore>, Error> {
    // sled would create it with the umask's mode.
    let db = dir.join(DB_DIR);
    create_private_dir(&db).map_err(io_at(&db))?;
    let store = open_store(&db, options.cache_bytes)?;
    let attached = Attached {
        dir_lock: Some(lock),
        mirror: Some(dir.join(CHECKPOINT_FILE)),
        tiles: Some(dir.join(TILES_DIR)),
    };
    Log::open_inner(store, signer, create, attached).map_err(|e| match e {
        Error::NotALog { reason, .. } => not_a_log(dir, &reason),
        other => other,
    })
}

/// Opens the sled database, waiting out a previous handle from this process.
///
/// We hold the directory lock, so no other process has the database; but
/// sled releases its own file lock only when its epoch-based collector gets
/// round to freeing a dropped database, which can be a moment after `drop`.
fn open_store(path: &Path, cache_bytes: u64) -> Result<DiskStore, Error> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match SledStore::open(path, cache_bytes) {
            Ok(store) => return Ok(disk_store(store)),
            Err(e) if e.0.contains("could not acquire lock") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(Error::Corrupt(format!("cannot open database: {}", e.0))),
        }
    }
}

#[cfg(not(feature = "faults"))]
fn disk_store(store: SledStore) -> DiskStore {
    store
}

/// In test builds the store obeys the fault file `XGATE_FAULT_FILE` names.
#[cfg(feature = "faults")]
fn disk_store(store: SledStore) -> DiskStore {
    crate::faults::Faulty::new(
        store,
        std::sync::Arc::new(crate::faults::Switch::from_env()),
    )
}

fn lock_dir(dir: &Path) -> Result<File, Error> {
    let path = dir.join(LOCK_FILE);
    let file = FsOpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_at(&path))?;
    // A lock released a moment ago can still be held by a child process
    // that another thread of this process is starting: the child shares
    // the lock until it execs. Wait that out briefly before refusing.
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        match file.try_lock_exclusive() {
            Ok(()) => return Ok(file),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => return Err(Error::Locked(dir.to_path_buf())),
        }
    }
}

/// How long an open waits for a lock that is held before refusing.
const LOCK_PATIENCE: Duration = Duration::from_millis(250);

fn read_key(dir: &Path, options: &OpenOptions) -> Result<NoteSigner, Error> {
    let path = dir.join(KEY_FILE);
    let text = fs::read_to_string(&path).map_err(io_at(&path))?;
    let signer = NoteSigner::from_private_key(&text)
        .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
    if let Some(origin) = options.origin.as_deref().filter(|o| *o != signer.name()) {
        return Err(Error::OriginMismatch {
            existing: signer.name().to_owned(),
            requested: origin.to_owned(),
        });
    }
    Ok(signer)
}

fn not_a_log(dir: &Path, reason: &str) -> Error {
    Error::NotALog {
        path: dir.to_path_buf(),
        reason: reason.to_owned(),
    }
}
