//! Reading a segment through a window of aligned reads, and the records in
//! it.
//!
//! The window's buffer and every read's offset and length are multiples of
//! 4 KiB, so the same code reads a file opened with `O_DIRECT`, which
//! recovery uses to see what is on the disk rather than what the page cache
//! holds (see `recover`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::record::{HEADER_LEN, Header};

/// Alignment of the window's buffer, offsets and lengths: the largest
/// logical block size `O_DIRECT` asks for on Linux.
const ALIGN: usize = 4096;

/// Bytes read at once.
pub(super) const WINDOW: usize = 1 << 20;

/// A record read at some offset, or why there is none.
#[derive(Debug)]
pub(super) enum Read {
    /// A record whose checksum holds.
    Record {
        /// Its header.
        header: Header,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// Sixteen zero bytes: unwritten space.
    Zero,
    /// A header whose record runs past the end of the file.
    Short,
    /// A header and payload whose checksum does not hold.
    BadCrc,
}

/// A file read through an aligned buffer.
pub(super) struct Window {
    file: Arc<File>,
    storage: Vec<u8>,
    /// Where in `storage` the aligned buffer starts.
    skew: usize,
    /// The file offset of the buffer's first byte.
    start: u64,
    /// Valid bytes in the buffer.
    filled: usize,
    /// Whether `file` was opened with `O_DIRECT` (a short read is the end).
    direct: bool,
    /// The file's length when the window was made: records written since
    /// are not read through this window.
    len: u64,
}

impl Window {
    /// Reads `file`, opened with `O_DIRECT` if `direct`.
    pub fn new(file: Arc<File>, direct: bool) -> io::Result<Window> {
        let len = file.metadata()?.len();
        let storage = vec![0u8; WINDOW + ALIGN];
        // The buffer starts at the first aligned address in `storage`: safe
        // code cannot ask the allocator for an alignment, so over-allocate.
        let skew = (ALIGN - storage.as_ptr() as usize % ALIGN) % ALIGN;
        Ok(Window {
            file,
            storage,
            skew,
            start: 0,
            filled: 0,
            direct,
            len,
        })
    }

    /// The file read.
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Reads the aligned block of the file that holds `offset`.
    fn fill(&mut self, offset: u64) -> io::Result<()> {
        self.start = offset - offset % ALIGN as u64;
        self.filled = 0;
        let buf = &mut self.storage[self.skew..self.skew + WINDOW];
        while self.filled < WINDOW {
            match self
                .file
                .read_at(&mut buf[self.filled..], self.start + self.filled as u64)
            {
                Ok(0) => break,
                Ok(n) => {
                    self.filled += n;
                    // With O_DIRECT only the end of the file reads short, and
                    // the next offset would not be aligned.
                    if self.direct && !self.filled.is_multiple_of(ALIGN) {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Copies the bytes at `offset` into `out`; fewer only at the end of
    /// the file. Returns how many.
    pub fn read(&mut self, offset: u64, out: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < out.len() {
            let at = offset + done as u64;
            if at < self.start || at >= self.start + self.filled as u64 {
                self.fill(at)?;
                if at >= self.start + self.filled as u64 {
                    break;
                }
            }
            let from = (at - self.start) as usize;
            let n = (self.filled - from).min(out.len() - done);
            let base = self.skew + from;
            out[done..done + n].copy_from_slice(&self.storage[base..base + n]);
            done += n;
        }
        Ok(done)
    }

    /// The record at `offset`.
    pub fn record(&mut self, offset: u64) -> io::Result<Read> {
        let mut bytes = [0u8; HEADER_LEN];
        if self.read(offset, &mut bytes)? < HEADER_LEN {
            // A partial header is only ever zeros left at the very end of
            // a file that grew past its nominal size; either way no record.
            return Ok(if bytes.iter().all(|&b| b == 0) {
                Read::Zero
            } else {
                Read::Short
            });
        }
        let Some(header) = Header::decode(&bytes) else {
            return Ok(Read::Zero);
        };
        // The length is not trusted yet: the bytes are read (and allocated)
        // only as far as the file goes.
        if offset + header.record_len() > self.len {
            return Ok(Read::Short);
        }
        let mut payload = vec![0u8; header.len as usize];
        if self.read(offset + HEADER_LEN as u64, &mut payload)? < payload.len() {
            return Ok(Read::Short);
        }
        Ok(if header.matches(&payload) {
            Read::Record { header, payload }
        } else {
            Read::BadCrc
        })
    }

    /// The offset just past the last non-zero byte at or after `from`, or
    /// `from` if there is none.
    pub fn data_end(&mut self, from: u64) -> io::Result<u64> {
        let mut end = from;
        let mut at = from;
        let mut chunk = vec![0u8; WINDOW];
        loop {
            let n = self.read(at, &mut chunk)?;
            if n == 0 {
                return Ok(end);
            }
            if let Some(last) = chunk[..n].iter().rposition(|&b| b != 0) {
                end = at + last as u64 + 1;
            }
            at += n as u64;
        }
    }
}
