//! The review queue's two numbers for `/metrics` (grants awaiting review,
//! and how many of those are overdue), kept in memory as grants and reviews
//! commit, so a scrape costs a lock and a few comparisons instead of a scan
//! of the queue and a case read per entry, however long the queue grows.
//!
//! Read from the store once at open. Then the commit thread records the
//! queue writes of each job it accepts (a break-the-glass grant adds one, a
//! review removes one), and reads everything back after a commit that
//! failed, as it does for the replay ids.
//!
//! Overdue is a matter of time passing, not of commits: the grants not yet
//! overdue are kept ordered by grant time, and a scrape moves those whose
//! review has fallen due since the last one into the overdue count, so each
//! grant is moved once and a scrape costs O(log n) per grant moved.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use xgate_ledger::{StoreError, StoreRead, WriteBatch};

use super::state;

/// A review-queue key (`Gu` holder `0` index), as the store has it.
type QueueKey = Vec<u8>;

/// The grants awaiting review, by queue key, with their grant times.
#[derive(Debug, Default)]
pub struct PendingReviews {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Every grant awaiting review, with the time it was made.
    granted: HashMap<QueueKey, i64>,
    /// Those not yet counted as overdue, oldest grant first.
    waiting: BTreeSet<(i64, QueueKey)>,
    /// How many of `granted` are not in `waiting`.
    overdue: u64,
}

impl PendingReviews {
    /// The review queue in `store`.
    ///
    /// # Errors
    /// A storage failure or a corrupt record.
    pub fn load(store: &dyn StoreRead) -> Result<PendingReviews, StoreError> {
        let pending = PendingReviews::default();
        pending.reload(store)?;
        Ok(pending)
    }

    /// Reads the queue again from `store`.
    ///
    /// # Errors
    /// A storage failure or a corrupt record; the counts are then left as
    /// they were.
    pub fn reload(&self, store: &dyn StoreRead) -> Result<(), StoreError> {
        let prefix = state::queue_prefix(None);
        let mut fresh = Inner::default();
        for (key, case) in state::queue(store, None, &prefix, usize::MAX)? {
            let granted = case.grant.as_ref().map_or(case.time, |g| g.time);
            fresh.add(key, granted);
        }
        *self.lock() = fresh;
        Ok(())
    }

    /// Records the review-queue writes of one accepted job's `batch`,
    /// committed at `time`: a key written is a grant made then, a key
    /// deleted a review.
    pub fn record(&self, batch: &WriteBatch, time: i64) {
        let prefix = state::queue_prefix(None);
        let mut changes = batch.pending_with_prefix(&prefix).peekable();
        if changes.peek().is_none() {
            return;
        }
        let mut inner = self.lock();
        for (key, value) in changes {
            match value {
                Some(_) => inner.add(key.to_vec(), time),
                None => inner.remove(key),
            }
        }
    }

    /// How many grants await review at `now`, and how many of them were
    /// made at least `due_after` seconds before it (overdue). `due_after`
    /// must be the same at every call.
    pub fn counts(&self, now: i64, due_after: i64) -> (u64, u64) {
        let due_by = now.saturating_sub(due_after);
        let mut inner = self.lock();
        while let Some(first) = inner.waiting.first() {
            if first.0 > due_by {
                break;
            }
            inner.waiting.pop_first();
            inner.overdue += 1;
        }
        (inner.granted.len() as u64, inner.overdue)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Each change leaves the maps consistent, so a poisoned lock is
        // still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn add(&mut self, key: QueueKey, granted: i64) {
        self.remove(&key);
        self.waiting.insert((granted, key.clone()));
        self.granted.insert(key, granted);
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(granted) = self.granted.remove(key)
            && !self.waiting.remove(&(granted, key.to_vec()))
        {
            self.overdue = self.overdue.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::AgencyId;

    fn put(holder: &AgencyId, index: u64) -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch.put(state::queue_key(holder, index), b"state\0q".to_vec());
        batch
    }

    #[test]
    fn grants_become_overdue_as_time_passes_and_reviews_remove_them() {
        let hhs: AgencyId = "hhs".parse().expect("id");
        let pending = PendingReviews::default();
        pending.record(&WriteBatch::new(), 0);
        pending.record(&put(&hhs, 1), 100);
        pending.record(&put(&hhs, 2), 200);
        pending.record(&put(&hhs, 3), 300);
        assert_eq!(pending.counts(150, 60), (3, 0));
        assert_eq!(pending.counts(160, 60), (3, 1), "due at 160");
        assert_eq!(pending.counts(299, 60), (3, 2));
        // A review of an overdue grant, and of one still waiting.
        let mut reviews = WriteBatch::new();
        reviews.delete(state::queue_key(&hhs, 1));
        reviews.delete(state::queue_key(&hhs, 3));
        pending.record(&reviews, 310);
        assert_eq!(pending.counts(310, 60), (1, 1));
        // Deleting a key the queue never held changes nothing.
        let mut stray = WriteBatch::new();
        stray.delete(state::queue_key(&hhs, 9));
        pending.record(&stray, 320);
        assert_eq!(pending.counts(1000, 60), (1, 1));
        // Other keys of a batch are not the queue's.
        let mut other = WriteBatch::new();
        other.put(b"Gmstate\0q".to_vec(), Vec::new());
        pending.record(&other, 330);
        assert_eq!(pending.counts(1000, 60), (1, 1));
    }
}
