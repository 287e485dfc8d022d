//! What the log's batches cost the database: the figures issue 23 asks
//! for (the lock hold time per batch, round trips and bytes), counted as
//! batches commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::turn::TurnStats;

/// The database's share of this process's batches: [`TurnStats`] as a
/// PostgreSQL log counts them.
pub type PgStats = TurnStats;

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
