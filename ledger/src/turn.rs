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
