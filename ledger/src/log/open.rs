//! Opening a data directory and recovering the log: [`Log::create_or_open`],
//! [`Log::open_existing`].
//!
//! Recovery reads no more than it must, whatever the log's size:
//!
//! 1. `ledger/integrated` says how many entries (a multiple of 256) the
//!    tile files hold; the sidecar is cut back to what that implies, and
//!    temporaries a crash left among the tiles are removed;
//! 2. the right edge at that size is rebuilt from fewer than 16 tile roots
//!    per level;
//! 3. the journal is replayed from its oldest record: entries past the
//!    files go back into the edge and into `pending`, bodies back to their
//!    places, and the writes of every record the store does not hold yet
//!    (its `La` key says which) back into the store;
//! 4. the latest checkpoints (from the journal, the published ones and the
//!    mirror file) are checked against the tree: a journal behind a
//!    checkpoint the log handed out is refused, never reopened as a
//!    shorter log;
//! 5. the bodies still referenced are pinned, so the integrator reclaims
//!    only files nobody needs.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use super::edge::Edge;
use super::head::Head;
use super::latest::Latest;
use super::notes::Notes;
use super::pending::Pending;
use super::progress::{Progress, Publish};
use super::record;
use super::worker::Integrator;
use super::{Log, Shared};
use crate::DiskStore;
use crate::blobs::{BlobOptions, Blobs, Locator};
use crate::checkpoint::{NoteSigner, NoteVerifier, SignedCheckpoint};
use crate::disk::{DEFAULT_ORIGIN, DataDir, KEY_FILE, OpenOptions, check_key};
use crate::error::{Error, io_at};
use crate::hash::leaf_hash;
use crate::journal::Journal;
use crate::layout::{self, FORMAT, FORMAT_KEY, FORMAT_V2};
use crate::nodes::Nodes;
use crate::store::{Store, WriteBatch};
use crate::tlog::{self, TileDir};

impl Log<DiskStore> {
    /// Opens the log in `dir`, creating the directory, key and files if
    /// they do not exist yet; a new log is signed by `options.key` if that
    /// is set, else by a fresh key.
    ///
    /// # Errors
    /// [`Error::Locked`] if another process has it open, [`Error::OriginMismatch`]
    /// if `options.origin` differs from the existing log's,
    /// [`Error::KeyMismatch`] if `options.key` is not its key,
    /// [`Error::Invalid`] for an unusable `options.key`, [`Error::NotALog`]
    /// or [`Error::Corrupt`] for a directory that holds something else.
    pub fn create_or_open(dir: &Path, options: &OpenOptions) -> Result<Log<DiskStore>, Error> {
        let dir = DataDir::create(dir, options)?;
        let lock = dir.lock()?;
        if dir.has_key() {
            let signer = dir.read_key(options)?;
            return Self::open_dir(&dir, signer, options, false, lock);
        }
        // A new log, or one whose creation was interrupted before the key
        // was written (then its store is initialised but the log empty).
        // A published checkpoint means a log that lost its key.
        if dir.mirror().exists() || dir.log().join(crate::tlog::path::CHECKPOINT).exists() {
            return Err(key_missing(&dir));
        }
        let signer = match options.given_signer()? {
            Some(given) => given,
            None => NoteSigner::generate(options.origin.as_deref().unwrap_or(DEFAULT_ORIGIN))?,
        };
        let private_key = signer.to_private_key();
        let log = Self::open_dir(&dir, signer, options, true, lock)?;
        if log.shared.head.durable() > 0 || log.shared.latest.get().is_some() {
            return Err(key_missing(&dir));
        }
        dir.write_key(&private_key)?;
        Ok(log)
    }

    /// Creates a new log in `dir` (missing or empty) whose checkpoints
    /// `signer` signs: for a key that comes from elsewhere (a test vector,
    /// a migration).
    ///
    /// # Errors
    /// [`Error::Invalid`] if `dir` already holds files; as
    /// [`Log::create_or_open`] otherwise.
    pub fn create_with_signer(
        dir: &Path,
        signer: NoteSigner,
        options: &OpenOptions,
    ) -> Result<Log<DiskStore>, Error> {
        if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
            return Err(Error::Invalid(format!(
                "{} is not empty; a log with a given key is created in a new directory",
                dir.display()
            )));
        }
        let private_key = signer.to_private_key();
        let log = Self::create_with(dir, signer, options)?;
        DataDir::create(dir, options)?.write_key(&private_key)?;
        Ok(log)
    }

    /// Creates a log in `dir` signed by `signer`, without writing its key
    /// file: for a migration, which writes the key last. `options.key`, if
    /// set, must be `signer`'s key.
    pub(crate) fn create_with(
        dir: &Path,
        signer: NoteSigner,
        options: &OpenOptions,
    ) -> Result<Log<DiskStore>, Error> {
        check_key(&signer, options.given_signer()?.as_ref())?;
        let dir = DataDir::create(dir, options)?;
        let lock = dir.lock()?;
        Self::open_dir(&dir, signer, options, true, lock)
    }

    /// Opens an existing log in `dir`; never creates anything but the lock
    /// file (and the log's own files, if a crash interrupted their creation).
    ///
    /// # Errors
    /// As [`Log::create_or_open`], and [`Error::NotALog`] if `dir` is missing
    /// or has no log in it.
    pub fn open_existing(dir: &Path, options: &OpenOptions) -> Result<Log<DiskStore>, Error> {
        let dir = DataDir::existing(dir)?;
        let lock = dir.lock()?;
        let signer = dir.read_key(options)?;
        Self::open_dir(&dir, signer, options, false, lock)
    }

    /// Opens the files of `dir` and recovers the log in them.
    fn open_dir(
        dir: &DataDir<'_>,
        signer: NoteSigner,
        options: &OpenOptions,
        create: bool,
        lock: std::fs::File,
    ) -> Result<Log<DiskStore>, Error> {
        let store = dir.open_store(options)?;
        check_format(&store, create, &dir.store_file()).map_err(|e| match e {
            Error::NotALog { reason, .. } => dir.not_a_log(&reason),
            other => other,
        })?;
        let verifier = signer.verifier();
        let mirrored = read_mirror(&dir.mirror(), &verifier)?;

        let tiles = TileDir::open(&dir.log())?;
        tiles.remove_temporaries()?;
        let ledger = dir.ledger();
        crate::fsutil::create_private_dir(&ledger).map_err(io_at(&ledger))?;
        let integrated_file = ledger.join("integrated");
        let base = read_integrated(&integrated_file)?;
        let (notes, published) = Notes::open(&ledger.join("checkpoints"))?;
        let last_published = match published.last() {
            Some((size, note)) => Some(parse_signed(
                note.as_bytes(),
                &verifier,
                &format!("published checkpoint {size}"),
            )?),
            None => None,
        };
        let shared = Arc::new(Shared {
            journal: Box::new(Journal::open(
                &ledger.join("journal"),
                dir.journal_options(options),
            )?),
            nodes: Nodes::open(&ledger.join("nodes"), base)?,
            bodies: Blobs::open(&ledger.join("bodies"), BlobOptions::default())?,
            kept: Blobs::open(
                &ledger.join("kept"),
                BlobOptions {
                    reclaim: false,
                    ..BlobOptions::default()
                },
            )?,
            store_file: dir.store_file(),
            store,
            tiles,
            notes,
            integrated_file,
            writer: Mutex::new(()),
            head: Head::new(Arc::new(Edge::rebuild(0, |_, _| unreachable_top())?)),
            pending: RwLock::new(Pending::new(base)),
            latest: Latest::new(signer, Some(dir.mirror()), None, mirrored.clone()),
            progress: Mutex::new(Progress::new(
                base,
                last_published.as_ref().map_or(0, |p| p.checkpoint.size),
            )),
            broken: AtomicBool::new(false),
            witnessed: options.witnessed,
            _dir_lock: lock,
        });

        // The edge where the files end, then the journal past it.
        let reader = shared.reader();
        let mut edge = Edge::rebuild(base, |level, index| reader.tile_root(level, index))?;
        drop(reader);
        let journaled = shared.replay(&mut edge)?;
        let size = edge.size();
        shared.head.applied(Arc::new(edge));
        shared.head.synced(size);

        let reader = shared.reader();
        if let Some(published) = &last_published {
            shared.latest.was_published(published);
        }
        let latest = [journaled, last_published, mirrored]
            .into_iter()
            .flatten()
            .max_by_key(|c| c.checkpoint.size);
        for signed in latest.iter() {
            reader.agrees_with(&signed.checkpoint)?;
        }
        drop(reader);
        if let Some(signed) = latest {
            shared.latest.advance(&signed);
        }
        shared.pin_bodies()?;
        if options.witnessed {
            // What is served only moves forward, across restarts too; a
            // file that does not verify is replaced by the next quorum.
            let verifier = shared.latest.verifier();
            let served = shared
                .tiles
                .read_checkpoint()?
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .and_then(|note| crate::checkpoint::verify_checkpoint(&note, &verifier).ok())
                .map_or(0, |c| c.size);
            super::lock::lock(&shared.progress).served = served;
        }
        let rounds = Arc::clone(&shared);
        let integrator = Integrator::start(
            move |publish: Publish| {
                // A failed round is recorded (`Log::integration_failure`)
                // and tried again; the journal keeps everything meanwhile.
                let _ = rounds.integrate(publish);
            },
            size,
        )?;
        Ok(Log {
            shared,
            integrator: Some(integrator),
        })
    }
}

impl<S: Store> Shared<S> {
    /// Replays the journal onto `edge` (the tree as far as the files hold
    /// it), `pending` and the store; returns the latest checkpoint a record
    /// holds.
    fn replay(&self, edge: &mut Edge) -> Result<Option<SignedCheckpoint>, Error> {
        let verifier = self.latest.verifier();
        let applied = self.applied()?;
        let first = self.journal.first_seq();
        let next = self.journal.next_seq();
        if applied.is_some_and(|a| a >= next) {
            return Err(Error::Corrupt(format!(
                "the store applied journal record {}, past the journal's end ({next})",
                applied.unwrap_or_default()
            )));
        }
        if first > applied.map_or(0, |a| a + 1) {
            return Err(Error::Corrupt(format!(
                "the store holds journal records up to {} only, and the journal starts at \
                 {first}: the store lost writes the journal no longer has",
                applied.map_or_else(|| "none".to_owned(), |a| a.to_string())
            )));
        }
        let mut note = None;
        let mut pending = self.pending_write();
        for item in self.journal.read_from(first)? {
            let (seq, payload) = item?;
            let record = record::decode(seq, &payload)?;
            if let Some((first, entries)) = &record.entries {
                let end = first + entries.len() as u64;
                if *first > edge.size() {
                    return Err(Error::Corrupt(format!(
                        "journal record {seq} starts at entry {first}, but the log \
                         continues at {}",
                        edge.size()
                    )));
                }
                // Entries below the edge are in the tile files already.
                if end > edge.size() {
                    let fresh = &entries[(edge.size() - first) as usize..];
                    let from = edge.size();
                    let mut tiles = Vec::new();
                    for e in fresh {
                        edge.push_leaf(leaf_hash(e), &mut tiles);
                    }
                    pending.push(seq, from, fresh, tiles);
                }
            }
            self.write_bodies(&record.bodies)?;
            if applied.is_none_or(|a| seq > a) {
                self.apply(seq, record.writes)?;
            }
            if let Some(n) = record.checkpoint {
                note = Some(n);
            }
        }
        drop(pending);
        match note {
            Some(n) => Ok(Some(parse_signed(
                n.as_bytes(),
                &verifier,
                "checkpoint in the journal",
            )?)),
            None => Ok(None),
        }
    }

    /// Pins every body the store still refers to, then lets the body files
    /// be reclaimed.
    fn pin_bodies(&self) -> Result<(), Error> {
        for kv in self.store.scan_prefix(layout::BODY_PREFIX) {
            let (_, value) = kv?;
            let at = Locator::from_bytes(value.as_ref())
                .ok_or_else(|| Error::Corrupt("a body locator is malformed".into()))?;
            self.bodies.pin(&at);
        }
        self.bodies.ready();
        Ok(())
    }
}

/// The error for a directory holding a log without its key.
fn key_missing(dir: &DataDir<'_>) -> Error {
    Error::Corrupt(format!(
        "{} holds a log but its {KEY_FILE} is missing",
        dir.path().display(),
    ))
}

/// Never called: an edge of size 0 has no full tile below it.
fn unreachable_top() -> Result<crate::hash::Hash, Error> {
    Err(Error::Corrupt("an empty tree has no tiles".into()))
}

/// Checks the store's format marker; with `create`, makes an empty store
/// a new, empty log.
fn check_format<S: Store>(store: &S, create: bool, store_file: &Path) -> Result<(), Error> {
    match store.get(FORMAT_KEY)? {
        Some(f) if f.as_slice() == FORMAT => Ok(()),
        Some(f) if f.as_slice() == FORMAT_V2 => Err(not_a_log(
            "it is in the layout before xgate 0.19 (everything in one sled database); \
             convert it with `xgate log migrate --data-dir OLD --into NEW`",
        )),
        Some(_) => Err(not_a_log("unknown format marker")),
        None if create => {
            // Only an empty store becomes a log: never adopt someone
            // else's data.
            if store.scan_prefix(b"").next().is_some() {
                return Err(not_a_log(
                    "the database holds data that is not an xgate log",
                ));
            }
            let mut batch = WriteBatch::new();
            batch.put(FORMAT_KEY.to_vec(), FORMAT.to_vec());
            store.apply(batch)?;
            store.sync()?;
            match std::fs::File::open(store_file) {
                Ok(f) => f.sync_data().map_err(io_at(store_file))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(store_file)(e)),
            }
            Ok(())
        }
        None => Err(Error::Corrupt(
            "database has no xgate format marker: it is empty or damaged".into(),
        )),
    }
}

/// The number of entries the tile files hold, from `ledger/integrated`.
fn read_integrated(path: &Path) -> Result<u64, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| n.is_multiple_of(tlog::WIDTH))
            .ok_or_else(|| Error::Corrupt(format!("{} is malformed", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_at(path)(e)),
    }
}

/// The checkpoint in the mirror file at `path`, if there is one.
fn read_mirror(path: &Path, verifier: &NoteVerifier) -> Result<Option<SignedCheckpoint>, Error> {
    match std::fs::read(path) {
        Ok(note) => Ok(Some(parse_signed(&note, verifier, "checkpoint file")?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_at(path)(e)),
    }
}

/// Parses and verifies a stored checkpoint note; any failure is corruption.
fn parse_signed(
    note: &[u8],
    verifier: &NoteVerifier,
    what: &str,
) -> Result<SignedCheckpoint, Error> {
    let note = String::from_utf8(note.to_vec())
        .map_err(|_| Error::Corrupt(format!("{what} is not UTF-8")))?;
    SignedCheckpoint::open(note, verifier).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

/// [`Error::NotALog`] without a path: the data directory's opening adds it.
fn not_a_log(reason: &str) -> Error {
    Error::NotALog {
        path: PathBuf::new(),
        reason: reason.to_owned(),
    }
}
