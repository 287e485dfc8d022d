//! Opening a journal directory: find the durable end, repair what a crash
//! left after it, and hand over the segments.
//!
//! Records are written one at a time, each `fdatasync`ed before the next is
//! written, into segments that were zero-filled and made durable before
//! their first record. So after any crash the journal on disk is a run of
//! good records, possibly followed by one record that is torn or was never
//! synced, then zeros. The first header that is all zeros, fails its
//! checksum, does not continue the sequence, or runs past the end of its
//! file, is therefore the end: nothing after it was ever acknowledged.
//!
//! What is after the end is zeroed and synced, so that a shorter record
//! written there later can never be followed by stale bytes that parse as
//! its successor. Only a bad record *followed by good records in a later
//! segment* cannot come from a crash: that is corruption, reported and
//! left as it is.
//!
//! Segments are scanned with `O_DIRECT` where the filesystem allows it, so
//! the scan sees the disk, not pages a failed write-back may have left in
//! the page cache looking written (after an `fdatasync` error the kernel
//! may keep such pages clean and readable). The zeroing covers what either
//! view holds past the end, so the cache and the disk agree again.

use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::error::JournalError;
use super::segment::{self, Prepared};
use super::window::{Read, WINDOW, Window};

/// A segment that holds records.
#[derive(Debug)]
pub(super) struct Kept {
    /// Its number.
    pub number: u64,
    /// The sequence number of its first record.
    pub first: u64,
    /// Open for reading and writing.
    pub file: Arc<File>,
}

/// Where appending continues.
#[derive(Debug)]
pub(super) struct Tail {
    /// The segment appended to.
    pub number: u64,
    /// Open for reading and writing.
    pub file: Arc<File>,
    /// Where the next record goes.
    pub offset: u64,
    /// The segment's size.
    pub len: u64,
}

/// A journal directory, recovered.
#[derive(Debug)]
pub(super) struct Recovered {
    /// The segments holding records, oldest first (the tail's among them
    /// if it holds any).
    pub kept: Vec<Kept>,
    /// Where appending continues.
    pub tail: Tail,
    /// The sequence number of the next record.
    pub next_seq: u64,
    /// An empty segment after the tail, ready for use.
    pub ready: Option<Prepared>,
    /// Bytes of all the segment files.
    pub disk_bytes: u64,
}

/// One segment file found in the directory.
struct Found {
    number: u64,
    file: Arc<File>,
    /// The same file opened with `O_DIRECT` when the filesystem allows it.
    direct: Option<Arc<File>>,
}

impl Found {
    fn window(&self) -> io::Result<Window> {
        match &self.direct {
            Some(direct) => Window::new(direct.clone(), true),
            None => Window::new(self.file.clone(), false),
        }
    }
}

/// Where the scan found the end.
#[derive(Clone, Copy, Debug)]
struct End {
    /// Index of the segment the next record goes to.
    index: usize,
    /// Its offset there.
    offset: u64,
    /// The segment to name if a record turns up after the end.
    blame: u64,
}

/// Recovers the journal in `dir` (which exists), preparing segments of
/// `segment_bytes` when it has none.
pub(super) fn recover(
    dir: &Path,
    dir_fd: BorrowedFd<'_>,
    segment_bytes: u64,
) -> Result<Recovered, JournalError> {
    let listing = segment::list(dir)?;
    for temp in &listing.temps {
        unlink(dir_fd, temp)?;
    }
    let start = segment::read_start(dir)?;
    // Older segments are leftovers of a `release_before` whose unlinks a
    // crash undid: every record in them is below what anyone still needs.
    let (released, live): (Vec<u64>, Vec<u64>) = listing.segments.iter().partition(|&&n| n < start);
    for number in released {
        unlink(dir_fd, &segment::name(number))?;
    }
    for (i, &number) in live.iter().enumerate() {
        let want = start + i as u64;
        if number != want {
            return Err(JournalError::Missing { segment: want });
        }
    }
    if live.is_empty() {
        if start > 0 {
            return Err(JournalError::Missing { segment: start });
        }
        // A new journal.
        let first = segment::prepare(dir_fd, 0, segment_bytes)?;
        return Ok(Recovered {
            kept: Vec::new(),
            tail: Tail {
                number: 0,
                len: first.len,
                file: first.file,
                offset: 0,
            },
            next_seq: 0,
            ready: None,
            disk_bytes: segment_bytes,
        });
    }
    let mut found = Vec::with_capacity(live.len());
    for &number in &live {
        found.push(open_segment(dir_fd, number)?);
    }

    let (kept_firsts, end, next_seq) = scan(&found, start)?;
    if start > 0 && kept_firsts.is_empty() {
        return Err(JournalError::Corrupt {
            segment: start,
            reason: "the oldest kept segment holds no record",
        });
    }

    // Everything checked: now repair. One empty segment after the tail is
    // kept as the next one, if it has the configured size (one from an
    // earlier configuration, or cut short, is not worth keeping: the
    // preparer makes a proper one); any others are removed.
    let keep = match found.get(end.index + 1) {
        Some(spare) if spare.file.metadata()?.len() == segment_bytes => end.index + 2,
        _ => end.index + 1,
    };
    for extra in found.drain(keep.min(found.len())..) {
        unlink(dir_fd, &segment::name(extra.number))?;
    }
    for (i, seg) in found.iter().enumerate().skip(end.index) {
        let from = if i == end.index { end.offset } else { 0 };
        zero_after(seg, from)?;
    }
    rustix::fs::fsync(dir_fd).map_err(io::Error::from)?;

    let mut disk_bytes = 0;
    for seg in &found {
        disk_bytes += seg.file.metadata()?.len();
    }
    let mut segments = found.into_iter();
    let mut kept = Vec::with_capacity(kept_firsts.len());
    for &first in &kept_firsts {
        let Some(seg) = segments.next() else { break };
        kept.push(Kept {
            number: seg.number,
            first,
            file: seg.file,
        });
    }
    // The tail is the last segment holding records (the scan ends the
    // journal there), or the first segment of a journal with none yet.
    let (number, file) = match kept.last() {
        Some(last) => (last.number, last.file.clone()),
        None => match segments.next() {
            Some(seg) => (seg.number, seg.file),
            None => return Err(JournalError::Missing { segment: start }),
        },
    };
    let tail = Tail {
        number,
        len: file.metadata()?.len(),
        file,
        offset: end.offset,
    };
    let ready = match segments.next() {
        Some(seg) => {
            let len = seg.file.metadata()?.len();
            Some(Prepared {
                number: seg.number,
                file: seg.file,
                len,
            })
        }
        None => None,
    };
    Ok(Recovered {
        kept,
        tail,
        next_seq,
        ready,
        disk_bytes,
    })
}

/// Reads every segment in order, checking every record. Returns the first
/// sequence number of each segment that holds records (a prefix of
/// `found`), where the journal ends, and the next sequence number.
fn scan(found: &[Found], start: u64) -> Result<(Vec<u64>, End, u64), JournalError> {
    // A journal never released starts at record 0; after a release the
    // first kept record is whatever the first segment begins with.
    let mut expected = (start == 0).then_some(0u64);
    let mut firsts = Vec::new();
    let mut end: Option<End> = None;
    // Where the records of the previous segment ended.
    let mut previous_end = 0;
    for (i, seg) in found.iter().enumerate() {
        let mut window = seg.window()?;
        if let Some(end) = end {
            // A record here would have been written after a record that is
            // not durable, which never happens: the damage is corruption.
            if let Read::Record { .. } = window.record(0)? {
                return Err(JournalError::Corrupt {
                    segment: end.blame,
                    reason: "a damaged record is followed by records in a later segment",
                });
            }
            continue;
        }
        let mut offset = 0;
        let mut first = None;
        let stop = loop {
            match window.record(offset)? {
                Read::Record { header, .. } if expected.is_none_or(|e| header.seq == e) => {
                    first.get_or_insert(header.seq);
                    // Saturating: a damaged header must not overflow.
                    expected = Some(header.seq.saturating_add(1));
                    offset += header.record_len();
                }
                other => break other,
            }
        };
        match first {
            None => {
                if let Read::Record { .. } = stop {
                    return Err(JournalError::Corrupt {
                        segment: seg.number,
                        reason: "its first record does not continue the previous segment",
                    });
                }
                // The journal ended with the previous segment (a record that
                // did not fit there was torn at the start of this one), or
                // it has no record at all.
                end = Some(End {
                    index: i.saturating_sub(1),
                    offset: previous_end,
                    blame: seg.number,
                });
            }
            Some(first) => {
                firsts.push(first);
                // Unused space after the last record fits no record and is
                // all zeros; anything else is where a crash cut in.
                let clean = matches!(stop, Read::Zero) && window.data_end(offset)? == offset;
                if !clean || i + 1 == found.len() {
                    end = Some(End {
                        index: i,
                        offset,
                        blame: seg.number,
                    });
                }
                previous_end = offset;
            }
        }
    }
    let end = end.unwrap_or(End {
        index: 0,
        offset: 0,
        blame: 0,
    });
    Ok((firsts, end, expected.unwrap_or(0)))
}

/// Zeroes `seg` from `from` to the last non-zero byte, as the disk or the
/// page cache has it, and syncs it. The sync is done even when there was
/// nothing to zero: a record a killed process wrote but did not sync is
/// readable, so it counts, and must be made durable before anything is
/// derived from it.
fn zero_after(seg: &Found, from: u64) -> Result<(), JournalError> {
    let on_disk = seg.window()?.data_end(from)?;
    let cached = Window::new(seg.file.clone(), false)?.data_end(from)?;
    let to = on_disk.max(cached);
    let zeros = vec![0u8; WINDOW];
    let mut at = from;
    while at < to {
        let n = (to - at).min(WINDOW as u64) as usize;
        seg.file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    seg.file.sync_data()?;
    Ok(())
}

/// Opens segment `number` for reading and writing, and once more with
/// `O_DIRECT` for the scan if the filesystem supports it.
fn open_segment(dir: BorrowedFd<'_>, number: u64) -> io::Result<Found> {
    let name = segment::name(number);
    let file = File::from(rustix::fs::openat(
        dir,
        &name,
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )?);
    let direct = match rustix::fs::openat(
        dir,
        &name,
        OFlags::RDONLY | OFlags::DIRECT | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => {
            let direct = File::from(fd);
            // Some filesystems accept the flag and refuse the reads.
            let mut probe = Window::new(Arc::new(direct), true)?;
            match probe.read(0, &mut [0u8; 1]) {
                Ok(_) => Some(probe.file().clone()),
                Err(e) if e.raw_os_error() == Some(Errno::INVAL.raw_os_error()) => None,
                Err(e) => return Err(e),
            }
        }
        Err(Errno::INVAL | Errno::OPNOTSUPP) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(Found {
        number,
        file: Arc::new(file),
        direct,
    })
}

/// Removes `name` from `dir`; already gone is fine.
fn unlink(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
