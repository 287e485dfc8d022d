//! Reading records in order, from any kept record to the end.

use super::error::JournalError;
use super::table::Table;
use super::window::{Read, Window};

/// The records from some sequence number to where the journal ended when
/// the read began, each as `(seq, payload)`: see
/// [`Journal::read_from`](super::Journal::read_from). Records appended
/// while reading are not included; segments released while reading stay
/// readable to it.
pub struct Records<'a> {
    table: &'a Table,
    /// The segment being read, its number and window.
    segment: Option<(u64, Window)>,
    /// Where the next record is in that segment.
    offset: u64,
    /// The next record to return.
    seq: u64,
    /// Stop before this record.
    end: u64,
    /// An error was returned: nothing more.
    done: bool,
}

impl<'a> Records<'a> {
    /// Records `seq..end` of the segments in `table`.
    pub(super) fn new(table: &'a Table, seq: u64, end: u64) -> Records<'a> {
        Records {
            table,
            segment: None,
            offset: 0,
            seq,
            end,
            done: false,
        }
    }

    /// The next record, or an error.
    fn advance(&mut self) -> Result<(u64, Vec<u8>), JournalError> {
        loop {
            let (number, window) = match &mut self.segment {
                Some((number, window)) => (*number, window),
                None => {
                    let Some((number, entry)) = self.table.locate(self.seq) else {
                        return Err(self.released());
                    };
                    self.offset = 0;
                    let window = Window::new(entry.file, false)?;
                    let (_, window) = self.segment.insert((number, window));
                    (number, window)
                }
            };
            match window.record(self.offset)? {
                Read::Record { header, payload } => {
                    self.offset += header.record_len();
                    if header.seq < self.seq {
                        // Before the first record asked for.
                        continue;
                    }
                    if header.seq != self.seq {
                        return Err(unreadable(number));
                    }
                    self.seq += 1;
                    return Ok((header.seq, payload));
                }
                // The segment's records end here: the next one must start
                // with the record wanted.
                _ => match number.checked_add(1).and_then(|n| self.table.get(n)) {
                    Some(next) if next.first == self.seq => {
                        self.offset = 0;
                        self.segment = Some((number + 1, Window::new(next.file, false)?));
                    }
                    Some(_) => return Err(unreadable(number)),
                    None if self.table.first_seq().is_none_or(|f| f > self.seq) => {
                        return Err(self.released());
                    }
                    None => return Err(unreadable(number)),
                },
            }
        }
    }

    fn released(&self) -> JournalError {
        JournalError::Released {
            seq: self.seq,
            first: self.table.first_seq().unwrap_or(self.end),
        }
    }
}

/// A record the journal acknowledged cannot be read back from `segment`.
fn unreadable(segment: u64) -> JournalError {
    JournalError::Corrupt {
        segment,
        reason: "a record below the journal's end is unreadable",
    }
}

impl Iterator for Records<'_> {
    type Item = Result<(u64, Vec<u8>), JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.seq >= self.end {
            return None;
        }
        let item = self.advance();
        self.done = item.is_err();
        Some(item)
    }
}
