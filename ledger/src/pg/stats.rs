//! What the log's batches cost the database: the figures issue 23 asks
//! for (the lock hold time per batch, round trips and bytes), counted as
//! batches commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The database's share of this process's batches, since the log was
/// opened ([`PgLog::stats`](super::PgLog::stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PgStats {
    /// Batches committed.
    pub batches: u64,
    /// Entries appended by them.
    pub entries: u64,
    /// Total time the log's lock was held, from the lock being granted to
    /// the `COMMIT` returning, in microseconds.
    pub hold_total_us: u64,
    /// The longest hold, in microseconds.
    pub hold_max_us: u64,
    /// Of the hold time, the round trip that sends the writes and the
    /// `COMMIT` and waits for it to be durable: the database's share.
    pub commit_total_us: u64,
    /// Time from a batch's `BEGIN` being sent to its lock being granted:
    /// one round trip, plus the wait behind other writers' batches.
    pub wait_total_us: u64,
    /// Round trips to the database, of batches (committed or not).
    pub round_trips: u64,
    /// Bytes of data sent by committed batches (their parameters, roughly).
    pub bytes_sent: u64,
}

impl PgStats {
    /// The mean lock hold time per batch, in microseconds.
    pub fn mean_hold_us(&self) -> u64 {
        self.hold_total_us.checked_div(self.batches).unwrap_or(0)
    }
}

/// The counters behind [`PgStats`].
#[derive(Default)]
pub(super) struct Counters {
    batches: AtomicU64,
    entries: AtomicU64,
    hold_total_us: AtomicU64,
    hold_max_us: AtomicU64,
    commit_total_us: AtomicU64,
    wait_total_us: AtomicU64,
    round_trips: AtomicU64,
    bytes_sent: AtomicU64,
}

impl Counters {
    /// Counts a committed batch: the lock held for `hold`, of which the
    /// commit's round trip took `commit`, after a wait of `wait`.
    pub(super) fn committed(&self, entries: u64, times: [Duration; 3], bytes: u64) {
        let [wait, hold, commit] = times.map(micros);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.wait_total_us.fetch_add(wait, Ordering::Relaxed);
        self.commit_total_us.fetch_add(commit, Ordering::Relaxed);
        self.entries.fetch_add(entries, Ordering::Relaxed);
        self.hold_total_us.fetch_add(hold, Ordering::Relaxed);
        self.hold_max_us.fetch_max(hold, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts round trips.
    pub(super) fn round_trips(&self, n: u32) {
        self.round_trips.fetch_add(u64::from(n), Ordering::Relaxed);
    }

    /// The figures now.
    pub(super) fn get(&self) -> PgStats {
        PgStats {
            batches: self.batches.load(Ordering::Relaxed),
            entries: self.entries.load(Ordering::Relaxed),
            hold_total_us: self.hold_total_us.load(Ordering::Relaxed),
            hold_max_us: self.hold_max_us.load(Ordering::Relaxed),
            commit_total_us: self.commit_total_us.load(Ordering::Relaxed),
            wait_total_us: self.wait_total_us.load(Ordering::Relaxed),
            round_trips: self.round_trips.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
