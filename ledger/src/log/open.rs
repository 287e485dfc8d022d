//! Opening a log and recovering its state: from any [`Store`]
//! ([`Log::open_store`]), or from a data directory ([`Log::create_or_open`],
//! [`Log::open_existing`]) with the `sled` feature.
//!
//! Recovery reads no more than it must, whatever the log's size: the right
//! edge from fewer stored hashes per tile level than a tile is wide, the
//! tile files cut back to what the store records as synced, and the latest
//! checkpoint (in the store and in the mirror file) checked against the
//! tree. A store behind a checkpoint the log handed out is refused.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::Log;
use super::edge::Edge;
use super::head::Head;
use super::latest::Latest;
use super::reader::Reader;
#[cfg(feature = "sled")]
use crate::DiskStore;
use crate::checkpoint::{NoteSigner, NoteVerifier, SignedCheckpoint};
#[cfg(feature = "sled")]
use crate::disk::{DEFAULT_ORIGIN, DataDir, KEY_FILE, OpenOptions};
use crate::error::{Error, io_at};
use crate::layout::{self, FORMAT, FORMAT_KEY, SIZE_KEY};
use crate::store::{Store, WriteBatch};
use crate::tile_files::TileFiles;

/// What a data directory attaches to a log besides its store.
#[derive(Debug, Default)]
struct Attached {
    /// Held for the lifetime of the log.
    dir_lock: Option<std::fs::File>,
    /// File keeping a copy of the latest checkpoint outside the store.
    mirror: Option<PathBuf>,
    /// Directory of the tile files.
    tiles: Option<PathBuf>,
}

impl<S: Store> Log<S> {
    /// Opens the log kept in `store`, signing checkpoints with `signer`.
    /// With `create`, an empty store becomes a new, empty log.
    ///
    /// On open the right edge is rebuilt from fewer stored hashes per tile
    /// level than a tile is wide, and the latest checkpoint is checked
    /// against the tree: no full rehash, whatever the size.
    ///
    /// # Errors
    /// [`Error::NotALog`] for a store holding something else,
    /// [`Error::Corrupt`] for an empty store without `create` or when stored
    /// data contradicts itself, [`Error::Store`] on storage failure.
    pub fn open_store(store: S, signer: NoteSigner, create: bool) -> Result<Log<S>, Error> {
        Self::open_attached(store, signer, create, Attached::default())
    }

    /// As [`Log::open_store`], with the files a data directory adds (see
    /// [`Attached`]). A store that is behind the checkpoint in the mirror
    /// file (lost or rolled-back writes) is refused rather than reopened as
    /// a shorter log.
    fn open_attached(
        store: S,
        signer: NoteSigner,
        create: bool,
        attached: Attached,
    ) -> Result<Log<S>, Error> {
        let Attached {
            dir_lock,
            mirror,
            tiles,
        } = attached;
        check_format(&store, create)?;
        let size = match store.get(SIZE_KEY)? {
            Some(v) => layout::decode_u64(v.as_ref())
                .ok_or_else(|| Error::Corrupt("size key is not a u64".into()))?,
            None => return Err(Error::Corrupt("size key missing".into())),
        };
        let edge = Arc::new(Edge::load(&store, size)?);
        let tile_files = match tiles {
            Some(dir) => Some(TileFiles::open(&dir, &store, size)?),
            None => None,
        };
        let verifier = signer.verifier();
        let stored = match store.last_with_prefix(layout::CHECKPOINT_PREFIX)? {
            Some((_, note)) => Some(parse_signed(
                note.as_ref(),
                &verifier,
                "latest stored checkpoint",
            )?),
            None => None,
        };
        let mirrored = match &mirror {
            Some(path) => read_mirror(path, &verifier)?,
            None => None,
        };
        let reader = Reader::new(&store, tile_files.as_ref(), Arc::clone(&edge));
        for signed in stored.iter().chain(&mirrored) {
            reader.agrees_with(&signed.checkpoint)?;
        }
        drop(reader);
        Ok(Log {
            store,
            tile_files,
            writer: Mutex::new(()),
            head: Head::new(edge),
            latest: Latest::new(signer, mirror, stored, mirrored),
            _dir_lock: dir_lock,
        })
    }
}

#[cfg(feature = "sled")]
impl Log<DiskStore> {
    /// Opens the log in `dir`, creating the directory, key and database if
    /// they do not exist yet.
    ///
    /// # Errors
    /// [`Error::Locked`] if another process has it open, [`Error::OriginMismatch`]
    /// if `options.origin` differs from the existing log's, [`Error::NotALog`]
    /// or [`Error::Corrupt`] for a directory that holds something else.
    pub fn create_or_open(dir: &Path, options: &OpenOptions) -> Result<Log<DiskStore>, Error> {
        let dir = DataDir::create(dir, options)?;
        let lock = dir.lock()?;
        if dir.has_key() {
            let signer = dir.read_key(options)?;
            return Self::open_dir(&dir, signer, options, false, lock);
        }
        // A new log, or one whose creation was interrupted before the key
        // was written (then its database is initialised but empty).
        let signer = NoteSigner::generate(options.origin.as_deref().unwrap_or(DEFAULT_ORIGIN))?;
        let private_key = signer.to_private_key();
        let log = Self::open_dir(&dir, signer, options, true, lock)?;
        if log.head.durable() > 0 || log.latest.get().is_some() {
            return Err(Error::Corrupt(format!(
                "{} holds a log but its {KEY_FILE} is missing",
                dir.path().display(),
            )));
        }
        dir.write_key(&private_key)?;
        Ok(log)
    }

    /// Opens an existing log in `dir`; never creates anything but the lock file.
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

    /// Opens the database of `dir` and the log in it, with the directory's
    /// lock, mirror file and tile files attached.
    fn open_dir(
        dir: &DataDir<'_>,
        signer: NoteSigner,
        options: &OpenOptions,
        create: bool,
        lock: std::fs::File,
    ) -> Result<Log<DiskStore>, Error> {
        let store = dir.open_store(options.cache_bytes)?;
        let attached = Attached {
            dir_lock: Some(lock),
            mirror: Some(dir.mirror()),
            tiles: Some(dir.tiles()),
        };
        Self::open_attached(store, signer, create, attached).map_err(|e| match e {
            Error::NotALog { reason, .. } => dir.not_a_log(&reason),
            other => other,
        })
    }
}

/// Checks the store's format marker; with `create`, makes an empty store
/// a new, empty log.
fn check_format<S: Store>(store: &S, create: bool) -> Result<(), Error> {
    match store.get(FORMAT_KEY)? {
        Some(f) if f.as_ref() == FORMAT => Ok(()),
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
            batch.put(SIZE_KEY.to_vec(), layout::encode_u64(0));
            store.apply(batch)?;
            store.sync()?;
            Ok(())
        }
        None => Err(Error::Corrupt(
            "database has no xgate format marker: it is empty or damaged".into(),
        )),
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

/// [`Error::NotALog`] without a path: a data directory's opening adds it.
fn not_a_log(reason: &str) -> Error {
    Error::NotALog {
        path: PathBuf::new(),
        reason: reason.to_owned(),
    }
}
