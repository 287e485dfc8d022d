//! The write-ahead journal: the gateway's durability point.
//!
//! One record per commit batch, its payload opaque here, made durable with
//! one `pwritev` and one `fdatasync` before [`Journal::append`] returns.
//! Everything else the log keeps on disk is derived from the journal
//! afterwards, and at open the caller replays the records past what it
//! knows durable elsewhere ([`Journal::read_from`]), then releases the
//! segments it no longer needs ([`Journal::release_before`]).
//!
//! # On disk
//!
//! A directory (mode 0700) of segment files `<n>.jnl`, `n` a 20-digit
//! zero-padded decimal counting from 0, each mode 0600 and of
//! [`JournalOptions::segment_bytes`] bytes, filled with records in order
//! (the frame is in `record`: `u32 len | u32 crc32c | u64 seq | payload`,
//! little-endian) and zeros after the last. Records are numbered 0, 1, 2,
//! ... for the life of the journal. A record never spans segments: one that
//! does not fit in what is left of the segment goes to the start of the
//! next; one larger than a whole segment goes alone into the next one,
//! which grows past the nominal size. A file `start` holds the number of the
//! oldest segment kept, once any was released.
//!
//! # The commit path
//!
//! Segments are prepared ahead by a thread of the journal's own (`ahead`):
//! created as `.<n>.tmp`, allocated and zero-filled, `fsync`ed, renamed to
//! `<n>.jnl` without replacing anything, and the directory `fsync`ed. So
//! when a record is written into one, its name and size are durable already
//! and the record's `fdatasync` has only the record's own blocks to flush:
//! an append is exactly one `pwritev` and one `fdatasync`, with no create,
//! rename or directory sync, ever. (If no segment is ready when one is
//! needed, the append waits for the one under way or prepares it itself,
//! and [`Journal::stalls`] counts it.)
//!
//! A failed write or `fdatasync` poisons the journal (fsyncgate: the kernel
//! may have dropped the pages and the error with them, so nothing written
//! since the last good barrier can be trusted, nor retried): every append
//! after it fails with [`JournalError::Poisoned`], and the process must
//! restart, where [`Journal::open`] finds the durable end (`recover`).

mod ahead;
mod error;
#[cfg(feature = "faults")]
mod fault;
mod record;
mod records;
mod recover;
mod segment;
mod table;
mod window;

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use rustix::fs::AtFlags;
use rustix::io::Errno;

pub use error::JournalError;
#[cfg(feature = "faults")]
pub use fault::{FaultHook, Step, hook_from_switch, torn};
pub use records::Records;

use ahead::Ahead;
use record::Header;
use table::{Entry, Table};

/// The default size of a segment: 8 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 << 20;

/// The smallest segment size [`Journal::open`] uses (smaller ones are
/// raised to it).
pub const MIN_SEGMENT_BYTES: u64 = 4096;

/// The most iovecs one `pwritev` takes on Linux (`IOV_MAX`).
const IOV_MAX: usize = 1024;

/// How a journal is opened.
#[derive(Clone)]
pub struct JournalOptions {
    /// The size of each new segment, rounded up to a multiple of 4 KiB and
    /// at least [`MIN_SEGMENT_BYTES`]. Default [`DEFAULT_SEGMENT_BYTES`].
    pub segment_bytes: u64,
    /// Called before each record write and each barrier (test builds).
    #[cfg(feature = "faults")]
    pub fault: Option<FaultHook>,
}

impl Default for JournalOptions {
    fn default() -> JournalOptions {
        JournalOptions {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            #[cfg(feature = "faults")]
            fault: None,
        }
    }
}

impl std::fmt::Debug for JournalOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("JournalOptions");
        s.field("segment_bytes", &self.segment_bytes);
        #[cfg(feature = "faults")]
        s.field("fault", &self.fault.is_some());
        s.finish()
    }
}

/// The segment records are being written to.
#[derive(Debug)]
struct Writer {
    /// Its number.
    number: u64,
    file: Arc<File>,
    /// Where the next record goes.
    offset: u64,
    /// Its size.
    len: u64,
    /// A write or barrier failed: no more appends.
    poisoned: bool,
}

/// A write-ahead journal in a directory. `Send + Sync`: appends take turns
/// (one writer at a time, by an internal lock), reads and releases run
/// beside them.
pub struct Journal {
    dir: PathBuf,
    /// The directory, open (and `flock`ed) for the journal's life: its
    /// inode stays cached, so an error writing it back is not lost.
    dir_fd: Arc<OwnedFd>,
    table: Table,
    writer: Mutex<Writer>,
    /// The sequence number of the next record; published after its
    /// barrier, so readers never see a record that is not durable.
    next_seq: AtomicU64,
    /// The number of the segment being written, never released.
    tail: AtomicU64,
    disk_bytes: Arc<AtomicU64>,
    ahead: Arc<Ahead>,
    preparer: Option<JoinHandle<()>>,
    /// Releases take turns.
    releasing: Mutex<()>,
    #[cfg(feature = "faults")]
    fault: Option<FaultHook>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("first_seq", &self.first_seq())
            .field("next_seq", &self.next_seq())
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens the journal in `dir`, creating the directory (mode 0700) and
    /// the first segment if missing, and recovering after a crash: the
    /// journal ends at the last record that can have been durable, what a
    /// crash left after it is zeroed, leftover temporary files and released
    /// segments are removed.
    ///
    /// # Errors
    /// [`JournalError::Corrupt`] or [`JournalError::Missing`] for damage no
    /// crash explains (named by segment); [`JournalError::Io`] for I/O
    /// failures, including another open journal on the same directory.
    pub fn open(dir: &Path, options: JournalOptions) -> Result<Journal, JournalError> {
        let segment_bytes = options
            .segment_bytes
            .max(MIN_SEGMENT_BYTES)
            .next_multiple_of(4096);
        // Two journals on one directory would overwrite each other's
        // records. The lock goes with the descriptor, so with the journal.
        let dir_fd = crate::fsutil::open_locked_dir(dir, "journal")?;
        let dir_fd = Arc::new(dir_fd);
        let recovered = recover::recover(dir, dir_fd.as_fd(), segment_bytes)?;

        let table = Table::new(recovered.kept.into_iter().map(|k| {
            (
                k.number,
                Entry {
                    first: k.first,
                    file: k.file,
                },
            )
        }));
        let tail = recovered.tail;
        let want = match &recovered.ready {
            Some(_) => None,
            None => tail.number.checked_add(1),
        };
        let disk_bytes = Arc::new(AtomicU64::new(recovered.disk_bytes));
        let ahead = Ahead::new(
            dir_fd.clone(),
            segment_bytes,
            disk_bytes.clone(),
            recovered.ready,
            want,
        );
        let preparer = ahead.spawn()?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            dir_fd,
            table,
            tail: AtomicU64::new(tail.number),
            writer: Mutex::new(Writer {
                number: tail.number,
                file: tail.file,
                offset: tail.offset,
                len: tail.len,
                poisoned: false,
            }),
            next_seq: AtomicU64::new(recovered.next_seq),
            disk_bytes,
            ahead,
            preparer: Some(preparer),
            releasing: Mutex::new(()),
            #[cfg(feature = "faults")]
            fault: options.fault,
        })
    }

    /// The sequence number the next append gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Acquire)
    }

    /// The oldest record kept; [`next_seq`](Journal::next_seq) when there
    /// is none.
    pub fn first_seq(&self) -> u64 {
        // Read in this order: a record appended in between makes the table
        // non-empty with a first seq no greater than the `next` read.
        let next = self.next_seq();
        self.table.first_seq().unwrap_or(next)
    }

    /// Appends one record whose payload is `parts` concatenated, durable
    /// when this returns `Ok`, with its sequence number.
    ///
    /// The cost is one `pwritev` (of the header and `parts`, no copy) and
    /// one `fdatasync`, plus, every segment, taking the next prepared
    /// segment from the preparer.
    ///
    /// # Errors
    /// [`JournalError::Poisoned`] if the write or the barrier fails now or
    /// failed before; [`JournalError::TooLarge`] for a payload of 4 GiB or
    /// more; [`JournalError::Io`] if a new segment was needed and could not
    /// be prepared (the journal stays usable).
    pub fn append(&self, parts: &[&[u8]]) -> Result<u64, JournalError> {
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if w.poisoned {
            return Err(JournalError::Poisoned { cause: None });
        }
        let seq = self.next_seq.load(Ordering::Acquire);
        let Some(header) = Header::of(seq, parts) else {
            let len = parts.iter().map(|p| p.len() as u64).sum();
            return Err(JournalError::TooLarge { len });
        };
        let size = header.record_len();
        // A record that does not fit goes to the next segment, unless the
        // segment is empty: then it goes here and the file grows.
        if w.offset > 0 && w.offset + size > w.len {
            self.switch(&mut w)?;
        }
        #[cfg(feature = "faults")]
        if let Some(injected) = self
            .fault
            .as_ref()
            .and_then(|hook| hook(fault::Step::Write).err())
        {
            if !fault::is_torn(&injected) {
                // Nothing was written: the journal is as it was, as after
                // a write refused before it started (a full disk).
                return Err(JournalError::Io(injected));
            }
            let mut bytes = header.encode().to_vec();
            parts.iter().for_each(|p| bytes.extend_from_slice(p));
            bytes.truncate(bytes.len() / 2);
            // Half the record reaches the file; the write then fails.
            let _ = write_all_vectored(&w.file, w.offset, &mut [IoSlice::new(&bytes)]);
            w.poisoned = true;
            return Err(JournalError::Poisoned {
                cause: Some(injected),
            });
        }
        let written = self
            .write(&w, &header, parts)
            .and_then(|()| self.barrier(&w));
        if let Err(cause) = written {
            w.poisoned = true;
            return Err(JournalError::Poisoned { cause: Some(cause) });
        }
        if w.offset == 0 {
            self.table.insert(w.number, seq, w.file.clone());
        }
        w.offset += size;
        if w.offset > w.len {
            self.disk_bytes
                .fetch_add(w.offset - w.len, Ordering::Relaxed);
            w.len = w.offset;
        }
        self.next_seq.store(seq + 1, Ordering::Release);
        Ok(seq)
    }

    /// Moves the writer to the next segment.
    fn switch(&self, w: &mut Writer) -> Result<(), JournalError> {
        let number = w.number.checked_add(1).ok_or(JournalError::Corrupt {
            segment: w.number,
            reason: "no segment number after it",
        })?;
        let next = self.ahead.take(number)?;
        w.number = number;
        w.file = next.file;
        w.offset = 0;
        w.len = next.len;
        self.tail.store(number, Ordering::Release);
        Ok(())
    }

    /// Writes the record at the writer's offset: one `pwritev` of the
    /// header and `parts` (more only for a short write, or for more parts
    /// than one call takes).
    fn write(&self, w: &Writer, header: &Header, parts: &[&[u8]]) -> io::Result<()> {
        let head = header.encode();
        let mut slices: Vec<IoSlice<'_>> = std::iter::once(&head[..])
            .chain(parts.iter().copied())
            .filter(|s| !s.is_empty())
            .map(IoSlice::new)
            .collect();
        write_all_vectored(&w.file, w.offset, &mut slices)
    }

    /// Makes the record just written durable.
    fn barrier(&self, w: &Writer) -> io::Result<()> {
        #[cfg(feature = "faults")]
        if let Some(hook) = &self.fault
            && let Err(e) = hook(fault::Step::Barrier)
        {
            return if fault::is_skip(&e) { Ok(()) } else { Err(e) };
        }
        w.file.sync_data()
    }

    /// The records from `seq` to the end of the journal as it is now, in
    /// order. A record fails to read only if the disk lost or damaged it
    /// after it was appended ([`JournalError::Corrupt`]).
    ///
    /// # Errors
    /// [`JournalError::Released`] if `seq` is older than
    /// [`first_seq`](Journal::first_seq); [`JournalError::Beyond`] if it is
    /// past [`next_seq`](Journal::next_seq) (equal is an empty read).
    pub fn read_from(&self, seq: u64) -> Result<Records<'_>, JournalError> {
        let end = self.next_seq();
        if seq > end {
            return Err(JournalError::Beyond { seq, next: end });
        }
        let first = self.table.first_seq().unwrap_or(end);
        if seq < first {
            return Err(JournalError::Released { seq, first });
        }
        Ok(Records::new(&self.table, seq, end))
    }

    /// Removes the oldest segments whose records are all below `seq`, never
    /// the one being written; returns the bytes freed. Records at or above
    /// `seq` stay readable; some below it may too (whole segments only).
    ///
    /// The number of the oldest segment kept is written first, durably, to
    /// `start`; the unlinks that follow need no directory `fsync`. A crash
    /// may undo some of them, leaving any subset of the released segments
    /// behind: the next [`Journal::open`] knows from `start` that they are
    /// released (every record in them is below what the caller still
    /// needs) and removes them again. So a segment missing at or after
    /// `start` is damage, not a crash's doing, and is reported as such.
    ///
    /// # Errors
    /// An I/O failure writing `start` (nothing released) or unlinking (the
    /// segments are released all the same; the next open removes any left).
    pub fn release_before(&self, seq: u64) -> Result<u64, JournalError> {
        let _turn = self
            .releasing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let numbers = self
            .table
            .releasable(seq, self.tail.load(Ordering::Acquire));
        let Some(&last) = numbers.last() else {
            return Ok(0);
        };
        segment::write_start(&self.dir, last + 1)?;
        let mut freed = 0;
        let mut failed = None;
        for (number, file) in self.table.remove(&numbers) {
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            match rustix::fs::unlinkat(self.dir_fd.as_fd(), segment::name(number), AtFlags::empty())
            {
                Ok(()) | Err(Errno::NOENT) => freed += len,
                Err(e) => failed = Some(io::Error::from(e)),
            }
        }
        self.disk_bytes.fetch_sub(freed, Ordering::Relaxed);
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(freed),
        }
    }

    /// Whether a failed write or barrier poisoned the journal: every
    /// append fails until it is reopened.
    pub fn poisoned(&self) -> bool {
        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .poisoned
    }

    /// Bytes of all the journal's segment files, the prepared one included.
    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes.load(Ordering::Relaxed)
    }

    /// Times an append needed a new segment and none was prepared yet (it
    /// waited for it or prepared it itself).
    pub fn stalls(&self) -> u64 {
        self.ahead.stalls()
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.ahead.stop();
        if let Some(preparer) = self.preparer.take() {
            // A panic in the preparer has nothing left to clean up.
            let _ = preparer.join();
        }
    }
}

/// Writes all of `slices` at `offset`, one `pwritev` when the kernel takes
/// it all at once (it does for a regular file, short of a failure).
fn write_all_vectored(
    file: &File,
    mut offset: u64,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    while !slices.is_empty() {
        let batch = &slices[..slices.len().min(IOV_MAX)];
        match rustix::io::pwritev(file, batch, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                offset += n as u64;
                IoSlice::advance_slices(&mut slices, n);
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
