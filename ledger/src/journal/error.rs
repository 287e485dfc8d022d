//! What can go wrong with the journal.

use std::io;

/// An error from the journal. None of them carries a record's contents.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// An I/O error that left the journal usable (a read, opening, preparing
    /// a segment): the operation can be tried again.
    #[error("journal I/O error: {0}")]
    Io(#[from] io::Error),
    /// A record's write or its `fdatasync` failed, now (`cause` is the
    /// error) or earlier (`cause` is `None`). The journal refuses every
    /// append from then on: after a failed `fdatasync` the kernel may have
    /// dropped the dirty pages and cleared the error, so a retry could
    /// "succeed" without the data on disk. The process must restart; the
    /// next [`Journal::open`](super::Journal::open) finds what is durable.
    #[error("the journal stopped after a failed write or sync; restart to recover")]
    Poisoned {
        /// The failure, on the append that met it.
        #[source]
        cause: Option<io::Error>,
    },
    /// A segment's contents contradict the journal's invariants where no
    /// crash can explain it (a bad record with durable records after it, a
    /// first record that does not continue the previous segment).
    #[error("journal segment {segment} is corrupt: {reason}")]
    Corrupt {
        /// The segment's number (its file name).
        segment: u64,
        /// What is wrong, in words without data.
        reason: &'static str,
    },
    /// A segment that must exist (between the oldest kept and the newest)
    /// is not there.
    #[error("journal segment {segment} is missing")]
    Missing {
        /// The missing segment's number.
        segment: u64,
    },
    /// A read asked for a record older than the oldest kept.
    #[error("journal record {seq} was released (the oldest kept is {first})")]
    Released {
        /// The record asked for.
        seq: u64,
        /// The oldest record kept.
        first: u64,
    },
    /// A read asked for a record not appended yet.
    #[error("journal record {seq} does not exist yet (the next is {next})")]
    Beyond {
        /// The record asked for.
        seq: u64,
        /// The sequence number the next append gets.
        next: u64,
    },
    /// A record's payload is longer than a frame can hold (4 GiB - 1).
    #[error("a journal record of {len} bytes is too large")]
    TooLarge {
        /// The payload's length.
        len: u64,
    },
}

impl JournalError {
    /// Whether the journal refuses appends until the process restarts.
    pub fn is_poisoned(&self) -> bool {
        matches!(self, JournalError::Poisoned { .. })
    }
}
