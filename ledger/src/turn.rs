//! A writer's turn: where the log stands when a writer may append, and what
//! other writers changed since its last turn.
//!
//! A log on one machine has one writer (the gateway's committer) and the
//! caches it keeps beside the store (the replay ids, the review queue) are
//! always current. A log several processes append to (PostgreSQL, issue 23)
//! serialises their turns on one lock; a process's caches then go stale
//! whenever another one commits, so each turn tells the writer which keys
//! the others wrote in between, and it brings its caches up to date before
//! it reads anything to decide on.

use crate::error::Error;
use crate::store::WriteBatch;

/// What other writers wrote between this writer's last turn and this one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changes {
    /// Nothing: no other writer committed (always so for a log with one
    /// writer).
    None,
    /// The keys other writers put or deleted, oldest commit first.
    Keys(Vec<Change>),
    /// Too much, or too long ago, to list: every cache must be read again.
    Unknown,
}

/// One key another writer wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The key.
    pub key: Vec<u8>,
    /// Whether it was put (`true`) or deleted.
    pub put: bool,
}

/// Where the log stands at the start of a writer's turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnStart {
    /// The index the first entry appended on this turn gets.
    pub next_index: u64,
    /// What other writers wrote since this writer's previous turn.
    pub changes: Changes,
}

/// What a writer commits on its turn, decided from where the log stands:
/// the entries to append, in order, and the writes that commit with them.
pub type Prepare<'a> = dyn FnMut(&TurnStart) -> (Vec<Vec<u8>>, WriteBatch) + 'a;

/// What a write on the writer's turn commits, decided from the store as
/// it stands under the writer's lock ([`crate::Ledger::commit_writes_with`]).
pub type Decide<'a> = dyn FnMut() -> Result<WriteBatch, Error> + 'a;

/// What this process's turns cost, since the log was opened
/// ([`crate::Ledger::turn_stats`]): for a log in PostgreSQL (issue 23),
/// the lock hold time per batch, round trips and bytes; a log on one
/// machine, whose writer never waits for another process, reports zeros.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TurnStats {
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

impl TurnStats {
    /// The mean lock hold time per batch, in microseconds.
    pub fn mean_hold_us(&self) -> u64 {
        self.hold_total_us.checked_div(self.batches).unwrap_or(0)
    }
}
