//! A log in a data directory: the sled database, the checkpoint signing key
//! and a lock that keeps a second process out.
//!
//! ```text
//! DIR/checkpoint.key   signed-note private key (mode 0600); its name is the origin
//! DIR/db/              the sled database
//! DIR/lock             advisory lock held while the log is open
//! ```

use std::fs::{self, File, OpenOptions as FsOpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fs2::FileExt;

use crate::checkpoint::{NoteSigner, check_name};
use crate::error::Error;
use crate::log::Log;
use crate::store_sled::SledStore;

/// Origin (and key name) of a new log when none is configured.
pub const DEFAULT_ORIGIN: &str = "localhost/xgate";
/// File holding the checkpoint signing key.
pub const KEY_FILE: &str = "checkpoint.key";
/// Directory holding the sled database.
pub const DB_DIR: &str = "db";
const LOCK_FILE: &str = "lock";

/// How to open a log directory.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Origin for a new log; for an existing log, must match if set.
    pub origin: Option<String>,
    /// sled page cache size in bytes: bounds resident memory whatever the
    /// log's size.
    pub cache_bytes: u64,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            origin: None,
            cache_bytes: 64 << 20,
        }
    }
}

impl Log<SledStore> {
    /// Opens the log in `dir`, creating the directory, key and database if
    /// they do not exist yet.
    ///
    /// # Errors
    /// [`Error::Locked`] if another process has it open, [`Error::OriginMismatch`]
    /// if `options.origin` differs from the existing log's, [`Error::NotALog`]
    /// or [`Error::Corrupt`] for a directory that holds something else.
    pub fn create_or_open(dir: &Path, options: &OpenOptions) -> Result<Log<SledStore>, Error> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let lock = lock_dir(dir)?;
        let key_path = dir.join(KEY_FILE);
        let signer = if key_path.exists() {
            read_key(dir, options)?
        } else if dir.join(DB_DIR).exists() {
            return Err(not_a_log(dir, "a database without checkpoint.key"));
        } else {
            let origin = options.origin.as_deref().unwrap_or(DEFAULT_ORIGIN);
            check_name(origin)?;
            let signer = NoteSigner::generate(origin)?;
            write_secret(&key_path, &signer.to_private_key())?;
            signer
        };
        open_db(dir, signer, options, true, lock)
    }

    /// Opens an existing log in `dir`; never creates anything but the lock file.
    ///
    /// # Errors
    /// As [`Log::create_or_open`], and [`Error::NotALog`] if `dir` is missing
    /// or has no log in it.
    pub fn open_existing(dir: &Path, options: &OpenOptions) -> Result<Log<SledStore>, Error> {
        if !dir.is_dir() {
            return Err(not_a_log(dir, "no such directory"));
        }
        if !dir.join(KEY_FILE).is_file() {
            return Err(not_a_log(dir, "no checkpoint.key"));
        }
        if !dir.join(DB_DIR).join("conf").is_file() {
            return Err(not_a_log(dir, "no database"));
        }
        let lock = lock_dir(dir)?;
        let signer = read_key(dir, options)?;
        open_db(dir, signer, options, false, lock)
    }
}

fn open_db(
    dir: &Path,
    signer: NoteSigner,
    options: &OpenOptions,
    create: bool,
    lock: File,
) -> Result<Log<SledStore>, Error> {
    let store = open_store(&dir.join(DB_DIR), options.cache_bytes)?;
    Log::open_inner(store, signer, create, Some(lock)).map_err(|e| match e {
        Error::NotALog { reason, .. } => not_a_log(dir, &reason),
        other => other,
    })
}

/// Opens the sled database, waiting out a previous handle from this process.
///
/// We hold the directory lock, so no other process has the database; but
/// sled releases its own file lock only when its epoch-based collector gets
/// round to freeing a dropped database, which can be a moment after `drop`.
fn open_store(path: &Path, cache_bytes: u64) -> Result<SledStore, Error> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match SledStore::open(path, cache_bytes) {
            Ok(store) => return Ok(store),
            Err(e) if e.0.contains("could not acquire lock") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(Error::Corrupt(format!("cannot open database: {}", e.0))),
        }
    }
}

fn lock_dir(dir: &Path) -> Result<File, Error> {
    let path = dir.join(LOCK_FILE);
    let file = FsOpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    file.try_lock_exclusive()
        .map_err(|_| Error::Locked(dir.to_path_buf()))?;
    Ok(file)
}

fn read_key(dir: &Path, options: &OpenOptions) -> Result<NoteSigner, Error> {
    let path = dir.join(KEY_FILE);
    let text = fs::read_to_string(&path).map_err(io(&path))?;
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

/// Writes a secret file atomically with mode 0600: a crash leaves either no
/// key or the whole key, never a torn one.
fn write_secret(path: &Path, contents: &str) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let mut file = FsOpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(contents.as_bytes())
        .and_then(|_| file.write_all(b"\n"))
        .and_then(|_| file.sync_all())
        .map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))?;
    let parent = path.parent().unwrap_or(Path::new("."));
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io(parent))
}

fn not_a_log(dir: &Path, reason: &str) -> Error {
    Error::NotALog {
        path: dir.to_path_buf(),
        reason: reason.to_owned(),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: PathBuf::from(path),
        source,
    }
}
