//! [`TileDir`]: the log's served directory of tiles, entry bundles and
//! checkpoint, laid out as C2SP tlog-tiles paths under one root.
//!
//! Writes are immutable, durable, idempotent creates (see `durable`), made
//! by one writer (the log's integrator). Each put leaves the name it created
//! in a set of directories to `fsync`; [`TileDir::sync`] syncs each of them
//! once, so a batch of files costs one directory `fsync` per directory.
//!
//! Reads of full tiles are on the proof path: full tiles never change once
//! named, so an open descriptor stays valid for good, and a bounded LRU of
//! them turns a read into one `pread` of the bytes asked for.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lru::LruCache;

use super::bundle;
use super::durable::{self, Outcome};
use super::path::{CHECKPOINT, MAX_LEVEL, Resource, Width, bundle_path, tile_path};
use super::shape::{TILE_BYTES, WIDTH};
use crate::hash::HASH_LEN;

/// Open full-tile descriptors kept for reads. The hot tiles of a proof (the
/// upper levels, 1/256 of the level below each) stay in it; a miss costs an
/// `openat` and an `fstat`.
const TILE_FDS: NonZeroUsize = NonZeroUsize::new(256).expect("non-zero");
/// Open directories kept for writes: the few at the log's right edge.
const DIR_FDS: NonZeroUsize = NonZeroUsize::new(64).expect("non-zero");

/// A failure of the tile directory. Messages name paths, never entry data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlogError {
    /// A file-system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An immutable file already exists with other contents (or is not a
    /// regular file): two writes disagree about the log, which is corrupt.
    /// Nothing was overwritten.
    #[error("{}: already exists with other contents", path.display())]
    Differs {
        /// The file.
        path: PathBuf,
    },
    /// A file is there but is not what its name promises (a full tile that
    /// is not 8,192 bytes, a full bundle that does not hold 256 entries).
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The caller asked for something that cannot be (a level above 63, a
    /// tile of the wrong length, a read past a tile's end). Nothing was
    /// written.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file the request was about.
        path: PathBuf,
        /// What is wrong with the request.
        reason: &'static str,
    },
}

/// The served directory of a tiled log: `checkpoint`, `tile/<L>/<N>[.p/<W>]`
/// and `tile/entries/<N>[.p/<W>]` under one root.
///
/// Directories are mode 0755 and tiles and bundles 0444, the checkpoint
/// 0644, so any static file server can serve the root or rsync can copy it.
#[derive(Debug)]
pub struct TileDir {
    root: PathBuf,
    root_fd: Arc<OwnedFd>,
    writer: Mutex<Writer>,
    tiles: Mutex<LruCache<(u8, u64), Arc<File>>>,
}

/// The write side's state, behind one lock: puts come from one thread.
#[derive(Debug)]
struct Writer {
    /// Directories by path relative to the root (`tile/0/x001`).
    dirs: LruCache<String, Arc<OwnedFd>>,
    /// Directories with a name not yet made durable, to `fsync` at the next
    /// [`TileDir::sync`]. They hold their own descriptor: one opened before
    /// the change is the one sure to see a write-back error on it.
    dirty: BTreeMap<String, Arc<OwnedFd>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; if something ever did, the
    // state is still consistent (caches and a set of names to sync).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TileDir {
    /// Opens the tree at `root`, creating `root`, `root/tile` and
    /// `root/tile/entries` if missing (durably: each new directory and its
    /// parent are `fsync`ed). `root`'s parent must exist. `root` itself may
    /// be a symlink to a directory; nothing under it may.
    ///
    /// # Errors
    /// [`TlogError::Io`] if a directory cannot be opened or created (a
    /// symlink under the root is refused), [`TlogError::Invalid`] if `root`
    /// is not a directory.
    pub fn open(root: &Path) -> Result<TileDir, TlogError> {
        let parent = match root.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let parent_fd = File::open(parent).map_err(io_at(parent.to_path_buf()))?;
        let root_fd = match File::open(root) {
            // An existing root may be a symlink the operator made: follow it.
            Ok(file) => {
                let meta = file.metadata().map_err(io_at(root.to_path_buf()))?;
                if !meta.is_dir() {
                    return Err(TlogError::Invalid {
                        path: root.to_path_buf(),
                        reason: "the root is not a directory",
                    });
                }
                // It may come from a process that died between its mkdir
                // and the fsync of its parent.
                durable::sync(parent_fd.as_fd()).map_err(io_at(parent.to_path_buf()))?;
                OwnedFd::from(file)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let name = root.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                    TlogError::Invalid {
                        path: root.to_path_buf(),
                        reason: "the root must end in a UTF-8 name",
                    }
                })?;
                durable::make_dir(parent_fd.as_fd(), name)
                    .map_err(io_at(root.to_path_buf()))?
                    .0
            }
            Err(e) => return Err(io_at(root.to_path_buf())(e)),
        };
        let dir = TileDir {
            root: root.to_path_buf(),
            root_fd: Arc::new(root_fd),
            writer: Mutex::new(Writer {
                dirs: LruCache::new(DIR_FDS),
                dirty: BTreeMap::new(),
            }),
            tiles: Mutex::new(LruCache::new(TILE_FDS)),
        };
        {
            let mut w = lock(&dir.writer);
            dir.dir(&mut w, "tile/entries")?;
        }
        dir.sync()?;
        Ok(dir)
    }

    /// The tree's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates tile `index` of `level`: `hashes` is 8,192 bytes for a full
    /// tile, `32 * w` for a partial one of width `w`. An immutable, durable
    /// once [`sync`](Self::sync)ed, idempotent create: if the file already
    /// exists with these bytes this is a success; with others,
    /// [`TlogError::Differs`].
    ///
    /// # Errors
    /// [`TlogError::Invalid`] for a level above 63, a width of 0 or a length
    /// that does not match the width; [`TlogError::Differs`]; I/O failures.
    pub fn put_tile(
        &self,
        level: u8,
        index: u64,
        width: Width,
        hashes: &[u8],
    ) -> Result<(), TlogError> {
        let rel = tile_path(level, index, width);
        if level > MAX_LEVEL {
            return Err(self.invalid(&rel, "tile levels go up to 63"));
        }
        if width == Width::Partial(0) {
            return Err(self.invalid(&rel, "a partial tile holds 1 to 255 hashes"));
        }
        if hashes.len() != width.count() * HASH_LEN {
            return Err(self.invalid(&rel, "tile length does not match its width"));
        }
        self.put(&rel, hashes)
    }

    /// Creates entry bundle `index`: 256 entries for a full bundle, `w` for a
    /// partial one of width `w`, in the [`bundle`] format. The same create
    /// as [`put_tile`](Self::put_tile).
    ///
    /// # Errors
    /// [`TlogError::Invalid`] for a width of 0 or a bundle that is malformed
    /// or holds another number of entries; [`TlogError::Differs`]; I/O
    /// failures.
    pub fn put_bundle(&self, index: u64, width: Width, bytes: &[u8]) -> Result<(), TlogError> {
        let rel = bundle_path(index, width);
        if width == Width::Partial(0) {
            return Err(self.invalid(&rel, "a partial bundle holds 1 to 255 entries"));
        }
        if bundle::count(bytes) != Some(width.count()) {
            return Err(self.invalid(&rel, "bundle does not hold as many entries as its width"));
        }
        self.put(&rel, bytes)
    }

    fn put(&self, rel: &str, contents: &[u8]) -> Result<(), TlogError> {
        let (dir_rel, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let mut w = lock(&self.writer);
        let dir = self.dir(&mut w, dir_rel)?;
        match durable::create_immutable(dir.as_fd(), name, contents).map_err(self.io(rel))? {
            // An identical file may have been named by a process that died
            // before its directory fsync: sync the directory all the same.
            Outcome::Created | Outcome::Identical => {
                w.dirty.entry(dir_rel.to_owned()).or_insert(dir);
                Ok(())
            }
            Outcome::Differs => Err(TlogError::Differs {
                path: self.root.join(rel),
            }),
        }
    }

    /// Makes durable every name the puts since the last call created:
    /// one `fsync` per directory, however many files it received.
    ///
    /// # Errors
    /// [`TlogError::Io`] if an `fsync` fails. The directories not yet synced
    /// stay pending, but after a failed `fsync` the kernel may have dropped
    /// the changes and report the next one clean: the caller must treat
    /// the puts since the last good sync as lost and stop.
    pub fn sync(&self) -> Result<(), TlogError> {
        let mut w = lock(&self.writer);
        let mut dirty = std::mem::take(&mut w.dirty);
        while let Some((rel, fd)) = dirty.pop_first() {
            if let Err(e) = durable::sync(fd.as_fd()) {
                let path = self.root.join(&rel);
                dirty.insert(rel, fd);
                w.dirty.append(&mut dirty);
                return Err(TlogError::Io { path, source: e });
            }
        }
        Ok(())
    }

    /// Reads hashes `first .. first + out.len() / 32` of the full tile
    /// `index` at `level` into `out`; `Ok(false)` if there is no such full
    /// tile (yet).
    ///
    /// # Errors
    /// [`TlogError::Invalid`] if `out` is not a whole number of hashes or
    /// runs past the tile's end; [`TlogError::Corrupt`] if the file is not
    /// 8,192 bytes; I/O failures.
    pub fn read_tile(
        &self,
        level: u8,
        index: u64,
        first: usize,
        out: &mut [u8],
    ) -> Result<bool, TlogError> {
        let end = first.saturating_mul(HASH_LEN).saturating_add(out.len());
        if level > MAX_LEVEL || !out.len().is_multiple_of(HASH_LEN) || end > TILE_BYTES {
            let rel = tile_path(level, index, Width::Full);
            return Err(self.invalid(&rel, "read outside a full tile"));
        }
        let cached = lock(&self.tiles).get(&(level, index)).cloned();
        let file = match cached {
            Some(file) => file,
            None => match self.open_full_tile(level, index)? {
                Some(file) => {
                    let file = Arc::new(file);
                    let evicted = lock(&self.tiles).push((level, index), Arc::clone(&file));
                    // Closed here, outside the lock.
                    drop(evicted);
                    file
                }
                None => return Ok(false),
            },
        };
        let offset = (first * HASH_LEN) as u64;
        file.read_exact_at(out, offset).map_err(|e| TlogError::Io {
            path: self.root.join(tile_path(level, index, Width::Full)),
            source: e,
        })?;
        Ok(true)
    }

    fn open_full_tile(&self, level: u8, index: u64) -> Result<Option<File>, TlogError> {
        let rel = tile_path(level, index, Width::Full);
        let Some((file, len)) = self.open_file(&rel)? else {
            return Ok(None);
        };
        if len != TILE_BYTES as u64 {
            return Err(TlogError::Corrupt {
                path: self.root.join(&rel),
                reason: "a full tile is not 8,192 bytes",
            });
        }
        Ok(Some(file))
    }

    /// The full entry bundle `index`, or `None` if it does not exist (yet).
    ///
    /// # Errors
    /// [`TlogError::Corrupt`] if the file does not hold exactly 256 entries
    /// in the bundle format; I/O failures.
    pub fn read_bundle(&self, index: u64) -> Result<Option<Vec<u8>>, TlogError> {
        let rel = bundle_path(index, Width::Full);
        let bytes = self.read_rel(&rel)?;
        if let Some(b) = &bytes
            && bundle::count(b) != Some(WIDTH as usize)
        {
            return Err(TlogError::Corrupt {
                path: self.root.join(&rel),
                reason: "a full bundle does not hold 256 entries",
            });
        }
        Ok(bytes)
    }

    /// The bytes of any resource as stored (a partial tile, a partial
    /// bundle, the checkpoint), or `None` if it does not exist. Nothing is
    /// checked beyond the file being a regular file (not a symlink).
    ///
    /// # Errors
    /// I/O failures.
    pub fn read(&self, resource: &Resource) -> Result<Option<Vec<u8>>, TlogError> {
        self.read_rel(&resource.path())
    }

    /// The bytes of `resource` as a tlog-tiles server must serve them, or
    /// `None` if it does not exist: a tile or bundle is checked to hold
    /// exactly what its path promises (8,192 bytes or 32 per hash of a
    /// partial tile's width, 256 or the partial width's entries in the
    /// bundle format), so a damaged file is never served as the log.
    ///
    /// # Errors
    /// [`TlogError::Corrupt`] for a file whose length or format does not
    /// match its path; I/O failures.
    pub fn read_served(&self, resource: &Resource) -> Result<Option<Vec<u8>>, TlogError> {
        let rel = resource.path();
        let Some(bytes) = self.read_rel(&rel)? else {
            return Ok(None);
        };
        let fits = match *resource {
            Resource::Checkpoint => true,
            Resource::Tile { width, .. } => bytes.len() == width.count() * HASH_LEN,
            Resource::Bundle { width, .. } => bundle::count(&bytes) == Some(width.count()),
        };
        if !fits {
            return Err(TlogError::Corrupt {
                path: self.root.join(&rel),
                reason: "the file does not hold what its path names",
            });
        }
        Ok(Some(bytes))
    }

    fn read_rel(&self, rel: &str) -> Result<Option<Vec<u8>>, TlogError> {
        let Some((mut file, len)) = self.open_file(rel)? else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.read_to_end(&mut bytes).map_err(self.io(rel))?;
        Ok(Some(bytes))
    }

    /// Opens `rel` for reading: `None` if it (or a directory on its way)
    /// does not exist; a symlink or other non-file there is an error.
    fn open_file(&self, rel: &str) -> Result<Option<(File, u64)>, TlogError> {
        match durable::open_regular(self.root_fd.as_fd(), rel) {
            Ok(Some(found)) => Ok(Some(found)),
            Ok(None) => Err(TlogError::Corrupt {
                path: self.root.join(rel),
                reason: "not a regular file",
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(rel)(e)),
        }
    }

    /// Replaces `<root>/checkpoint` with `note`, atomically and durably
    /// (`fsutil::write_atomic`), mode 0644.
    ///
    /// # Errors
    /// I/O failures; the old checkpoint is then still in place.
    pub fn write_checkpoint(&self, note: &[u8]) -> Result<(), TlogError> {
        let path = self.root.join(CHECKPOINT);
        crate::fsutil::write_atomic(&path, note, 0o644).map_err(io_at(path))
    }

    /// The current `<root>/checkpoint`, if any.
    ///
    /// # Errors
    /// I/O failures, or a checkpoint that is not a regular file.
    pub fn read_checkpoint(&self) -> Result<Option<Vec<u8>>, TlogError> {
        self.read(&Resource::Checkpoint)
    }

    /// Removes the partial tiles of tile `index` at `level` (`None`: of entry
    /// bundle `index`), the directory `<N>.p/`, but only if the full `<N>`
    /// exists; its directory entry is made durable first if it is still
    /// pending, so no crash can leave neither. Nothing to remove is a success.
    ///
    /// # Errors
    /// I/O failures (a `.p/` holding a subdirectory is one).
    pub fn prune_partials(&self, level: Option<u8>, index: u64) -> Result<(), TlogError> {
        let full = match level {
            Some(level) => tile_path(level, index, Width::Full),
            None => bundle_path(index, Width::Full),
        };
        let (dir_rel, name) = full.rsplit_once('/').unwrap_or(("", &full));
        let partials = format!("{full}.p");
        let mut w = lock(&self.writer);
        match durable::open_regular(self.root_fd.as_fd(), &full) {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io(&full)(e)),
        }
        if let Some(fd) = w.dirty.remove(dir_rel)
            && let Err(e) = durable::sync(fd.as_fd())
        {
            w.dirty.insert(dir_rel.to_owned(), fd);
            return Err(self.io(dir_rel)(e));
        }
        let pdir = match durable::open_dir(self.root_fd.as_fd(), &partials) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io(&partials)(e)),
        };
        w.dirs.pop(&partials);
        w.dirty.remove(&partials);
        for entry in durable::list(pdir.as_fd()).map_err(self.io(&partials))? {
            if !entry.is_dir {
                durable::remove_file(pdir.as_fd(), &entry.name).map_err(self.io(&partials))?;
            }
        }
        let parent = durable::open_dir(self.root_fd.as_fd(), dir_rel).map_err(self.io(dir_rel))?;
        durable::remove_dir(parent.as_fd(), &format!("{name}.p")).map_err(self.io(&partials))
    }

    /// Removes the temporary files a crash left behind (`.<name>.<nonce>.tmp`)
    /// and returns how many. Only the right edge of the tree is searched,
    /// since files are created in index order: every directory but the
    /// `x<NNN>` ones, of which the last two in each directory (the edge and
    /// the one before it, for a batch that crossed a boundary), and every
    /// `<N>.p/`. Files with other names are never touched.
    ///
    /// # Errors
    /// I/O failures.
    pub fn remove_temporaries(&self) -> Result<usize, TlogError> {
        let _w = lock(&self.writer);
        let mut removed = 0;
        self.sweep(self.root_fd.as_fd(), "", &mut removed)?;
        Ok(removed)
    }

    fn sweep(&self, dir: BorrowedFd<'_>, rel: &str, removed: &mut usize) -> Result<(), TlogError> {
        let mut groups = Vec::new();
        let mut others = Vec::new();
        for entry in durable::list(dir).map_err(self.io(rel))? {
            if !entry.is_dir {
                if durable::is_temporary(&entry.name) {
                    durable::remove_file(dir, &entry.name).map_err(self.io(rel))?;
                    *removed += 1;
                }
            } else if is_group(&entry.name) {
                groups.push(entry.name);
            } else {
                others.push(entry.name);
            }
        }
        // Zero-padded: name order is index order.
        groups.sort_unstable();
        let last_groups = groups.len().saturating_sub(2);
        for name in others.iter().chain(&groups[last_groups..]) {
            let sub = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let fd = durable::open_dir(dir, name).map_err(self.io(&sub))?;
            self.sweep(fd.as_fd(), &sub, removed)?;
        }
        Ok(())
    }

    /// The directory `rel` (relative to the root), opened, and created if
    /// missing, with its missing parents.
    fn dir(&self, w: &mut Writer, rel: &str) -> Result<Arc<OwnedFd>, TlogError> {
        if rel.is_empty() {
            return Ok(Arc::clone(&self.root_fd));
        }
        if let Some(fd) = w.dirs.get(rel) {
            return Ok(Arc::clone(fd));
        }
        let (parent_rel, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let parent = self.dir(w, parent_rel)?;
        let (fd, created) = durable::make_dir(parent.as_fd(), name).map_err(self.io(rel))?;
        if !created {
            // It may come from a process that died between the mkdir and the
            // fsync of its parent: sync the parent at the next sync. This
            // costs one fsync per directory per process (or cache eviction).
            w.dirty.entry(parent_rel.to_owned()).or_insert(parent);
        }
        let fd = Arc::new(fd);
        w.dirs.put(rel.to_owned(), Arc::clone(&fd));
        Ok(fd)
    }

    fn io<'a>(&'a self, rel: &'a str) -> impl FnOnce(io::Error) -> TlogError + 'a {
        move |source| TlogError::Io {
            path: self.root.join(rel),
            source,
        }
    }

    fn invalid(&self, rel: &str, reason: &'static str) -> TlogError {
        TlogError::Invalid {
            path: self.root.join(rel),
            reason,
        }
    }
}

fn io_at(path: PathBuf) -> impl FnOnce(io::Error) -> TlogError {
    move |source| TlogError::Io { path, source }
}

/// Whether `name` is an `x<NNN>` directory of an index's path.
fn is_group(name: &str) -> bool {
    name.len() == 4 && name.starts_with('x') && name.bytes().skip(1).all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    fn tile(seed: u8, width: usize) -> Vec<u8> {
        (0..width * HASH_LEN)
            .map(|i| seed.wrapping_add(i as u8))
            .collect()
    }

    fn bundle_of(n: usize, seed: u8) -> Vec<u8> {
        let mut b = Vec::new();
        for i in 0..n {
            bundle::push(&mut b, &[seed, i as u8, 0xee][..i % 4]).expect("push");
        }
        b
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).expect("metadata").mode() & 0o777
    }

    fn open(tmp: &tempfile::TempDir) -> TileDir {
        TileDir::open(&tmp.path().join("log")).expect("open")
    }

    #[test]
    fn tile_dir_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<TileDir>();
    }

    #[test]
    fn open_creates_the_skeleton_and_reopens() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = open(&tmp);
        let root = tmp.path().join("log");
        assert_eq!(dir.root(), root);
        for d in ["", "tile", "tile/entries"] {
            assert!(root.join(d).is_dir(), "{d}");
            assert_eq!(mode(&root.join(d)), 0o755, "{d}");
        }
        dir.put_tile(0, 0, Width::Full, &tile(1, 256)).expect("put");
        dir.sync().expect("sync");
        drop(dir);
        let dir = open(&tmp);
        let mut out = [0u8; TILE_BYTES];
        assert!(dir.read_tile(0, 0, 0, &mut out).expect("read"));
        assert_eq!(out.to_vec(), tile(1, 256));
        // A file where the root should be is refused.
        fs::write(tmp.path().join("file"), b"x").expect("write");
        assert!(matches!(
            TileDir::open(&tmp.path().join("file")),
            Err(TlogError::Invalid { .. })
        ));
        // A symlinked root is followed (an operator's choice).
        std::os::unix::fs::symlink(&root, tmp.path().join("link")).expect("symlink");
        let linked = TileDir::open(&tmp.path().join("link")).expect("open link");
        assert!(linked.read_tile(0, 0, 0, &mut out).expect("read"));
    }

    #[test]
    fn tiles_round_trip() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = open(&tmp);
        let full = tile(7, 256);
        dir.put_tile(0, 1_234_067, Width::Full, &full)
            .expect("put full");
        dir.put_tile(2, 3, Width::Partial(5), &tile(9, 5))
            .expect("put partial");
        dir.sync().expect("sync");
        let root = tmp.path().join("log");
        assert_eq!(
            fs::read(root.join("tile/0/x001/x234/067")).expect("read"),
            full
        );
        assert_eq!(
            fs::read(root.join("tile/2/003.p/5")).expect("read"),
            tile(9, 5)
        );
        // Any slice of hashes of a full tile.
        for (first, n) in [(0, 256), (0, 1), (255, 1), (17, 3), (100, 0)] {
            let mut out = vec![0u8; n * HASH_LEN];
            assert!(dir.read_tile(0, 1_234_067, first, &mut out).expect("read"));
            assert_eq!(out, full[first * HASH_LEN..(first + n) * HASH_LEN]);
        }
        // Twice, from the cached descriptor.
        let mut out = [0u8; HASH_LEN];
        assert!(dir.read_tile(0, 1_234_067, 3, &mut out).expect("read"));
        assert_eq!(out, full[3 * HASH_LEN..4 * HASH_LEN]);
        // Missing tiles, and partials, are not full tiles.
        assert!(!dir.read_tile(0, 1_234_068, 0, &mut out).expect("read"));
        assert!(!dir.read_tile(2, 3, 0, &mut out).expect("read"));
        assert!(!dir.read_tile(9, 0, 0, &mut out).expect("read"));
        assert_eq!(
            dir.read(&Resource::Tile {
                level: 2,
                index: 3,
                width: Width::Partial(5)
            })
            .expect("read"),
            Some(tile(9, 5))
        );
    }

    #[test]
    fn many_tiles_read_through_the_bounded_cache() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = open(&tmp);
        let n = TILE_FDS.get() as u64 + 40;
        for i in 0..n {
            dir.put_tile(1, i, Width::Full, &tile(i as u8, 256))
                .expect("put");
        }
        dir.sync().expect("sync");
        let mut out = [0u8; HASH_LEN];
        for round in 0..2 {
            for i in 0..n {
                let first = ((i + round) % 256) as usize;
                assert!(dir.read_tile(1, i, first, &mut out).expect("read"));
                assert_eq!(
                    out[..],
                    tile(i as u8, 256)[first * HASH_LEN..(first + 1) * HASH_LEN]
                );
            }
        }
        assert_eq!(lock(&dir.tiles).len(), TILE_FDS.get());
    }

    #[test]
    fn bundles_round_trip() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = open(&tmp);
        let full = bundle_of(256, 1);
        dir.put_bundle(1000, Width::Full, &full).expect("put full");
        dir.put_bundle(1001, Width::Partial(3), &bundle_of(3, 2))
            .expect("put partial");
        dir.sync().expect("sync");
        assert_eq!(dir.read_bundle(1000).expect("read"), Some(full.clone()));
        assert_eq!(dir.read_bundle(1001).expect("read"), None);
        assert_eq!(
            dir.read(&Resource::Bundle {
                index: 1001,
                width: Width::Partial(3)
            })
            .expect("read"),
            Some(bundle_of(3, 2))
        );
        assert_eq!(
            fs::read(tmp.path().join("log/tile/entries/x001/000")).expect("read"),
            full
        );
    }

    #[test]
    fn checkpoint_is_replaced_atomically_and_public() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = open(&tmp);
        assert_eq!(dir.read_checkpoint().expect("read"), None);
        dir.write_checkpoint(b"one\n").expect("write");
        dir.write_checkpoint(b"two\n").expect("write");
        assert_eq!(
            dir.read_checkpoint().expect("read"),
            Some(b"two\n".to_vec())
        );
        assert_eq!(mode(&tmp.path().join("log/checkpoint")), 0o644);
    }

    #[test]
    fn an_existing_file_must_be_identical_and_is_never_overwritten() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = open(&tmp);
        let root = tmp.path().join("log");
        dir.put_tile(0, 5, Width::Full, &tile(1, 256)).expect("put");
        dir.put_tile(0, 5, Width::Full, &tile(1, 256))
            .expect("the same bytes again");
        let err = dir
            .put_tile(0, 5, Width::Full, &tile(2, 256))
            .expect_err("other bytes");
        assert!(
            matches!(&err, TlogError::Differs { path } if *path == root.join("tile/0/005")),
            "{err}"
        );
        assert_eq!(
            fs::read(root.join("tile/0/005")).expect("read"),
            tile(1, 256)
        );
        // A partial written twice (two checkpoints of one size).
        dir.put_tile(0, 6, Width::Partial(9), &tile(3, 9))
            .expect("put");
        dir.put_tile(0, 6, Width::Partial(9), &tile(3, 9))
            .expect("again");
        assert!(matches!(
            dir.put_tile(0, 6, Width::Partial(9), &tile(4, 9)),
            Err(TlogError::Differs { .. })
        ));
        dir.put_bundle(0, Width::Full, &bundle_of(256, 1))
            .expect("put");
        dir.put_bundle(0, Width::Full, &bundle_of(256, 1))
            .expect("again");
        assert!(matches!(
            dir.put_bundle(0, Width::Full, &bundle_of(256, 2)),
            Err(TlogError::Differs { .. })
        ));
        assert_eq!(dir.read_bundle(0).expect("read"), Some(bundle_of(256, 1)));
        // No temporary file is left anywhere.
        assert_eq!(dir.remove_temporaries().expect("sweep"), 0);
    }

    #[test]
    fn a_torn_file_at_the_name_is_never_taken_for_the_good_one() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = open(&tmp);
        let root = tmp.path().join("log");
        let good = tile(5, 3);
        let path = root.join("tile/0/000.p/3");
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        // Every prefix, and every single flipped byte.
        let mut torn: Vec<Vec<u8>> = (0..good.len()).map(|cut| good[..cut].to_vec()).collect();
        torn.extend((0..good.len()).map(|i| {
            let mut t = good.clone();
            t[i] ^= 0x80;
            t
        }));
        for bad in torn {
            fs::write(&path, &bad).expect("plant");
            assert!(matches!(
                dir.put_tile(0, 0, Width::Partial(3), &good),
                Err(TlogError::Differs { .. })
            ));
            assert_eq!(fs::read(&path).expect("read"), bad, "left as it was");
            fs::remove_file(&path).expect("remove");
        }
        dir.put_tile(0, 0, Width::Partial(3), &good).expect("put");
        assert_eq!(fs::read(&path).expect("read"), good);
    }

    /// Environment variable naming the tree [`crash_child`] writes to.
    const CRASH_DIR: &str = "XGATE_TLOG_CRASH_DIR";

    /// Run by [`kill_9_at_any_instant_leaves_only_whole_files`] in a child
    /// process, which it kills: puts tiles and bundles without end.
    #[test]
    #[ignore = "a child process of kill_9_at_any_instant_leaves_only_whole_files"]
    fn crash_child() {
        let root = PathBuf::from(std::env::var_os(CRASH_DIR).expect("run by the parent test"));
        let dir = TileDir::open(&root).expect("open");
        for i in 0u64.. {
            dir.put_tile(0, i, Width::Full, &tile(i as u8, 256))
                .expect("put");
            dir.put_bundle(i, Width::Full, &bundle_of(256, i as u8))
                .expect("put");
            dir.put_tile(
                1,
                i / 256,
                Width::Partial((i % 255 + 1) as u8),
                &tile(i as u8, (i % 255 + 1) as usize),
            )
            .expect("put");
            if i % 8 == 0 {
                dir.sync().expect("sync");
            }
        }
    }

    #[test]
    fn kill_9_at_any_instant_leaves_only_whole_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("log");
        let exe = std::env::current_exe().expect("test binary");
        let mut rng = fastrand::Rng::with_seed(9);
        let mut swept = 0;
        for _round in 0..6 {
            let mut child = std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "tlog::dir::tests::crash_child",
                    "--ignored",
                    "--nocapture",
                ])
                .env(CRASH_DIR, &root)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn");
            std::thread::sleep(std::time::Duration::from_millis(rng.u64(50..400)));
            child.kill().expect("SIGKILL");
            child.wait().expect("wait");
            let dir = TileDir::open(&root).expect("reopen");
            swept += dir.remove_temporaries().expect("sweep");
            // Every full file there is whole; putting everything again finds
            // each existing file identical and creates the missing ones.
            let mut out = vec![0u8; TILE_BYTES];
            let mut i = 0;
            while dir.read_tile(0, i, 0, &mut out).expect("read") {
                assert_eq!(out, tile(i as u8, 256), "tile {i}");
                i += 1;
            }
            assert!(i > 0, "the child wrote something");
            for j in 0..i + 2 {
                dir.put_tile(0, j, Width::Full, &tile(j as u8, 256))
                    .expect("put again");
                dir.put_bundle(j, Width::Full, &bundle_of(256, j as u8))
                    .expect("put again");
                if let Some(b) = dir.read_bundle(j).expect("read") {
                    assert_eq!(b, bundle_of(256, j as u8));
                }
            }
            dir.sync().expect("sync");
            assert_eq!(dir.remove_temporaries().expect("sweep"), 0);
        }
        // Not an assertion of the protocol, only a note for the curious:
        // how often a kill landed between a temporary's creation and its move.
        eprintln!("{swept} temporary files swept after 6 kills");
    }

    #[test]
    fn files_are_0444_and_directories_0755() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = open(&tmp);
        let root = tmp.path().join("log");
        dir.put_tile(3, 1_234_067, Width::Full, &tile(1, 256))
            .expect("put");
        dir.put_tile(3, 1_234_068, Width::Partial(1), &tile(1, 1))
            .expect("put");
        dir.put_bundle(2_000_001, Width::Partial(2), &bundle_of(2, 0))
            .expect("put");
        dir.sync().expect("sync");
        for f in [
            "tile/3/x001/x234/067",
            "tile/3/x001/x234/068.p/1",
            "tile/entries/x002/x000/001.p/2",
        ] {
            assert_eq!(mode(&root.join(f)), 0o444, "{f}");
        }
        for d in [
            "tile/3",
            "tile/3/x001",
            "tile/3/x001/x234",
            "tile/3/x001/x234/068.p",
            "tile/entries/x002",
            "tile/entries/x002/x000",
            "tile/entries/x002/x000/001.p",
        ] {
            assert_eq!(mode(&root.join(d)), 0o755, "{d}");
        }
    }

    #[test]
    fn impossible_requests_are_refused_before_writing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = open(&tmp);
        let invalid = |r: Result<(), TlogError>| matches!(r, Err(TlogError::Invalid { .. }));
        assert!(invalid(dir.put_tile(0, 0, Width::Full, &tile(0, 255))));
        assert!(invalid(dir.put_tile(0, 0, Width::Partial(3), &tile(0, 4))));
        assert!(invalid(dir.put_tile(0, 0, Width::Partial(0), &[])));
        assert!(invalid(dir.put_tile(64, 0, Width::Full, &tile(0, 256))));
        assert!(invalid(dir.put_bundle(0, Width::Full, &bundle_of(255, 0))));
        assert!(invalid(dir.put_bundle(
            0,
            Width::Partial(2),
            &bundle_of(3, 0)
        )));
        assert!(invalid(dir.put_bundle(0, Width::Partial(0), &[])));
        let mut malformed = bundle_of(2, 0);
        malformed.push(0);
        assert!(invalid(dir.put_bundle(0, Width::Partial(2), &malformed)));
        let mut out = [0u8; 2 * HASH_LEN];
        for (first, len) in [(255, 2 * HASH_LEN), (257, 0), (0, 31), (usize::MAX, 32)] {
            assert!(
                matches!(
                    dir.read_tile(0, 0, first, &mut out[..len]),
                    Err(TlogError::Invalid { .. })
                ),
                "{first} {len}"
            );
        }
        assert!(matches!(
            dir.read_tile(64, 0, 0, &mut out),
            Err(TlogError::Invalid { .. })
        ));
        // Nothing was created.
        assert_eq!(
            fs::read_dir(tmp.path().join("log/tile"))
                .expect("ls")
                .count(),
            1
        );
    }

    #[test]
    fn corrupt_files_are_reported() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = open(&tmp);
        let root = tmp.path().join("log");
        fs::create_dir_all(root.join("tile/0")).expect("mkdir");
        fs::write(root.join("tile/0/000"), [0u8; 100]).expect("write");
        fs::write(root.join("tile/entries/000"), bundle_of(255, 0)).expect("write");
        let mut out = [0u8; HASH_LEN];
        assert!(matches!(
            dir.read_tile(0, 0, 0, &mut out),
            Err(TlogError::Corrupt { .. })
        ));
        assert!(matches!(dir.read_bundle(0), Err(TlogError::Corrupt { .. })));
    }

    #[test]
    fn read_served_returns_only_files_that_hold_what_their_path_names() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = open(&tmp);
        let root = tmp.path().join("log");
        let full_tile = Resource::Tile {
            level: 1,
            index: 2,
            width: Width::Full,
        };
        let partial_tile = Resource::Tile {
            level: 0,
            index: 3,
            width: Width::Partial(5),
        };
        let full_bundle = Resource::Bundle {
            index: 4,
            width: Width::Full,
        };
        let partial_bundle = Resource::Bundle {
            index: 4,
            width: Width::Partial(7),
        };
        for r in [full_tile, partial_tile, full_bundle, partial_bundle] {
            assert_eq!(dir.read_served(&r).expect("read"), None, "{r:?}");
        }
        dir.put_tile(1, 2, Width::Full, &tile(9, 256)).expect("put");
        dir.put_tile(0, 3, Width::Partial(5), &tile(8, 5))
            .expect("put");
        dir.put_bundle(4, Width::Full, &bundle_of(256, 1))
            .expect("put");
        dir.put_bundle(4, Width::Partial(7), &bundle_of(7, 1))
            .expect("put");
        dir.write_checkpoint(b"o\n1\nAA==\n").expect("checkpoint");
        let read = |r: &Resource| dir.read_served(r).expect("read").expect("exists");
        assert_eq!(read(&full_tile), tile(9, 256));
        assert_eq!(read(&partial_tile), tile(8, 5));
        assert_eq!(read(&full_bundle), bundle_of(256, 1));
        assert_eq!(read(&partial_bundle), bundle_of(7, 1));
        assert_eq!(read(&Resource::Checkpoint), b"o\n1\nAA==\n");
        // Files damaged (or planted) under a valid name are refused, never
        // served: a short full tile, a partial of the wrong width, a bundle
        // with one entry too few, a bundle that is not in the format.
        let planted = [
            ("tile/0/000", vec![0u8; 100]),
            ("tile/0/001.p/3", tile(1, 4)),
            ("tile/entries/000", bundle_of(255, 0)),
            ("tile/entries/001.p/2", vec![0, 9, 1]),
        ];
        for (rel, bytes) in &planted {
            let path = root.join(rel);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(&path, bytes).expect("write");
            let r = crate::tlog::path::parse(rel).expect("a valid path");
            assert!(
                matches!(dir.read_served(&r), Err(TlogError::Corrupt { .. })),
                "{rel}"
            );
        }
    }

    #[test]
    fn symlinks_are_never_followed_under_the_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = open(&tmp);
        let root = tmp.path().join("log");
        let victim = tmp.path().join("victim");
        fs::write(&victim, tile(1, 256)).expect("write");
        // At a file's name: reported as different, never read or replaced.
        fs::create_dir_all(root.join("tile/0")).expect("mkdir");
        std::os::unix::fs::symlink(&victim, root.join("tile/0/000")).expect("symlink");
        assert!(matches!(
            dir.put_tile(0, 0, Width::Full, &tile(1, 256)),
            Err(TlogError::Differs { .. })
        ));
        assert!(
            fs::symlink_metadata(root.join("tile/0/000"))
                .expect("meta")
                .is_symlink()
        );
        let mut out = [0u8; HASH_LEN];
        assert!(matches!(
            dir.read_tile(0, 0, 0, &mut out),
            Err(TlogError::Corrupt { .. })
        ));
        // At a directory's name: refused, nothing written through it.
        let elsewhere = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(elsewhere.path(), root.join("tile/0/x001")).expect("symlink");
        assert!(matches!(
            dir.put_tile(0, 1000, Width::Full, &tile(1, 256)),
            Err(TlogError::Io { .. })
        ));
        assert_eq!(fs::read_dir(elsewhere.path()).expect("ls").count(), 0);
        assert_eq!(fs::read(&victim).expect("read"), tile(1, 256));
    }

    #[test]
    fn sync_pays_one_fsync_per_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = open(&tmp);
        assert!(
            lock(&dir.writer).dirty.is_empty(),
            "open leaves nothing pending"
        );
        for i in 0..10 {
            dir.put_bundle(i, Width::Full, &bundle_of(256, i as u8))
                .expect("put");
            dir.put_tile(0, i, Width::Full, &tile(i as u8, 256))
                .expect("put");
        }
        dir.put_tile(0, 10, Width::Partial(1), &tile(0, 1))
            .expect("put");
        let pending: Vec<String> = lock(&dir.writer).dirty.keys().cloned().collect();
        // tile/0 was created (and synced into tile/) by the first put.
        assert_eq!(pending, ["tile/0", "tile/0/010.p", "tile/entries"]);
        dir.sync().expect("sync");
        assert!(lock(&dir.writer).dirty.is_empty());
        // A put that finds its file already there still syncs the directory:
        // the earlier name may never have been made durable.
        dir.put_tile(0, 3, Width::Full, &tile(3, 256))
            .expect("again");
        let pending: Vec<String> = lock(&dir.writer).dirty.keys().cloned().collect();
        assert_eq!(pending, ["tile/0"]);
        // So does a directory found rather than created, for its parent.
        drop(dir);
        let dir = open(&tmp);
        dir.put_tile(0, 11, Width::Full, &tile(11, 256))
            .expect("put");
        let pending: Vec<String> = lock(&dir.writer).dirty.keys().cloned().collect();
        assert_eq!(pending, ["tile", "tile/0"]);
    }

    #[test]
    fn partials_are_pruned_only_once_the_full_file_exists() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = open(&tmp);
        let root = tmp.path().join("log");
        dir.put_tile(1, 1000, Width::Partial(3), &tile(0, 3))
            .expect("put");
        dir.put_tile(1, 1000, Width::Partial(7), &tile(0, 7))
            .expect("put");
        dir.put_bundle(1000, Width::Partial(2), &bundle_of(2, 0))
            .expect("put");
        dir.sync().expect("sync");
        dir.prune_partials(Some(1), 1000).expect("prune");
        dir.prune_partials(None, 1000).expect("prune");
        assert!(root.join("tile/1/x001/000.p/3").exists());
        assert!(root.join("tile/1/x001/000.p/7").exists());
        assert!(root.join("tile/entries/x001/000.p/2").exists());
        dir.put_tile(1, 1000, Width::Full, &tile(0, 256))
            .expect("put");
        dir.prune_partials(Some(1), 1000).expect("prune");
        assert!(!root.join("tile/1/x001/000.p").exists());
        assert!(root.join("tile/1/x001/000").exists());
        assert!(
            lock(&dir.writer).dirty.is_empty(),
            "the full tile's name was made durable before the partials went"
        );
        assert!(root.join("tile/entries/x001/000.p/2").exists());
        dir.put_bundle(1000, Width::Full, &bundle_of(256, 0))
            .expect("put");
        dir.prune_partials(None, 1000).expect("prune");
        assert!(!root.join("tile/entries/x001/000.p").exists());
        // Nothing left to prune, or nothing at all: fine.
        dir.prune_partials(None, 1000).expect("prune again");
        dir.prune_partials(Some(5), 77).expect("prune nothing");
        // A partial can be written again after a prune (the cached
        // directory descriptor was dropped with the directory).
        dir.put_bundle(1000, Width::Partial(2), &bundle_of(2, 0))
            .expect("put");
        assert!(root.join("tile/entries/x001/000.p/2").exists());
    }

    #[test]
    fn remove_temporaries_removes_leftovers_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = open(&tmp);
        let root = tmp.path().join("log");
        for i in [0u64, 999, 1000, 2000, 3000] {
            dir.put_tile(0, i, Width::Full, &tile(1, 256)).expect("put");
        }
        dir.put_tile(0, 3001, Width::Partial(4), &tile(1, 4))
            .expect("put");
        dir.put_bundle(3000, Width::Full, &bundle_of(256, 0))
            .expect("put");
        dir.write_checkpoint(b"c\n").expect("checkpoint");
        dir.sync().expect("sync");
        let victim = tmp.path().join("victim");
        fs::write(&victim, b"untouched").expect("write");
        let leftovers = [
            ".checkpoint.aB3dE9.tmp",
            "tile/0/x003/.000.0123456789abcdef.tmp",
            "tile/0/x002/.999.0123456789abcdef.tmp",
            "tile/0/x003/001.p/.4.0123456789abcdef.tmp",
            "tile/entries/x003/.000.0123456789abcdef.tmp",
            "tile/1/.000.0123456789abcdef.tmp",
        ];
        fs::create_dir_all(root.join("tile/1")).expect("mkdir");
        for (i, t) in leftovers.iter().enumerate() {
            if i == 1 {
                std::os::unix::fs::symlink(&victim, root.join(t)).expect("symlink");
            } else {
                fs::write(root.join(t), b"torn").expect("write");
            }
        }
        let kept = [
            "tile/0/x003/notes.tmp",
            "tile/0/x003/.hidden",
            "tile/0/x003/keep",
        ];
        for k in kept {
            fs::write(root.join(k), b"keep").expect("write");
        }
        assert_eq!(dir.remove_temporaries().expect("sweep"), leftovers.len());
        for t in leftovers {
            assert!(fs::symlink_metadata(root.join(t)).is_err(), "{t}");
        }
        for k in kept {
            assert!(root.join(k).exists(), "{k}");
        }
        assert_eq!(fs::read(&victim).expect("read"), b"untouched");
        for f in [
            "tile/0/000",
            "tile/0/999",
            "tile/0/x001/000",
            "tile/0/x003/000",
            "tile/0/x003/001.p/4",
            "checkpoint",
        ] {
            assert!(root.join(f).exists(), "{f}");
        }
        // Only the last two groups of a level are searched: the edge.
        fs::write(root.join("tile/0/x001/.000.0123456789abcdef.tmp"), b"old").expect("write");
        assert_eq!(dir.remove_temporaries().expect("sweep"), 0);
    }
}
