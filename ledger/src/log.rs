//! The public [`Log`]: open, read entries, build proofs, sign checkpoints.
//!
//! Appending and group commit live in `append`, whole-log verification in
//! `audit`, the on-disk directory (key file, lock) in `disk`.
//!
//! Readers never take the append lock. They work from an immutable snapshot of
//! the right edge (`Arc<Edge>`) plus full tiles, which are written before the
//! snapshot that stops holding them is published, so every node a reader
//! needs is in one place or the other.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::append::{CommitState, Edge};
use crate::checkpoint::{Checkpoint, NoteSigner, NoteVerifier, verify_checkpoint};
use crate::error::Error;
use crate::fsutil::write_atomic;
use crate::hash::Hash;
use crate::layout::{self, FORMAT, FORMAT_KEY, SIZE_KEY};
use crate::proof::{self, ConsistencyProof, InclusionProof, NodeSource};
use crate::store::{Store, WriteBatch};
use crate::tile::{TILE_BYTES, TILE_WIDTH, TileSlot, read_hash};
use crate::tile_files::TileFiles;
use crate::tree::NodeId;

/// Largest entry the log accepts: 64 KiB.
pub const MAX_ENTRY_LEN: usize = 64 * 1024;

/// How often checkpoints signed by commits refresh the mirror file.
const MIRROR_EVERY: Duration = Duration::from_secs(1);

/// A checkpoint and the signed note that carries it, exactly as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The parsed body.
    pub checkpoint: Checkpoint,
    /// The signed note text.
    pub note: String,
}

/// An append-only RFC 9162 log over a [`Store`].
///
/// `Log` is `Sync`: appends from many threads are sequenced and share
/// flushes (group commit); reads and proofs run alongside them.
pub struct Log<S: Store> {
    pub(crate) store: S,
    signer: NoteSigner,
    /// Serializes appends; holds nothing else.
    pub(crate) sequencer: Mutex<()>,
    /// The right edge of the tree as of the last applied batch.
    pub(crate) edge: RwLock<Arc<Edge>>,
    /// Entries known durable: the size readers and proofs see.
    pub(crate) durable: AtomicU64,
    pub(crate) commit: Mutex<CommitState>,
    pub(crate) commit_done: Condvar,
    latest: Mutex<Option<SignedCheckpoint>>,
    /// Whether each commit signs a checkpoint in the same batch.
    pub(crate) checkpoint_every_commit: AtomicBool,
    /// Where a copy of the latest checkpoint is kept outside the store.
    mirror: Option<PathBuf>,
    /// When the mirror was last written, and the size it then held.
    mirrored: Mutex<Option<(Instant, u64)>>,
    /// File copies of the full tiles, for fast proofs.
    pub(crate) tile_files: Option<TileFiles>,
    /// Held for the lifetime of the log when opened from a directory.
    _dir_lock: Option<std::fs::File>,
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
        Self::open_inner(store, signer, create, Attached::default())
    }

    /// As [`Log::open_store`], with the files a data directory adds (see
    /// [`Attached`]). A store that is behind the checkpoint in the mirror
    /// file (lost or rolled-back writes) is refused rather than reopened as
    /// a shorter log.
    pub(crate) fn open_inner(
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
        match store.get(FORMAT_KEY)? {
            Some(f) if f.as_ref() == FORMAT => {}
            Some(_) => return Err(not_a_log("unknown format marker")),
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
            }
            None => {
                return Err(Error::Corrupt(
                    "database has no xgate format marker: it is empty or damaged".into(),
                ));
            }
        }
        let size = match store.get(SIZE_KEY)? {
            Some(v) => layout::decode_u64(v.as_ref())
                .ok_or_else(|| Error::Corrupt("size key is not a u64".into()))?,
            None => return Err(Error::Corrupt("size key missing".into())),
        };
        let edge = Edge::load(&store, size)?;
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
        let mirrored = match mirror.as_deref().map(std::fs::read) {
            Some(Ok(note)) => Some(parse_signed(&note, &verifier, "checkpoint file")?),
            Some(Err(e)) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Io {
                    path: mirror.clone().unwrap_or_default(),
                    source: e,
                });
            }
            _ => None,
        };
        let log = Log {
            store,
            signer,
            sequencer: Mutex::new(()),
            edge: RwLock::new(Arc::new(edge)),
            durable: AtomicU64::new(size),
            commit: Mutex::new(CommitState::default()),
            commit_done: Condvar::new(),
            latest: Mutex::new(None),
            checkpoint_every_commit: AtomicBool::new(false),
            mirror,
            mirrored: Mutex::new(
                mirrored
                    .as_ref()
                    .map(|m| (Instant::now(), m.checkpoint.size)),
            ),
            tile_files,
            _dir_lock: dir_lock,
        };
        for signed in stored.iter().chain(&mirrored) {
            log.check_against_tree(&signed.checkpoint)?;
        }
        *lock(&log.latest) = [stored, mirrored]
            .into_iter()
            .flatten()
            .max_by_key(|s| s.checkpoint.size);
        Ok(log)
    }

    /// The number of durable entries: everything below it is acknowledged
    /// and provable.
    pub fn size(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// The index the next append will get. It can be past [`Log::size`]
    /// after a failed sync, whose entries may still become durable. For a
    /// log's single writer, which prepares records for the indices its
    /// entries will get; with several writers it is only a hint.
    pub fn next_index(&self) -> u64 {
        self.reader().edge.size
    }

    /// The store under the log, for owners of other keys that commit with
    /// appends ([`Log::append_batch_with`]). Keys starting with `L` are the
    /// log's: read them only through the log, never write them.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The log's origin (the name of its checkpoint key).
    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// The verifier key for this log's checkpoints.
    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// The root hash of the log at `size`, for any `size <= self.size()`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] past the current size.
    pub fn root_at(&self, size: u64) -> Result<Hash, Error> {
        let current = self.size();
        if size > current {
            return Err(Error::OutOfRange {
                what: "size",
                value: size,
                size: current,
            });
        }
        proof::root_at(&self.reader(), size)
    }

    /// The entry at `index`, exactly as appended.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] past the current size.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, Error> {
        let size = self.size();
        if index >= size {
            return Err(Error::OutOfRange {
                what: "index",
                value: index,
                size,
            });
        }
        // A tail entry may have moved into its bundle since we looked at the
        // size, but the move is one atomic batch: try the tail, then the bundle.
        if let Some(e) = self.store.get(&layout::tail_entry_key(index))? {
            return Ok(e.as_ref().to_vec());
        }
        let bundle = self
            .store
            .get(&layout::bundle_key(index / TILE_WIDTH as u64))?
            .ok_or_else(|| Error::Corrupt(format!("entry {index} is missing")))?;
        layout::bundle_entry(bundle.as_ref(), (index % TILE_WIDTH as u64) as usize)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::Corrupt(format!("bundle holding entry {index} is malformed")))
    }

    /// The leaf hash of entry `index`, as stored in the tree.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] past the current size.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash, Error> {
        let size = self.size();
        if index >= size {
            return Err(Error::OutOfRange {
                what: "index",
                value: index,
                size,
            });
        }
        self.reader().node(NodeId::new(0, index))
    }

    /// An inclusion proof for entry `index` in the tree of size `size`
    /// (RFC 9162 section 2.1.3.1).
    ///
    /// # Errors
    /// [`Error::OutOfRange`] unless `index < size <= self.size()`.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<InclusionProof, Error> {
        self.check_size(size)?;
        if index >= size {
            return Err(Error::OutOfRange {
                what: "index",
                value: index,
                size,
            });
        }
        proof::prove_inclusion(&self.reader(), index, size)
    }

    /// A consistency proof from size `old` to size `new` (RFC 9162 section
    /// 2.1.4.1).
    ///
    /// # Errors
    /// [`Error::Invalid`] for `old == 0` or `old > new`,
    /// [`Error::OutOfRange`] past the current size.
    pub fn consistency(&self, old: u64, new: u64) -> Result<ConsistencyProof, Error> {
        if old == 0 {
            return Err(Error::Invalid(
                "consistency needs a non-empty old tree (from >= 1)".into(),
            ));
        }
        if old > new {
            return Err(Error::Invalid(format!(
                "from ({old}) is larger than to ({new})"
            )));
        }
        self.check_size(new)?;
        proof::prove_consistency(&self.reader(), old, new)
    }

    /// The latest signed checkpoint, if one was ever signed.
    pub fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        lock(&self.latest).clone()
    }

    /// Signs (and durably stores) a checkpoint for the current size, or
    /// returns the latest one if the log has not grown since.
    ///
    /// Before signing, the tree is checked to still agree with the latest
    /// checkpoint, so the log never signs two inconsistent checkpoints.
    ///
    /// # Errors
    /// [`Error::Store`] if the checkpoint cannot be made durable (it is then
    /// not returned), [`Error::Corrupt`] if the tree disagrees with the latest
    /// checkpoint.
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, Error> {
        let mut latest = lock(&self.latest);
        let size = self.size();
        if let Some(l) = latest.as_ref().filter(|l| l.checkpoint.size == size) {
            return Ok(l.clone());
        }
        if let Some(l) = latest.as_ref() {
            self.check_against_tree(&l.checkpoint)?;
        }
        let signed = self.sign(size, proof::root_at(&self.reader(), size)?);
        let mut batch = WriteBatch::new();
        batch.put(
            layout::checkpoint_key(size),
            signed.note.clone().into_bytes(),
        );
        self.store.apply(batch)?;
        self.store.sync()?;
        self.write_mirror(&signed)?;
        // An append that signs its own checkpoint may have published a
        // larger one meanwhile; it was blocked on this lock, so not yet.
        *latest = Some(signed.clone());
        Ok(signed)
    }

    /// Makes every later commit sign a checkpoint for its new size in the
    /// same store batch as its entries, so the checkpoint costs no extra
    /// sync and each append can be acknowledged with a checkpoint that
    /// covers it ([`Committed::checkpoint`](crate::Committed)).
    ///
    /// Every such checkpoint is stored. The copy outside the store is
    /// refreshed at most once a second (and when the log is dropped): it is
    /// an anchor against rollback, which an older checkpoint still is.
    pub fn set_checkpoint_every_commit(&self, on: bool) {
        self.checkpoint_every_commit.store(on, Ordering::Release);
    }

    /// Signs the checkpoint for `size` with `root`.
    pub(crate) fn sign(&self, size: u64, root: Hash) -> SignedCheckpoint {
        let checkpoint = Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root,
        };
        let note = self.signer.sign_note(&checkpoint.body());
        SignedCheckpoint { checkpoint, note }
    }

    /// Records a checkpoint that a commit made durable as the latest, and
    /// refreshes the mirror if it is due.
    pub(crate) fn publish_checkpoint(&self, signed: &SignedCheckpoint) {
        let mut latest = lock(&self.latest);
        if latest
            .as_ref()
            .is_some_and(|l| l.checkpoint.size >= signed.checkpoint.size)
        {
            return;
        }
        *latest = Some(signed.clone());
        let due = lock(&self.mirrored).is_none_or(|(at, _)| at.elapsed() >= MIRROR_EVERY);
        if due {
            // The checkpoint is durable in the store; a stale mirror is
            // still a valid anchor, so a failed refresh is retried later.
            let _ = self.write_mirror(signed);
        }
    }

    fn write_mirror(&self, signed: &SignedCheckpoint) -> Result<(), Error> {
        let Some(path) = &self.mirror else {
            return Ok(());
        };
        write_atomic(path, signed.note.as_bytes(), 0o600).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        *lock(&self.mirrored) = Some((Instant::now(), signed.checkpoint.size));
        Ok(())
    }

    /// Every stored checkpoint note, oldest first.
    pub fn checkpoints(&self) -> impl Iterator<Item = Result<(u64, String), Error>> + '_ {
        self.store.scan_prefix(layout::CHECKPOINT_PREFIX).map(|kv| {
            let (key, note) = kv?;
            let size = layout::key_number(&key)
                .ok_or_else(|| Error::Corrupt("malformed checkpoint key".into()))?;
            let note = String::from_utf8(note.as_ref().to_vec())
                .map_err(|_| Error::Corrupt(format!("checkpoint at size {size} is not UTF-8")))?;
            Ok((size, note))
        })
    }

    /// A reader over a snapshot of the current edge.
    pub(crate) fn reader(&self) -> Reader<'_, S> {
        let edge = match self.edge.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        self.reader_over(edge)
    }

    /// A reader over `edge`, which may be newer than the published one.
    pub(crate) fn reader_over(&self, edge: Arc<Edge>) -> Reader<'_, S> {
        Reader {
            store: &self.store,
            files: self.tile_files.as_ref(),
            edge,
            recent: RefCell::new(Vec::new()),
        }
    }

    /// Checks a tree size a proof is asked for: non-empty and not past the end.
    fn check_size(&self, size: u64) -> Result<(), Error> {
        let current = self.size();
        if size == 0 {
            return Err(Error::Invalid("tree size must be at least 1".into()));
        }
        if size > current {
            return Err(Error::OutOfRange {
                what: "size",
                value: size,
                size: current,
            });
        }
        Ok(())
    }

    fn check_against_tree(&self, checkpoint: &Checkpoint) -> Result<(), Error> {
        // One snapshot for both checks: the size applied to the store and the
        // hashes it holds.
        let reader = self.reader();
        let size = reader.edge.size;
        if checkpoint.size > size {
            return Err(Error::Corrupt(format!(
                "the log signed a checkpoint for size {}, but the database holds only {size} \
                 entries: it lost acknowledged writes; restore it from a backup",
                checkpoint.size
            )));
        }
        if proof::root_at(&reader, checkpoint.size)? != checkpoint.root {
            return Err(Error::Corrupt(format!(
                "tree root at size {} differs from the signed checkpoint",
                checkpoint.size
            )));
        }
        Ok(())
    }
}

impl<S: Store> Drop for Log<S> {
    /// Leaves the mirror holding the latest checkpoint, which commits may
    /// have signed since its last refresh.
    fn drop(&mut self) {
        let latest = lock(&self.latest).clone();
        let mirrored = lock(&self.mirrored).map(|(_, size)| size);
        if let Some(signed) = latest.filter(|l| Some(l.checkpoint.size) != mirrored) {
            let _ = self.write_mirror(&signed);
        }
    }
}

/// What a data directory attaches to a log besides its store.
#[derive(Debug, Default)]
pub(crate) struct Attached {
    /// Held for the lifetime of the log.
    pub dir_lock: Option<std::fs::File>,
    /// File keeping a copy of the latest checkpoint outside the store.
    pub mirror: Option<PathBuf>,
    /// Directory of the tile files.
    pub tiles: Option<PathBuf>,
}

/// Reads complete-subtree hashes: the unfinished tiles from an edge snapshot,
/// everything else from full tiles, in their files or in the store.
///
/// A proof takes up to four hashes from each tile it touches, so the reader
/// keeps the last tile it fetched at each level and reads it once.
pub(crate) struct Reader<'a, S: Store> {
    store: &'a S,
    files: Option<&'a TileFiles>,
    pub(crate) edge: Arc<Edge>,
    recent: RefCell<Vec<Option<HeldTile<S::Value>>>>,
}

/// A tile index and the tile read for it.
type HeldTile<V> = (u64, Fetched<V>);

/// A full tile as read: borrowed from the store or copied out of its file.
enum Fetched<V> {
    Store(V),
    File(Box<[u8; TILE_BYTES]>),
}

impl<V: AsRef<[u8]>> AsRef<[u8]> for Fetched<V> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Fetched::Store(v) => v.as_ref(),
            Fetched::File(b) => b.as_slice(),
        }
    }
}

impl<S: Store> Reader<'_, S> {
    /// The full tile `level`/`index`, from its file if it is there.
    fn full_tile(&self, level: u8, index: u64) -> Result<Option<Fetched<S::Value>>, Error> {
        if let Some(tile) = self.files.and_then(|f| f.read(level, index)) {
            return Ok(Some(Fetched::File(tile)));
        }
        Ok(self
            .store
            .get(&layout::tile_key(level, index))?
            .map(Fetched::Store))
    }
}

impl<S: Store> NodeSource for Reader<'_, S> {
    type Error = Error;

    fn node(&self, node: NodeId) -> Result<Hash, Error> {
        let slot = TileSlot::of(node);
        let missing = || {
            Error::Corrupt(format!(
                "hash of node {}/{} is missing",
                node.level, node.index
            ))
        };
        if let Some(partial) = self.edge.tiles.get(slot.tile_level as usize) {
            if partial.index == slot.tile_index {
                return partial.get(slot.row, slot.offset).ok_or_else(missing);
            }
            if partial.index < slot.tile_index {
                return Err(missing());
            }
        }
        let level = slot.tile_level as usize;
        let mut recent = self.recent.borrow_mut();
        if recent.len() <= level {
            recent.resize_with(level + 1, || None);
        }
        if let Some((index, tile)) = &recent[level]
            && *index == slot.tile_index
        {
            return read_hash(tile.as_ref(), slot.row, slot.offset).ok_or_else(missing);
        }
        let tile = self
            .full_tile(slot.tile_level, slot.tile_index)?
            .ok_or_else(missing)?;
        let hash = read_hash(tile.as_ref(), slot.row, slot.offset).ok_or_else(missing);
        recent[level] = Some((slot.tile_index, tile));
        hash
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
    let checkpoint =
        verify_checkpoint(&note, verifier).map_err(|e| Error::Corrupt(format!("{what}: {e}")))?;
    Ok(SignedCheckpoint { checkpoint, note })
}

fn not_a_log(reason: &str) -> Error {
    Error::NotALog {
        path: Default::default(),
        reason: reason.to_owned(),
    }
}

/// Locks a mutex, recovering from poisoning: every critical section here
/// leaves its data consistent before anything that can panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
