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
    /// Bundles (`None`) and tiles (`Some(level)`) that became full since
    /// the last publication: their partials, written for a checkpoint that
    /// was current then, go once the next checkpoint is published.
    pub obsolete: Vec<(Option<u8>, u64)>,
    /// The size of the cosigned checkpoint last written to the tlog-tiles
    /// `checkpoint` file by `Log::publish_cosigned` (witnessed logs).
    pub served: u64,
}

impl Progress {
    /// Progress for files that hold the first `base` entries (a multiple
    /// of 256), published up to `published`.
    ///
    /// The bundles and tiles that became full after the last publication
    /// (a previous run that stopped before publishing again) may still
    /// have partials: they are obsolete from the start.
    pub fn new(base: u64, published: u64) -> Progress {
        let mut public = Vec::new();
        let mut obsolete: Vec<(Option<u8>, u64)> = (published.min(base) >> 8..base >> 8)
            .map(|b| (None, b))
            .collect();
        let mut level = 0u8;
        while let Some(full) = base
            .checked_shr(8 * (u32::from(level) + 1))
            .filter(|f| *f > 0)
        {
            public.push(full);
            let from = published.min(base) >> (8 * (u32::from(level) + 1));
            obsolete.extend((from..full).map(|n| (Some(level), n)));
            level += 1;
        }
        Progress {
            public,
            published,
            noted: published,
            published_at: None,
            failure: None,
            obsolete,
            served: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_filled_after_the_last_publication_is_obsolete_at_open() {
        // Published at 300 (bundle 1 partial, tile 0/1 partial), then
        // integrated to 768 and stopped: bundles and level-0 tiles 1 and 2
        // are full and may have partials.
        let p = Progress::new(768, 300);
        assert_eq!(p.public, [3]);
        assert_eq!(
            p.obsolete,
            [(None, 1), (None, 2), (Some(0), 1), (Some(0), 2)]
        );
        // Up to date: nothing.
        assert!(Progress::new(512, 512).obsolete.is_empty());
        // Crossing a level-1 tile: level 1's tile 0 filled at 65,536.
        let p = Progress::new(65_536, 65_300);
        assert_eq!(p.public, [256, 1]);
        assert!(p.obsolete.contains(&(Some(1), 0)));
        assert!(p.obsolete.contains(&(Some(0), 255)));
        assert!(p.obsolete.contains(&(None, 255)));
        assert_eq!(p.obsolete.len(), 3);
    }
}
