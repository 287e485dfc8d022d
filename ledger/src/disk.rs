//! A log's data directory: the journal, the tlog-tiles files, the body
//! files, the sled database of small state, the checkpoint signing key and
//! a lock that keeps a second process out. [`DataDir`] names and handles
//! these files; `log::open` opens the log from them
//! ([`Log::create_or_open`](crate::Log::create_or_open)).
//!
//! ```text
//! DIR/checkpoint.key              signed-note private key; its name is the origin
//! DIR/checkpoint                  the latest published checkpoint (the rollback anchor)
//! DIR/lock                        advisory lock held while the log is open
//! DIR/log/                        the C2SP tlog-tiles tree: serve or copy this directory
//! DIR/log/checkpoint              the latest published checkpoint
//! DIR/log/tile/<L>/<N>[.p/<W>]    tiles (full ones immutable, mode 0444)
//! DIR/log/tile/entries/<N>[.p/<W>] entry bundles
//! DIR/ledger/journal/<n>.jnl      the write-ahead journal: one record per commit
//! DIR/ledger/bodies/<n>.blb       bodies waiting to be dropped (inbox envelopes)
//! DIR/ledger/kept/<n>.blb         bodies kept for good
//! DIR/ledger/nodes/level-<L>      private interior tiles for fast proofs
//! DIR/ledger/checkpoints          every published checkpoint
//! DIR/ledger/integrated           how many entries the tile files hold
//! DIR/db/                         the sled database: small, mutable state only
//! ```
//!
//! The directories the log creates are private (mode 0700) except `log/`,
//! which is meant to be served (0755 inside the private data directory), and
//! so are the files it writes itself (0600), except the tlog-tiles files. sled creates its own files with the process's umask, which the
//! gateway sets to 077; the 0700 directory keeps them private either way.
//!
//! Creation order makes a half-created log recognisable: the database is
//! initialised first and the key written last, so a directory with a key
//! always has an initialised database, and a database without a key holds
//! nothing (creation is simply finished on the next open).
//!
//! The copy of the latest published checkpoint is what stops a damaged
//! journal from quietly becoming a shorter log under the same key: a log
//! whose journal and tiles are behind the checkpoint it handed out is
//! refused. Opening replays the journal into the files and the store.

use std::fs::{self, File, OpenOptions as FsOpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fs2::FileExt;

use crate::DiskStore;
use crate::checkpoint::{NoteSigner, NoteVerifier, SignedCheckpoint, check_name};
use crate::error::{Error, io_at};
use crate::fsutil::{create_private_dir, write_atomic};
use crate::store_sled::SledStore;

/// Origin (and key name) of a new log when none is configured.
pub const DEFAULT_ORIGIN: &str = "localhost/xgate";
/// File holding the checkpoint signing key.
pub const KEY_FILE: &str = "checkpoint.key";
/// File holding a copy of the latest signed checkpoint note.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// Directory holding the sled database.
pub const DB_DIR: &str = "db";
/// Directory holding the C2SP tlog-tiles tree (checkpoint, tiles, bundles).
pub const LOG_DIR: &str = "log";
/// Directory holding the journal, body files and the private proof tiles.
pub const LEDGER_DIR: &str = "ledger";
/// The directory of the tile files of the layout before the journal.
pub const TILES_DIR: &str = "tiles";
/// File locked while the log is open.
pub(crate) const LOCK_FILE: &str = "lock";

/// How long an open waits for a lock that is held before refusing.
const LOCK_PATIENCE: Duration = Duration::from_millis(250);

/// How to open a log directory.
#[derive(Clone)]
pub struct OpenOptions {
    /// Origin for a new log; for an existing log, must match if set.
    pub origin: Option<String>,
    /// The signing key of a new log, as Go's `PRIVATE+KEY+...` text
    /// ([`NoteSigner::to_private_key`]): a key made elsewhere, such as a
    /// federation gateway's, whose verifier key the federation's registry
    /// lists. The new log's origin is the key's name (`origin`, if also
    /// set, must be that name). For an existing log, if set, it must be
    /// the log's own key ([`Error::KeyMismatch`]). `None`: a new log gets
    /// a fresh key. Secret: [`Debug`](std::fmt::Debug) never shows it.
    pub key: Option<String>,
    /// sled page cache size in bytes. sled counts the on-disk size of the
    /// nodes it caches, so resident memory is a small multiple of this,
    /// whatever the log's size (see docs/performance.md).
    pub cache_bytes: u64,
    /// Witnesses vouch for what is served: the tlog-tiles `checkpoint`
    /// file is written only by [`Log::publish_cosigned`](crate::Log::publish_cosigned),
    /// with a checkpoint that reached the witnesses' quorum, never by the
    /// integrator. Default false: each published checkpoint goes there.
    pub witnessed: bool,
    /// Test builds only: the fault switch the journal and the store obey
    /// (by default, one reading `XGATE_FAULT_FILE`).
    #[cfg(feature = "faults")]
    pub faults: Option<std::sync::Arc<crate::faults::Switch>>,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            origin: None,
            key: None,
            cache_bytes: 16 << 20,
            witnessed: false,
            #[cfg(feature = "faults")]
            faults: None,
        }
    }
}

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("OpenOptions");
        out.field("origin", &self.origin)
            .field("key", &self.key.as_ref().map(|_| "<secret>"))
            .field("cache_bytes", &self.cache_bytes)
            .field("witnessed", &self.witnessed);
        #[cfg(feature = "faults")]
        out.field("faults", &self.faults.is_some());
        out.finish()
    }
}

impl OpenOptions {
    /// The signer [`OpenOptions::key`] holds, checked against
    /// [`OpenOptions::origin`]; `None` if no key is given.
    ///
    /// # Errors
    /// [`Error::Invalid`] for text that is not a note private key, or a
    /// key whose name is not the requested origin. Messages never carry
    /// key material.
    pub(crate) fn given_signer(&self) -> Result<Option<NoteSigner>, Error> {
        let Some(text) = &self.key else {
            return Ok(None);
        };
        let signer = NoteSigner::from_private_key(text).map_err(|e| {
            Error::Invalid(format!(
                "the signing key given for the log is unusable: {e}"
            ))
        })?;
        if let Some(origin) = self.origin.as_deref().filter(|o| *o != signer.name()) {
            return Err(Error::Invalid(format!(
                "the signing key given for the log is named {:?}, but origin {origin:?} was \
                 requested: a log's origin is its key's name",
                signer.name()
            )));
        }
        Ok(Some(signer))
    }
}

/// A verifier key's name and id, `<name>+<hex id>`: what messages name a
/// key by (its material is never shown).
pub(crate) fn key_label(verifier: &NoteVerifier) -> String {
    format!(
        "{}+{}",
        verifier.name(),
        crate::note::hex_id(verifier.key_id())
    )
}

/// [`Error::KeyMismatch`] unless `given` (if any) is `existing`'s key.
pub(crate) fn check_key(existing: &NoteSigner, given: Option<&NoteSigner>) -> Result<(), Error> {
    match given {
        Some(given) if given.verifier() != existing.verifier() => Err(Error::KeyMismatch {
            existing: key_label(&existing.verifier()),
            given: key_label(&given.verifier()),
        }),
        _ => Ok(()),
    }
}

/// The verifier key of the log in `dir`, read from its key file alone, so
/// it works while another process (a running gateway) has the log open.
///
/// # Errors
/// [`Error::NotALog`] if `dir` holds no log, [`Error::Corrupt`] for an
/// unreadable key.
pub fn verifier_of(dir: &Path) -> Result<NoteVerifier, Error> {
    let dir = DataDir::existing(dir)?;
    Ok(dir.read_key(&OpenOptions::default())?.verifier())
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
    SignedCheckpoint::open(note, &verifier)
        .map(Some)
        .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))
}

/// A data directory as the log's opening sees it: where each of its files
/// is, and the steps that read, create and lock them. The log itself is
/// opened from these in `log::open`.
pub(crate) struct DataDir<'a> {
    path: &'a Path,
}

impl<'a> DataDir<'a> {
    /// `path`, created (mode 0700) if missing, for a log that may be new.
    pub fn create(path: &'a Path, options: &OpenOptions) -> Result<DataDir<'a>, Error> {
        if let Some(origin) = &options.origin {
            check_name(origin)?;
        }
        // A key that cannot be the log's is refused before anything exists.
        options.given_signer()?;
        let dir = DataDir { path };
        if path.exists() && !path.is_dir() {
            return Err(dir.not_a_log("not a directory"));
        }
        create_private_dir(path).map_err(io_at(path))?;
        Ok(dir)
    }

    /// `path`, which must already hold a log (a key and a database).
    pub fn existing(path: &'a Path) -> Result<DataDir<'a>, Error> {
        let dir = DataDir { path };
        if !path.exists() {
            return Err(dir.not_a_log("no such directory"));
        }
        if !path.is_dir() {
            return Err(dir.not_a_log("not a directory"));
        }
        if !path.join(KEY_FILE).is_file() {
            return Err(dir.not_a_log("no checkpoint.key"));
        }
        if !path.join(DB_DIR).join("conf").is_file() {
            return Err(dir.not_a_log("no database"));
        }
        Ok(dir)
    }

    /// Takes the directory's advisory lock, held until the file is dropped.
    pub fn lock(&self) -> Result<File, Error> {
        let path = self.path.join(LOCK_FILE);
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
                Err(_) => return Err(Error::Locked(self.path.to_path_buf())),
            }
        }
    }

    /// Whether the signing key has been written (creation finished).
    pub fn has_key(&self) -> bool {
        self.path.join(KEY_FILE).exists()
    }

    /// The signing key, which must be `options.key` if that is set, and
    /// whose name must be `options.origin` if that is set.
    pub fn read_key(&self, options: &OpenOptions) -> Result<NoteSigner, Error> {
        let path = self.path.join(KEY_FILE);
        let text = fs::read_to_string(&path).map_err(io_at(&path))?;
        let signer = NoteSigner::from_private_key(&text)
            .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
        check_key(&signer, options.given_signer()?.as_ref())?;
        if let Some(origin) = options.origin.as_deref().filter(|o| *o != signer.name()) {
            return Err(Error::OriginMismatch {
                existing: signer.name().to_owned(),
                requested: origin.to_owned(),
            });
        }
        Ok(signer)
    }

    /// Writes the signing key (in `PRIVATE+KEY+...` form): the last step of
    /// creating a log.
    pub fn write_key(&self, private_key: &str) -> Result<(), Error> {
        let path = self.path.join(KEY_FILE);
        let text = format!("{private_key}\n");
        write_atomic(&path, text.as_bytes(), 0o600).map_err(io_at(&path))
    }

    /// Opens the database (creating it, mode 0700, if needed), waiting out
    /// a previous handle from this process.
    ///
    /// We hold the directory lock, so no other process has the database;
    /// but sled releases its own file lock only when its epoch-based
    /// collector gets round to freeing a dropped database, which can be a
    /// moment after `drop`.
    pub fn open_store(&self, options: &OpenOptions) -> Result<DiskStore, Error> {
        let cache_bytes = options.cache_bytes;
        // sled would create it with the umask's mode.
        let path = self.path.join(DB_DIR);
        create_private_dir(&path).map_err(io_at(&path))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match SledStore::open(&path, cache_bytes) {
                Ok(store) => return Ok(disk_store(store, options)),
                // sled reports its lock only in the message of an I/O error.
                Err(e) if e.0.contains("could not acquire lock") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(Error::Corrupt(format!("cannot open database: {}", e.0))),
            }
        }
    }

    /// The file holding the copy of the latest checkpoint.
    pub fn mirror(&self) -> PathBuf {
        self.path.join(CHECKPOINT_FILE)
    }

    /// The served tlog-tiles directory.
    pub fn log(&self) -> PathBuf {
        self.path.join(LOG_DIR)
    }

    /// The directory of the journal, body files and private tiles.
    pub fn ledger(&self) -> PathBuf {
        self.path.join(LEDGER_DIR)
    }

    /// The one file sled 0.34 writes its whole log to: synced by the
    /// integrator before the journal records it holds are released.
    pub fn store_file(&self) -> PathBuf {
        self.path.join(DB_DIR).join("db")
    }

    /// The journal's options: in test builds, obeying the fault switch.
    pub fn journal_options(&self, options: &OpenOptions) -> crate::journal::JournalOptions {
        journal_options(options)
    }

    /// [`Error::NotALog`] for this directory.
    pub fn not_a_log(&self, reason: &str) -> Error {
        Error::NotALog {
            path: self.path.to_path_buf(),
            reason: reason.to_owned(),
        }
    }

    /// The directory's path, for messages.
    pub fn path(&self) -> &Path {
        self.path
    }
}

#[cfg(not(feature = "faults"))]
fn disk_store(store: SledStore, _: &OpenOptions) -> DiskStore {
    store
}

/// In test builds the store obeys the fault switch: the one in `options`,
/// or one reading the fault file `XGATE_FAULT_FILE` names.
#[cfg(feature = "faults")]
fn disk_store(store: SledStore, options: &OpenOptions) -> DiskStore {
    crate::faults::Faulty::new(store, switch(options))
}

#[cfg(feature = "faults")]
fn switch(options: &OpenOptions) -> std::sync::Arc<crate::faults::Switch> {
    options
        .faults
        .clone()
        .unwrap_or_else(|| std::sync::Arc::new(crate::faults::Switch::from_env()))
}

#[cfg(not(feature = "faults"))]
fn journal_options(_: &OpenOptions) -> crate::journal::JournalOptions {
    crate::journal::JournalOptions::default()
}

/// In test builds the journal obeys the same fault switch as the store.
#[cfg(feature = "faults")]
fn journal_options(options: &OpenOptions) -> crate::journal::JournalOptions {
    crate::journal::JournalOptions {
        fault: Some(crate::journal::hook_from_switch(switch(options))),
        ..crate::journal::JournalOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Log;

    fn with_key(signer: &NoteSigner) -> OpenOptions {
        OpenOptions {
            key: Some(signer.to_private_key()),
            ..OpenOptions::default()
        }
    }

    fn refused(result: Result<Log, Error>) -> Error {
        match result {
            Ok(_) => panic!("opened"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_new_log_is_signed_by_the_key_given_and_named_after_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let signer = NoteSigner::generate("xgate/hub").expect("key");
        let log = Log::create_or_open(&dir, &with_key(&signer)).expect("create");
        assert_eq!(log.verifier(), signer.verifier());
        assert_eq!(log.origin(), "xgate/hub");
        drop(log);
        // The key file holds that key, private to its owner.
        let text = fs::read_to_string(dir.join(KEY_FILE)).expect("key file");
        assert_eq!(text, format!("{}\n", signer.to_private_key()));
        let mode = fs::metadata(dir.join(KEY_FILE)).expect("meta");
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        assert_eq!(verifier_of(&dir).expect("verifier"), signer.verifier());
        // Opened again with the same key, or with none: the same log.
        let log = Log::create_or_open(&dir, &with_key(&signer)).expect("reopen");
        assert_eq!(log.verifier(), signer.verifier());
        drop(log);
        let log = Log::open_existing(&dir, &OpenOptions::default()).expect("reopen");
        assert_eq!(log.verifier(), signer.verifier());
    }

    #[test]
    fn an_existing_log_refuses_another_key_naming_both_ids_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let hub = NoteSigner::generate("xgate/hub").expect("key");
        drop(Log::create_or_open(&dir, &with_key(&hub)).expect("create"));
        let other = NoteSigner::generate("xgate/g-c").expect("key");
        for result in [
            Log::create_or_open(&dir, &with_key(&other)),
            Log::open_existing(&dir, &with_key(&other)),
        ] {
            let Err(err) = result else {
                panic!("another key opened the log")
            };
            let Error::KeyMismatch { existing, given } = &err else {
                panic!("not a key mismatch: {err}")
            };
            assert_eq!(*existing, key_label(&hub.verifier()));
            assert_eq!(*given, key_label(&other.verifier()));
            let message = err.to_string();
            assert!(message.contains("xgate/hub+") && message.contains("xgate/g-c+"));
            // Neither key's material (private or public) is in it.
            for signer in [&hub, &other] {
                let private = signer.to_private_key();
                let public = signer.verifier().to_string();
                let secret = private.splitn(5, '+').nth(4).expect("material");
                let material = public.splitn(3, '+').nth(2).expect("material");
                assert!(!message.contains(secret) && !message.contains(material));
            }
        }
        // The same name with another key is refused too.
        let twin = NoteSigner::generate("xgate/hub").expect("key");
        assert!(matches!(
            Log::create_or_open(&dir, &with_key(&twin)),
            Err(Error::KeyMismatch { .. })
        ));
    }

    #[test]
    fn an_unusable_key_or_one_named_otherwise_creates_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let garbage = OpenOptions {
            key: Some("PRIVATE+KEY+xgate/hub+00000000+AAAA".into()),
            ..OpenOptions::default()
        };
        let err = refused(Log::create_or_open(&dir, &garbage));
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        assert!(!err.to_string().contains("AAAA"), "{err}");
        let signer = NoteSigner::generate("xgate/hub").expect("key");
        let named_otherwise = OpenOptions {
            origin: Some("xgate/other".into()),
            ..with_key(&signer)
        };
        let err = refused(Log::create_or_open(&dir, &named_otherwise));
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        assert!(!dir.exists(), "nothing was created");
        let same_name = OpenOptions {
            origin: Some("xgate/hub".into()),
            ..with_key(&signer)
        };
        let log = Log::create_or_open(&dir, &same_name).expect("origin is the key's name");
        assert_eq!(log.verifier(), signer.verifier());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let signer = NoteSigner::generate("xgate/hub").expect("key");
        let options = with_key(&signer);
        let shown = format!("{options:?}");
        let private = signer.to_private_key();
        // PRIVATE+KEY+<name>+<id>+<material>; base64 material may hold `+`.
        let secret = private.splitn(5, '+').nth(4).expect("material");
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("<secret>"), "{shown}");
    }
}
