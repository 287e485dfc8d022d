//! Envelope bodies in plain files, appended without a barrier and reclaimed
//! online.
//!
//! Bodies waiting in inboxes (and, in a second instance with
//! [`BlobOptions::reclaim`] off, envelopes kept for good) go into numbered
//! files `DIR/<n>.blb` (20 decimal digits, mode 0600), filled one after the
//! other up to [`BlobOptions::file_bytes`]. A body is written when its batch
//! commits, *without* a barrier: the batch's journal record holds a copy,
//! so a crash is repaired by replaying the journal ([`Blobs::write`] at the
//! locator the record names). The caller makes the bodies durable with
//! [`Blobs::sync`] before it releases the journal segment holding their
//! copies.
//!
//! A file is reclaimed (unlinked) once no live body is in it: the caller
//! pins a body's locator while the body is live ([`Blobs::place`] pins the
//! new one) and unpins it when it is acknowledged. Pins live in memory only:
//! after [`Blobs::open`] they are all zero, so the caller must re-pin every
//! live locator it holds, then call [`Blobs::ready`]; [`Blobs::reclaim`]
//! refuses to run before that ([`BlobError::NotReady`]), so a restart can
//! never reclaim live bodies.
//!
//! At open, also replay the journal's body writes before the first
//! [`Blobs::place`]: a write at a locator at or past the fill position
//! moves the fill position past it, so new bodies never overwrite replayed
//! ones (whose files a crash may have lost entirely).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

/// The default size of a body file: 4 MiB.
pub const DEFAULT_FILE_BYTES: u64 = 4 << 20;

/// Where a body is: file number, offset and length. Stored by the caller
/// (20 bytes, [`Locator::to_bytes`]) in its index and in journal records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Locator {
    /// The body file's number.
    pub file: u64,
    /// The body's offset in it.
    pub offset: u64,
    /// The body's length.
    pub len: u32,
}

impl Locator {
    /// `file | offset | len`, little-endian.
    pub fn to_bytes(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        out[0..8].copy_from_slice(&self.file.to_le_bytes());
        out[8..16].copy_from_slice(&self.offset.to_le_bytes());
        out[16..20].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    /// Parses [`to_bytes`](Locator::to_bytes)'s output; `None` unless `b`
    /// is exactly 20 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Locator> {
        let b: &[u8; 20] = b.try_into().ok()?;
        let (file, rest) = b.split_first_chunk::<8>()?;
        let (offset, len) = rest.split_first_chunk::<8>()?;
        let len: &[u8; 4] = len.try_into().ok()?;
        Some(Locator {
            file: u64::from_le_bytes(*file),
            offset: u64::from_le_bytes(*offset),
            len: u32::from_le_bytes(*len),
        })
    }

    /// The offset just past the body.
    fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// How a body store is opened.
#[derive(Clone, Debug)]
pub struct BlobOptions {
    /// Bytes per file before the next body starts a new one (a body larger
    /// than this goes alone into a file of its own). Default
    /// [`DEFAULT_FILE_BYTES`].
    pub file_bytes: u64,
    /// Whether [`Blobs::reclaim`] unlinks files without pins; `false` for
    /// bodies kept for good.
    pub reclaim: bool,
}

impl Default for BlobOptions {
    fn default() -> BlobOptions {
        BlobOptions {
            file_bytes: DEFAULT_FILE_BYTES,
            reclaim: true,
        }
    }
}

/// An error from the body store. None carries a body's contents.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// An I/O error that left the store usable (opening, reading,
    /// unlinking).
    #[error("body store I/O error: {0}")]
    Io(#[from] io::Error),
    /// A body's file is not there (reclaimed, or never written).
    #[error("body file {file} is missing")]
    Missing {
        /// The file's number.
        file: u64,
    },
    /// A body's file ends before the body does.
    #[error("body file {file} is shorter than a body in it")]
    Short {
        /// The file's number.
        file: u64,
    },
    /// A write's bytes are not as long as its locator says.
    #[error("a body of {got} bytes written at a locator of {expected}")]
    Length {
        /// The locator's length.
        expected: u32,
        /// The bytes given.
        got: usize,
    },
    /// A write or sync failed, now (`cause`) or earlier (`None`): the store
    /// refuses writes and syncs from then on, since a later sync could
    /// succeed without the failed pages on disk (fsyncgate). The process
    /// must restart and replay the journal.
    #[error("the body store stopped after a failed write or sync; restart to recover")]
    Poisoned {
        /// The failure, on the call that met it.
        #[source]
        cause: Option<io::Error>,
    },
    /// [`Blobs::reclaim`] before [`Blobs::ready`]: pins are not rebuilt
    /// yet, so live bodies would look dead.
    #[error("reclaim before the live bodies were re-pinned (call ready first)")]
    NotReady,
}

/// A body file the store knows of.
#[derive(Debug, Default)]
struct Known {
    /// Open, once read or written.
    file: Option<Arc<File>>,
    /// Bytes on disk (the furthest end written, or the size found at open).
    bytes: u64,
}

/// The store's state, under one lock (held for bookkeeping and opening
/// files, never across a body's write, read or sync).
#[derive(Debug, Default)]
struct State {
    /// Files on disk, by number.
    files: BTreeMap<u64, Known>,
    /// Live bodies per file.
    pins: BTreeMap<u64, u64>,
    /// The file being filled, and where its next body goes.
    current: u64,
    next_offset: u64,
    /// Files written since the last sync.
    dirty: BTreeSet<u64>,
    /// A file was created since the last sync: the directory needs one.
    created: bool,
    /// A write or sync failed.
    poisoned: bool,
    /// The caller re-pinned the live bodies after open.
    ready: bool,
}

/// Body files in a directory. `Send + Sync`.
#[derive(Debug)]
pub struct Blobs {
    dir: PathBuf,
    /// The directory, open (and `flock`ed) for the store's life.
    dir_fd: OwnedFd,
    options: BlobOptions,
    state: Mutex<State>,
}

impl Blobs {
    /// Opens the body files in `dir`, creating it (mode 0700) if missing.
    /// New bodies go into a new file after the highest there is. Pins are
    /// all zero: re-pin, then [`ready`](Blobs::ready).
    ///
    /// # Errors
    /// An I/O failure, including another store open on the directory.
    pub fn open(dir: &Path, options: BlobOptions) -> Result<Blobs, BlobError> {
        // Two stores on one directory would fill the same files.
        let dir_fd = crate::fsutil::open_locked_dir(dir, "body store")?;
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let Some(number) = entry.file_name().to_str().and_then(parse_name) else {
                continue;
            };
            let bytes = entry.metadata()?.len();
            files.insert(number, Known { file: None, bytes });
        }
        let current = match files.keys().next_back() {
            Some(&highest) => highest.saturating_add(1),
            None => 0,
        };
        Ok(Blobs {
            dir: dir.to_path_buf(),
            dir_fd,
            options,
            state: Mutex::new(State {
                files,
                current,
                ..State::default()
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent: a panic elsewhere does
        // not make it unusable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where the next body of `len` bytes goes: the next position in the
    /// file being filled, or the start of a new file when it would overflow
    /// it. Pins the body. A body of 4 GiB or more gets a locator whose
    /// write fails ([`BlobError::Length`]).
    pub fn place(&self, len: usize) -> Locator {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        let mut state = self.lock();
        if state.next_offset > 0 && state.next_offset + u64::from(len) > self.options.file_bytes {
            state.current += 1;
            state.next_offset = 0;
        }
        let at = Locator {
            file: state.current,
            offset: state.next_offset,
            len,
        };
        state.next_offset = at.end();
        *state.pins.entry(at.file).or_default() += 1;
        at
    }

    /// Writes a body at `at` (from [`place`](Blobs::place), or from a
    /// journal record being replayed), creating its file if needed; no
    /// barrier ([`sync`](Blobs::sync) is the barrier).
    ///
    /// # Errors
    /// [`BlobError::Length`] if `bytes` is not `at.len` long;
    /// [`BlobError::Poisoned`] if the write fails, now or before.
    pub fn write(&self, at: &Locator, bytes: &[u8]) -> Result<(), BlobError> {
        if bytes.len() != at.len as usize {
            return Err(BlobError::Length {
                expected: at.len,
                got: bytes.len(),
            });
        }
        let file = {
            let mut state = self.lock();
            if state.poisoned {
                return Err(BlobError::Poisoned { cause: None });
            }
            // A replayed body at or past the fill position: fill after it.
            if (at.file, at.end()) > (state.current, state.next_offset) {
                state.current = at.file;
                state.next_offset = at.end();
            }
            match self.file(&mut state, at.file, true) {
                Ok(file) => file,
                Err(e) => {
                    state.poisoned = true;
                    return Err(BlobError::Poisoned { cause: Some(e) });
                }
            }
        };
        let written = file.write_all_at(bytes, at.offset);
        let mut state = self.lock();
        if let Err(e) = written {
            state.poisoned = true;
            return Err(BlobError::Poisoned { cause: Some(e) });
        }
        state.dirty.insert(at.file);
        if let Some(known) = state.files.get_mut(&at.file) {
            known.bytes = known.bytes.max(at.end());
        }
        Ok(())
    }

    /// The open file `number`, opening it (and with `create`, creating it,
    /// mode 0600) if needed.
    fn file(&self, state: &mut State, number: u64, create: bool) -> io::Result<Arc<File>> {
        if let Some(file) = state.files.get(&number).and_then(|k| k.file.clone()) {
            return Ok(file);
        }
        let name = file_name(number);
        let flags = OFlags::RDWR | OFlags::CLOEXEC;
        let (fd, created) = if create {
            match rustix::fs::openat(
                &self.dir_fd,
                &name,
                flags | OFlags::CREATE | OFlags::EXCL,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => (fd, true),
                Err(Errno::EXIST) => (
                    rustix::fs::openat(&self.dir_fd, &name, flags, Mode::empty())?,
                    false,
                ),
                Err(e) => return Err(e.into()),
            }
        } else {
            (
                rustix::fs::openat(&self.dir_fd, &name, flags, Mode::empty())?,
                false,
            )
        };
        let file = Arc::new(File::from(fd));
        state.created |= created;
        let known = state.files.entry(number).or_default();
        known.file = Some(file.clone());
        Ok(file)
    }

    /// Makes every body written so far durable: `fdatasync` each file
    /// written since the last sync, then `fsync` the directory if files
    /// were created. Call before releasing the journal segment that holds
    /// their copies.
    ///
    /// # Errors
    /// [`BlobError::Poisoned`] if a sync fails, now or before.
    pub fn sync(&self) -> Result<(), BlobError> {
        let (files, created) = {
            let mut state = self.lock();
            if state.poisoned {
                return Err(BlobError::Poisoned { cause: None });
            }
            let dirty = std::mem::take(&mut state.dirty);
            let files: Vec<Arc<File>> = dirty
                .iter()
                .filter_map(|n| state.files.get(n).and_then(|k| k.file.clone()))
                .collect();
            (files, std::mem::take(&mut state.created))
        };
        let mut synced = files.iter().try_for_each(|f| f.sync_data());
        if synced.is_ok() && created {
            synced = rustix::fs::fsync(&self.dir_fd).map_err(io::Error::from);
        }
        if let Err(e) = synced {
            self.lock().poisoned = true;
            return Err(BlobError::Poisoned { cause: Some(e) });
        }
        Ok(())
    }

    /// Reads the body at `at`.
    ///
    /// # Errors
    /// [`BlobError::Missing`] if its file is not there (reclaimed, or lost
    /// and not replayed); [`BlobError::Short`] if the file ends before the
    /// body; [`BlobError::Io`] for a failed read.
    pub fn read(&self, at: &Locator) -> Result<Vec<u8>, BlobError> {
        let file = {
            let mut state = self.lock();
            match self.file(&mut state, at.file, false) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(BlobError::Missing { file: at.file });
                }
                Err(e) => return Err(e.into()),
            }
        };
        let mut out = vec![0u8; at.len as usize];
        match file.read_exact_at(&mut out, at.offset) {
            Ok(()) => Ok(out),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(BlobError::Short { file: at.file })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Counts the body at `at` as live: its file is not reclaimed.
    pub fn pin(&self, at: &Locator) {
        *self.lock().pins.entry(at.file).or_default() += 1;
    }

    /// Counts the body at `at` as dead (once per pin; more unpins than
    /// pins count as none).
    pub fn unpin(&self, at: &Locator) {
        let mut state = self.lock();
        if let Some(pins) = state.pins.get_mut(&at.file) {
            *pins = pins.saturating_sub(1);
            if *pins == 0 {
                state.pins.remove(&at.file);
            }
        }
    }

    /// Declares the pins rebuilt after open: every live locator the caller
    /// holds is pinned. [`reclaim`](Blobs::reclaim) runs only after this.
    pub fn ready(&self) {
        self.lock().ready = true;
    }

    /// Unlinks every file without pins except the one being filled;
    /// returns the bytes freed (0, doing nothing, for a store that keeps
    /// its bodies for good).
    ///
    /// Unlinks need no directory sync: a file a crash brings back holds no
    /// live body (nothing pins it after the restart either) and is
    /// reclaimed again.
    ///
    /// # Errors
    /// [`BlobError::NotReady`] before [`ready`](Blobs::ready); an I/O error
    /// unlinking (the files are forgotten all the same; a later open finds
    /// any left and the next reclaim removes them).
    pub fn reclaim(&self) -> Result<u64, BlobError> {
        if !self.options.reclaim {
            return Ok(0);
        }
        let dead: Vec<(u64, u64)> = {
            let mut state = self.lock();
            if !state.ready {
                return Err(BlobError::NotReady);
            }
            let dead: Vec<u64> = state
                .files
                .keys()
                .copied()
                .filter(|n| *n != state.current && !state.pins.contains_key(n))
                .collect();
            dead.into_iter()
                .filter_map(|n| {
                    state.dirty.remove(&n);
                    state.files.remove(&n).map(|k| (n, k.bytes))
                })
                .collect()
        };
        let mut freed = 0;
        let mut failed = None;
        for (number, bytes) in dead {
            match rustix::fs::unlinkat(&self.dir_fd, file_name(number), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => freed += bytes,
                Err(e) => failed = Some(io::Error::from(e)),
            }
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(freed),
        }
    }

    /// Bytes of all the body files.
    pub fn disk_bytes(&self) -> u64 {
        self.lock().files.values().map(|k| k.bytes).sum()
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The file name of body file `number`.
fn file_name(number: u64) -> String {
    format!("{number:020}.blb")
}

/// The number in a body file's name.
fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".blb")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn small(reclaim: bool) -> BlobOptions {
        BlobOptions {
            file_bytes: 4096,
            reclaim,
        }
    }

    fn body(i: usize, len: usize) -> Vec<u8> {
        (0..len).map(|k| (i * 31 + k) as u8).collect()
    }

    fn numbers(dir: &Path) -> Vec<u64> {
        let mut out: Vec<u64> = std::fs::read_dir(dir)
            .expect("read dir")
            .filter_map(|e| parse_name(e.expect("entry").file_name().to_str()?))
            .collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn locators_round_trip_as_20_bytes() {
        let at = Locator {
            file: 0x0102_0304_0506_0708,
            offset: 9,
            len: 0x0a0b_0c0d,
        };
        let bytes = at.to_bytes();
        assert_eq!(&bytes[0..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&bytes[8..16], &[9, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[16..20], &[0x0d, 0x0c, 0x0b, 0x0a]);
        assert_eq!(Locator::from_bytes(&bytes), Some(at));
        assert_eq!(Locator::from_bytes(&bytes[..19]), None);
        assert_eq!(Locator::from_bytes(&[0u8; 21]), None);
    }

    #[test]
    fn bodies_round_trip_across_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path(), small(true)).expect("open");
        let mut placed = Vec::new();
        // 1,000-byte bodies, four a file; one larger than a file, alone (the
        // next, even empty, starts a new file).
        for (i, len) in [1000, 1000, 1000, 1000, 1000, 10_000, 0, 1000]
            .into_iter()
            .enumerate()
        {
            let at = blobs.place(len);
            blobs.write(&at, &body(i, len)).expect("write");
            placed.push((at, body(i, len)));
        }
        blobs.sync().expect("sync");
        let files: Vec<u64> = placed.iter().map(|(at, _)| at.file).collect();
        assert_eq!(files, vec![0, 0, 0, 0, 1, 2, 3, 3]);
        assert_eq!(placed[5].0.offset, 0, "the large body starts its file");
        for (at, bytes) in &placed {
            assert_eq!(&blobs.read(at).expect("read"), bytes);
        }
        assert_eq!(numbers(dir.path()), vec![0, 1, 2, 3]);
        for n in 0..4 {
            let path = dir.path().join(file_name(n));
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(blobs.disk_bytes(), 4000 + 1000 + 10_000 + 1000);
        assert!(matches!(
            blobs.write(&placed[0].0, b"short"),
            Err(BlobError::Length {
                expected: 1000,
                got: 5
            })
        ));
        assert!(matches!(
            Blobs::open(dir.path(), small(true)),
            Err(BlobError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock
        ));
        drop(blobs);

        // Reopened: old bodies read back, new ones go after the highest file.
        let blobs = Blobs::open(dir.path(), small(true)).expect("reopen");
        for (at, bytes) in &placed {
            assert_eq!(&blobs.read(at).expect("read"), bytes);
        }
        let at = blobs.place(10);
        assert_eq!((at.file, at.offset), (4, 0));
    }

    #[test]
    fn reclaim_frees_exactly_the_unpinned_files_before_the_current_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path(), small(true)).expect("open");
        // Files 0..=3, two bodies each, then one body in file 4 (current).
        let placed: Vec<Locator> = (0..9)
            .map(|i| {
                let at = blobs.place(2000);
                blobs.write(&at, &body(i, 2000)).expect("write");
                at
            })
            .collect();
        assert_eq!(placed[8].file, 4);
        blobs.sync().expect("sync");
        assert!(matches!(blobs.reclaim(), Err(BlobError::NotReady)));
        blobs.ready();
        assert_eq!(blobs.reclaim().expect("reclaim"), 0, "everything is live");
        // File 0: both dead. File 1: one dead. File 2: both dead but pinned
        // twice more by the caller, then one unpinned. File 4 (current): dead.
        for i in [0, 1, 2, 4, 5, 8] {
            blobs.unpin(&placed[i]);
        }
        blobs.pin(&placed[4]);
        blobs.pin(&placed[4]);
        blobs.unpin(&placed[4]);
        let freed = blobs.reclaim().expect("reclaim");
        assert_eq!(freed, 4000);
        assert_eq!(numbers(dir.path()), vec![1, 2, 3, 4]);
        assert_eq!(blobs.disk_bytes(), 4 * 4000 - 4000 + 2000);
        assert!(matches!(
            blobs.read(&placed[0]),
            Err(BlobError::Missing { file: 0 })
        ));
        assert_eq!(blobs.read(&placed[3]).expect("live"), body(3, 2000));
        // More unpins than pins count as none: file 2 goes now.
        blobs.unpin(&placed[4]);
        blobs.unpin(&placed[4]);
        assert_eq!(blobs.reclaim().expect("reclaim"), 4000);
        assert_eq!(numbers(dir.path()), vec![1, 3, 4]);
    }

    #[test]
    fn a_store_kept_for_good_never_reclaims() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path(), small(false)).expect("open");
        for i in 0..5 {
            let at = blobs.place(3000);
            blobs.write(&at, &body(i, 3000)).expect("write");
            blobs.unpin(&at);
        }
        assert_eq!(blobs.reclaim().expect("reclaim"), 0);
        assert_eq!(numbers(dir.path()).len(), 5);
    }

    #[test]
    fn a_replayed_write_recreates_its_file_and_the_next_reclaim_removes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old, newest) = {
            let blobs = Blobs::open(dir.path(), small(true)).expect("open");
            let old = blobs.place(3000);
            blobs.write(&old, &body(1, 3000)).expect("write");
            let newest = blobs.place(3000);
            blobs.write(&newest, &body(2, 3000)).expect("write");
            blobs.sync().expect("sync");
            blobs.unpin(&old);
            blobs.ready();
            assert_eq!(blobs.reclaim().expect("reclaim"), 3000);
            (old, newest)
        };
        assert_eq!(numbers(dir.path()), vec![1]);
        let blobs = Blobs::open(dir.path(), small(true)).expect("reopen");
        // Replay of the journal: the old body's write comes again.
        blobs.write(&old, &body(1, 3000)).expect("replay");
        assert_eq!(blobs.read(&old).expect("read"), body(1, 3000));
        blobs.sync().expect("sync");
        blobs.pin(&newest);
        blobs.ready();
        assert_eq!(blobs.reclaim().expect("reclaim"), 3000);
        assert_eq!(numbers(dir.path()), vec![1]);
        assert!(matches!(blobs.read(&old), Err(BlobError::Missing { .. })));
    }

    #[test]
    fn a_replayed_write_past_the_fill_position_moves_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path(), small(true)).expect("open");
        // Before the crash, bodies went into file 0 and 1, but no file
        // reached the disk: the reopened store would start at file 0.
        let lost = Locator {
            file: 1,
            offset: 100,
            len: 50,
        };
        blobs.write(&lost, &body(7, 50)).expect("replay");
        let next = blobs.place(10);
        assert_eq!((next.file, next.offset), (1, 150));
        assert_eq!(blobs.read(&lost).expect("read"), body(7, 50));
    }

    #[test]
    fn a_file_cut_short_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path(), small(true)).expect("open");
        let at = blobs.place(1000);
        blobs.write(&at, &body(0, 1000)).expect("write");
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(file_name(0)))
            .expect("open")
            .set_len(10)
            .expect("cut");
        assert!(matches!(blobs.read(&at), Err(BlobError::Short { file: 0 })));
    }
}
