//! Reads made for a job ahead of its turn in the commit thread, and how the
//! committer tells whether they still hold.
//!
//! The committer decides every job in log order against the store as the
//! jobs before it leave it (`committer`). For most jobs that is a few
//! reads; an inventory report reads the state of every tag it lists, 10,000
//! or more, and every other agency's commit would wait for it. So such a
//! job is prepared on another thread, against the store as it stands, and
//! checked at its turn (optimistic concurrency):
//!
//! 1. it takes a [`Snapshot`]: how many batches the committer has written
//!    to the store, every one of them visible to its reads;
//! 2. it reads through a [`Recording`] reader, which notes a hash of every
//!    key it reads and of every prefix it scans, into a [`ReadSet`];
//! 3. at the job's turn, the committer checks the read set against the
//!    writes of the batches written since the snapshot ([`Written`]) and of
//!    the jobs before it in the batch being built. If none of them is a key
//!    read or under a prefix scanned, every read returned what it would
//!    return now, at the job's place in the log, so what was prepared from
//!    them is exactly what preparing it now would give. If one is, the job
//!    is prepared again.
//!
//! Keys and prefixes are compared by 64-bit SipHash with a key drawn at
//! random per process (so nobody can pick tags whose keys collide): two
//! keys with one hash can only make a read set look stale when it is not,
//! and the job is then prepared again; never the reverse. A write records
//! the hash of its key, of its two-byte table prefix and of the key cut
//! after each of its first two NUL separators, so a scan of any such
//! prefix (the gateway's scans are all of this shape: `Gl` agency 0
//! location 0 for a report) is seen by its hash; a scan of any other prefix
//! is recorded as the widest of those it falls under, which sees more
//! writes than it needs to, never fewer.
//!
//! Only the commit thread writes the recomputed state
//! ([`Prefix::recomputed`]: assets, discrepancies, reports, notices,
//! medical cases); inboxes, acks, replay ids and the salt are written
//! elsewhere too. So only reads of the recomputed state can be checked: a
//! read of anything else makes a read set that never holds (its job then
//! runs at its turn), and the committer records writes of the recomputed
//! state only. It keeps the last [`KEPT`] hashes; a snapshot older than
//! the writes it still keeps is stale.

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use xgate_ledger::{StoreError, WriteBatch};

use super::state::StateRead;
use crate::store_keys::Prefix;

/// Most hashes of written keys the committer keeps: 2 MiB. At the default
/// mix's full rate (about 3 recomputed-state hashes per exchange) that is
/// some 30 s of writes, far longer than a report takes to prepare.
pub const KEPT: usize = 1 << 18;

/// How many NUL-separated parts of a key a scan's prefix is recorded to.
const PARTS: usize = 2;

/// The committer's progress, shared with the threads that prepare jobs
/// ahead: how many batches it has written to the store, and how keys are
/// hashed.
#[derive(Debug, Default)]
pub struct Progress {
    /// Batches written to the store so far (each one before the count
    /// moves past it).
    written: AtomicU64,
    hasher: RandomState,
}

impl Progress {
    /// Nothing written yet, with a fresh hash key.
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress::default())
    }

    /// A snapshot of the store as it stands now: every batch written so
    /// far is visible to reads made after this call.
    pub fn snapshot(self: &Arc<Self>) -> Snapshot {
        Snapshot {
            batches: self.written.load(Ordering::Acquire),
            progress: Arc::clone(self),
        }
    }

    fn hash(&self, bytes: &[u8]) -> u64 {
        self.hasher.hash_one(bytes)
    }

    /// Adds the hashes under which a write of `key` is seen to `out`: the
    /// key, its table prefix, and the key cut after each of its first
    /// [`PARTS`] NUL separators. Nothing for a key outside the recomputed
    /// state, which no read set can hold.
    fn written_hashes(&self, key: &[u8], out: &mut Vec<u64>) {
        if !Prefix::of(key).is_some_and(Prefix::recomputed) {
            return;
        }
        out.push(self.hash(key));
        out.push(self.hash(&key[..2]));
        let separators = key.iter().enumerate().skip(2).filter(|(_, b)| **b == 0);
        for (i, _) in separators.take(PARTS) {
            out.push(self.hash(&key[..=i]));
        }
    }

    /// The hash a scan of `prefix` is recorded as: the widest prefix of
    /// those [`Progress::written_hashes`] records that `prefix` falls
    /// under. `None` for a prefix that names no table.
    fn scan_hash(&self, prefix: &[u8]) -> Option<u64> {
        if !Prefix::of(prefix).is_some_and(Prefix::recomputed) {
            return None;
        }
        let mut end = 2;
        let separators = prefix.iter().enumerate().skip(2).filter(|(_, b)| **b == 0);
        for (i, _) in separators.take(PARTS) {
            end = i + 1;
        }
        Some(self.hash(&prefix[..end]))
    }
}

/// Where a job prepared ahead started: the batches written when it began
/// to read.
#[derive(Clone, Debug)]
pub struct Snapshot {
    batches: u64,
    progress: Arc<Progress>,
}

impl Snapshot {
    /// Batches written to the store before the snapshot.
    pub fn batches(&self) -> u64 {
        self.batches
    }
}

/// What a job prepared ahead read, since its snapshot.
#[derive(Debug)]
pub struct ReadSet {
    snapshot: Snapshot,
    hashes: HashSet<u64>,
    /// It read something the committer does not record writes of.
    unchecked: bool,
}

impl ReadSet {
    /// How many distinct keys and prefixes it read.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether it read nothing.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty() && !self.unchecked
    }
}

/// A reader that records what it reads into a [`ReadSet`].
pub struct Recording<'a, R> {
    inner: &'a R,
    snapshot: Snapshot,
    hashes: RefCell<HashSet<u64>>,
    unchecked: Cell<bool>,
}

impl<'a, R: StateRead> Recording<'a, R> {
    /// Reads `inner`, which must be the store (or a view of it) as it stands
    /// at `snapshot` or later.
    pub fn new(inner: &'a R, snapshot: Snapshot) -> Recording<'a, R> {
        Recording {
            inner,
            snapshot,
            hashes: RefCell::new(HashSet::new()),
            unchecked: Cell::new(false),
        }
    }

    /// What was read.
    pub fn finish(self) -> ReadSet {
        ReadSet {
            snapshot: self.snapshot,
            hashes: self.hashes.into_inner(),
            unchecked: self.unchecked.get(),
        }
    }

    fn note(&self, hash: Option<u64>) {
        match hash {
            Some(h) => {
                self.hashes.borrow_mut().insert(h);
            }
            None => self.unchecked.set(true),
        }
    }
}

impl<R: StateRead> StateRead for Recording<'_, R> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let progress = &self.snapshot.progress;
        let recorded = Prefix::of(key).is_some_and(Prefix::recomputed);
        self.note(recorded.then(|| progress.hash(key)));
        self.inner.get(key)
    }

    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.note(self.snapshot.progress.scan_hash(prefix));
        self.inner.keys(prefix)
    }
}

/// What the committer has written lately, batch by batch, as the hashes
/// each write is seen under (the key, its table prefix, and the key cut
/// after each of its first two NUL separators). Owned by the commit thread.
#[derive(Debug)]
pub struct Written {
    progress: Arc<Progress>,
    /// The last batches' hashes, oldest first, with their numbers.
    batches: VecDeque<(u64, Vec<u64>)>,
    /// How many hashes `batches` holds.
    kept: usize,
    /// The newest batch whose writes are no longer kept (0: none).
    forgotten: u64,
}

impl Written {
    /// Nothing written yet, as far as `progress` knows.
    pub fn new(progress: Arc<Progress>) -> Written {
        Written {
            forgotten: progress.written.load(Ordering::Acquire),
            progress,
            batches: VecDeque::new(),
            kept: 0,
        }
    }

    /// The hashes of `batch`'s writes, to record once it is written.
    pub fn hashes(&self, batch: &WriteBatch) -> Vec<u64> {
        let mut out = Vec::new();
        for (key, _) in batch.pending_with_prefix(&[]) {
            self.progress.written_hashes(key, &mut out);
        }
        out
    }

    /// The hashes of keys another process wrote ([`xgate_ledger::turn::Changes`]),
    /// to record with [`Written::written`] before this one's next batch.
    pub fn hashes_of<'k>(&self, keys: impl Iterator<Item = &'k [u8]>) -> Vec<u64> {
        let mut out = Vec::new();
        for key in keys {
            self.progress.written_hashes(key, &mut out);
        }
        out
    }

    /// Records that something unknown was written (another process wrote
    /// more than it could list): every read set taken before now is stale.
    pub fn lost_track(&mut self) {
        self.written(Vec::new());
        self.forgotten = self.progress.written.load(Ordering::Relaxed);
    }

    /// Records that a batch whose writes hash to `hashes` has been written
    /// to the store (whether or not it was then made durable: its writes
    /// are what the store holds), and only then counts it, so a snapshot
    /// that counts it sees its writes.
    pub fn written(&mut self, hashes: Vec<u64>) {
        let number = self.progress.written.load(Ordering::Relaxed) + 1;
        self.kept += hashes.len();
        self.batches.push_back((number, hashes));
        while self.kept > KEPT && self.batches.len() > 1 {
            if let Some((old, hashes)) = self.batches.pop_front() {
                self.kept -= hashes.len();
                self.forgotten = old;
            }
        }
        self.progress.written.store(number, Ordering::Release);
    }

    /// Whether everything `reads` read still holds for a job whose turn
    /// comes after every batch written so far and the writes `pending` of
    /// the jobs before it in the batch being built.
    pub fn holds(&self, reads: &ReadSet, pending: &WriteBatch) -> bool {
        let since = reads.snapshot.batches;
        if reads.unchecked
            || !Arc::ptr_eq(&reads.snapshot.progress, &self.progress)
            || since < self.forgotten
        {
            return false;
        }
        let touched = |hashes: &[u64]| hashes.iter().any(|h| reads.hashes.contains(h));
        let later = self.batches.iter().rev().take_while(|(n, _)| *n > since);
        if later.into_iter().any(|(_, hashes)| touched(hashes)) {
            return false;
        }
        !touched(&self.hashes(pending))
    }
}

#[cfg(test)]
mod tests {
    //! What makes a read set stale, and what does not.

    use super::*;
    use crate::apply::state::Memory;
    use crate::assets::state::{asset_key, located_key, located_prefix, open_key};
    use crate::registry::AgencyId;

    fn agency(a: &str) -> AgencyId {
        a.parse().expect("id")
    }

    fn batch(keys: &[Vec<u8>]) -> WriteBatch {
        let mut b = WriteBatch::new();
        for k in keys {
            b.put(k.clone(), b"v".to_vec());
        }
        b
    }

    /// A read set that read `A`'s asset record and scanned treasury's `HQ`.
    fn reads(progress: &Arc<Progress>) -> ReadSet {
        let state = Memory::default();
        let r = Recording::new(&state, progress.snapshot());
        r.get(&asset_key("A")).expect("get");
        r.keys(&located_prefix(&agency("treasury"), "HQ"))
            .expect("scan");
        r.finish()
    }

    #[test]
    fn a_write_to_a_key_read_or_under_a_prefix_scanned_is_seen() {
        let progress = Progress::new();
        let mut written = Written::new(Arc::clone(&progress));
        let r = reads(&progress);
        assert_eq!(r.len(), 2);
        let empty = WriteBatch::new();
        assert!(written.holds(&r, &empty), "nothing written since");

        // Other keys, other locations, other agencies, other tables.
        let others = [
            asset_key("B"),
            asset_key("AA"),
            open_key("A"),
            located_key(&agency("treasury"), "HQ-2", "A"),
            located_key(&agency("gsa"), "HQ", "A"),
            crate::inbox::kept_key(7),
        ];
        written.written(written.hashes(&batch(&others)));
        assert!(written.holds(&r, &empty), "unrelated writes");
        assert!(written.holds(&r, &batch(&others)), "unrelated pending");

        // The key read, written since: in a batch, or pending in this one.
        let read_key = batch(&[asset_key("A")]);
        assert!(!written.holds(&r, &read_key), "pending write of a key read");
        // A tag joining or leaving the location scanned.
        let joined = batch(&[located_key(&agency("treasury"), "HQ", "Z")]);
        assert!(!written.holds(&r, &joined), "pending write under the scan");
        let mut left = WriteBatch::new();
        left.delete(located_key(&agency("treasury"), "HQ", "Q"));
        written.written(written.hashes(&left));
        assert!(!written.holds(&r, &empty), "a deletion under the scan");

        // A read set taken after those writes holds again.
        let later = reads(&progress);
        assert!(written.holds(&later, &empty));
        written.written(written.hashes(&read_key));
        assert!(!written.holds(&later, &empty));
    }

    #[test]
    fn a_snapshot_older_than_what_is_kept_is_stale() {
        let progress = Progress::new();
        let mut written = Written::new(Arc::clone(&progress));
        let r = reads(&progress);
        // Unrelated writes, until the oldest kept batch is past the snapshot.
        let unrelated: Vec<Vec<u8>> = (0..1024).map(|i| asset_key(&format!("X{i}"))).collect();
        let hashes = written.hashes(&batch(&unrelated));
        let mut batches = 0;
        while written.forgotten == 0 {
            written.written(hashes.clone());
            batches += 1;
            assert!(batches <= KEPT, "the kept hashes are bounded");
        }
        assert!(written.kept <= KEPT);
        assert!(!written.holds(&r, &WriteBatch::new()));
        assert!(written.holds(&reads(&progress), &WriteBatch::new()));
    }

    #[test]
    fn reads_the_committer_does_not_record_never_hold() {
        let progress = Progress::new();
        let written = Written::new(Arc::clone(&progress));
        let state = Memory::default();
        // Inbox items are also written by acks, outside the committer.
        let r = Recording::new(&state, progress.snapshot());
        r.get(&crate::inbox::kept_key(1)).expect("get");
        assert!(!written.holds(&r.finish(), &WriteBatch::new()));
        let r = Recording::new(&state, progress.snapshot());
        r.keys(b"G").expect("scan");
        assert!(!written.holds(&r.finish(), &WriteBatch::new()));
        // Nor does a read set of another committer's.
        let other = Progress::new();
        assert!(!written.holds(&reads(&other), &WriteBatch::new()));
    }

    #[test]
    fn a_scan_of_a_narrower_prefix_is_recorded_wider() {
        let progress = Progress::new();
        let mut written = Written::new(Arc::clone(&progress));
        let state = Memory::default();
        let r = Recording::new(&state, progress.snapshot());
        // Not cut at a separator: recorded as treasury's whole index.
        let mut prefix = located_prefix(&agency("treasury"), "HQ");
        prefix.pop();
        r.keys(&prefix).expect("scan");
        let r = r.finish();
        written.written(written.hashes(&batch(&[located_key(&agency("treasury"), "Annex", "A")])));
        assert!(!written.holds(&r, &WriteBatch::new()));
    }
}
