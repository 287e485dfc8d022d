//! What the integrator has done so far, and when it publishes.

use std::time::{Duration, Instant};

/// How often a round runs when nothing hurries it, and how often at most
/// a checkpoint is published.
pub(super) const ROUND_EVERY: Duration = Duration::from_secs(1);

/// When a round publishes a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Publish {
    /// If the tree grew and a second has passed since the last one.
    IfDue,
    /// If the tree grew (a last round before closing).
    Now,
    /// Always, even for an empty tree (`Log::checkpoint`).
    Always,
}

/// What integration has done so far; held for a whole round.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// Full public tiles written, per tlog level.
    pub public: Vec<u64>,
    /// The size of the last published checkpoint.
    pub published: u64,
    /// The size of the last note in `ledger/checkpoints`.
    pub noted: u64,
    /// When it was published.
    pub published_at: Option<Instant>,
    /// The last round's failure, if it failed.
    pub failure: Option<String>,
}

impl Progress {
    /// Progress for files that hold the first `base` entries (a multiple
    /// of 256), published up to `published`.
    pub fn new(base: u64, published: u64) -> Progress {
        let mut public = Vec::new();
        let mut level = 0u32;
        while let Some(full) = base.checked_shr(8 * (level + 1)).filter(|f| *f > 0) {
            public.push(full);
            level += 1;
        }
        Progress {
            public,
            published,
            noted: published,
            published_at: None,
            failure: None,
        }
    }
}
