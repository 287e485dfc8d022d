//! The log against independent references: a naive recursive RFC 9162
//! implementation written straight from the RFC text, `rs_merkle` with the
//! RFC hasher, and the `ct-merkle` crate, for every size up to 300 and for
//! random ways of batching and reopening.

use std::collections::HashMap;

use proptest::prelude::*;
use sha2_next::Sha256;
use xgate_ledger::{
    DiskStore, Hash, Log, OpenOptions, leaf_hash, node_hash, verify_consistency, verify_inclusion,
};

const MAX: u64 = 300;

fn entry(i: u64) -> Vec<u8> {
    format!("entry number {i}").into_bytes()
}

/// `MTH(D[lo:hi])` exactly as RFC 9162 section 2.1.1 defines it, memoised.
struct Reference {
    leaves: Vec<Hash>,
    memo: HashMap<(u64, u64), Hash>,
}

impl Reference {
    fn new(n: u64) -> Reference {
        Reference {
            leaves: (0..n).map(|i| leaf_hash(&entry(i))).collect(),
            memo: HashMap::new(),
        }
    }

    fn mth(&mut self, lo: u64, hi: u64) -> Hash {
        match hi - lo {
            0 => Hash::EMPTY_ROOT,
            1 => self.leaves[lo as usize],
            n => {
                if let Some(h) = self.memo.get(&(lo, hi)) {
                    return *h;
                }
                let k = largest_power_of_two_below(n);
                let h = node_hash(&self.mth(lo, lo + k), &self.mth(lo + k, hi));
                self.memo.insert((lo, hi), h);
                h
            }
        }
    }

    /// `PATH(m, D[lo:hi])`, RFC 9162 section 2.1.3.1.
    fn path(&mut self, m: u64, lo: u64, hi: u64) -> Vec<Hash> {
        if hi - lo <= 1 {
            return vec![];
        }
        let k = largest_power_of_two_below(hi - lo);
        if m < k {
            let mut p = self.path(m, lo, lo + k);
            p.push(self.mth(lo + k, hi));
            p
        } else {
            let mut p = self.path(m - k, lo + k, hi);
            p.push(self.mth(lo, lo + k));
            p
        }
    }

    /// `SUBPROOF(m, D[lo:hi], b)`, RFC 9162 section 2.1.4.1.
    fn subproof(&mut self, m: u64, lo: u64, hi: u64, b: bool) -> Vec<Hash> {
        let n = hi - lo;
        if m == n {
            return if b { vec![] } else { vec![self.mth(lo, hi)] };
        }
        let k = largest_power_of_two_below(n);
        if m <= k {
            let mut p = self.subproof(m, lo, lo + k, b);
            p.push(self.mth(lo + k, hi));
            p
        } else {
            let mut p = self.subproof(m - k, lo + k, hi, false);
            p.push(self.mth(lo, lo + k));
            p
        }
    }
}

fn largest_power_of_two_below(n: u64) -> u64 {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn open(dir: &std::path::Path) -> Log<DiskStore> {
    Log::create_or_open(dir, &OpenOptions::default()).expect("open log")
}

#[test]
fn every_size_to_300_matches_the_rfc_reference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    let mut reference = Reference::new(MAX);
    assert_eq!(log.root_at(0).expect("root"), Hash::EMPTY_ROOT);
    for i in 0..MAX {
        log.append(&entry(i)).expect("append");
    }
    for n in 1..=MAX {
        let root = log.root_at(n).expect("root");
        assert_eq!(root, reference.mth(0, n), "root at size {n}");
        assert_eq!(
            root,
            xgate_ledger::hash::root_of(&reference.leaves[..n as usize]),
            "rs_merkle root at {n}"
        );
        for m in 0..n {
            let proof = log.inclusion(m, n).expect("inclusion");
            assert_eq!(
                proof.hashes,
                reference.path(m, 0, n),
                "inclusion {m} in {n}"
            );
            verify_inclusion(&proof, &reference.leaves[m as usize], &root).expect("verifies");
        }
        for m in 1..=n {
            let proof = log.consistency(m, n).expect("consistency");
            assert_eq!(
                proof.hashes,
                reference.subproof(m, 0, n, true),
                "consistency {m} -> {n}"
            );
            let old_root = reference.mth(0, m);
            verify_consistency(&proof, &old_root, &root).expect("verifies");
        }
    }
}

#[test]
fn proofs_match_ct_merkle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    let mut tree = ct_merkle::mem_backed_tree::MemoryBackedTree::<Sha256, Vec<u8>>::new();
    for i in 0..MAX {
        log.append(&entry(i)).expect("append");
        tree.push(entry(i));
    }
    let flat = |hashes: &[Hash]| hashes.iter().flat_map(|h| h.0).collect::<Vec<u8>>();
    assert_eq!(
        tree.root().as_bytes().as_slice(),
        log.root_at(MAX).expect("root").as_bytes()
    );
    for m in 0..MAX {
        let ours = log.inclusion(m, MAX).expect("inclusion");
        assert_eq!(
            tree.prove_inclusion(m as usize).as_bytes(),
            flat(&ours.hashes),
            "inclusion {m}"
        );
    }
    for old in 1..MAX {
        let ours = log.consistency(old, MAX).expect("consistency");
        let theirs = tree.prove_consistency((MAX - old) as usize);
        assert_eq!(
            theirs.as_bytes(),
            flat(&ours.hashes),
            "consistency {old} -> {MAX}"
        );
    }
}

#[test]
fn crossing_upper_tile_boundaries_keeps_every_hash_right() {
    // 65,536 = 16^4 leaves fill the first tile of tile level 3; go past it in uneven
    // batches, reopening halfway, and check the tree against rs_merkle.
    let dir = tempfile::tempdir().expect("tempdir");
    let total = 65_536 + 700;
    let entries: Vec<Vec<u8>> = (0..total).map(entry).collect();
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    let mut at = 0usize;
    for (round, batch) in [1usize, 255, 1000, 40_000, 3, 24_977]
        .iter()
        .cycle()
        .enumerate()
    {
        if at == total as usize {
            break;
        }
        let log = open(dir.path());
        let end = (at + batch).min(total as usize);
        log.append_batch(&entries[at..end]).expect("append");
        at = end;
        if round % 2 == 1 {
            drop(log);
        }
    }
    let log = open(dir.path());
    for n in [1u64, 255, 256, 257, 65_535, 65_536, 65_537, total] {
        assert_eq!(
            log.root_at(n).expect("root"),
            xgate_ledger::hash::root_of(&leaves[..n as usize]),
            "size {n}"
        );
    }
    for (m, n) in [
        (0u64, total),
        (65_535, total),
        (65_536, total),
        (total - 1, total),
        (70, 65_536),
    ] {
        let proof = log.inclusion(m, n).expect("inclusion");
        verify_inclusion(&proof, &leaves[m as usize], &log.root_at(n).expect("root"))
            .expect("verifies");
    }
    for (m, n) in [
        (1u64, total),
        (65_536, total),
        (65_537, total),
        (300, 65_536),
    ] {
        let proof = log.consistency(m, n).expect("consistency");
        verify_consistency(
            &proof,
            &log.root_at(m).expect("root"),
            &log.root_at(n).expect("root"),
        )
        .expect("verifies");
    }
    assert_eq!(log.entry(65_535).expect("entry"), entries[65_535]);
    assert_eq!(
        log.entry(total - 1).expect("entry"),
        entries[total as usize - 1]
    );
    log.checkpoint().expect("checkpoint");
    let report = log.verify().expect("log verifies");
    assert_eq!(report.size, total);
    assert_eq!(report.root, xgate_ledger::hash::root_of(&leaves));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn batching_and_reopening_never_change_the_tree(
        batches in prop::collection::vec(0usize..90, 1..12),
        reopen_after in prop::collection::vec(any::<bool>(), 12),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Some(open(dir.path()));
        let mut next = 0u64;
        for (i, len) in batches.iter().enumerate() {
            let entries: Vec<Vec<u8>> = (next..next + *len as u64).map(entry).collect();
            let l = log.get_or_insert_with(|| open(dir.path()));
            let range = l.append_batch(&entries).expect("append");
            prop_assert_eq!(range, next..next + *len as u64);
            next += *len as u64;
            if reopen_after[i] {
                log = None;
            }
        }
        let log = log.unwrap_or_else(|| open(dir.path()));
        let mut reference = Reference::new(next);
        prop_assert_eq!(log.size(), next);
        prop_assert_eq!(log.root_at(next).expect("root"), reference.mth(0, next));
        for i in (0..next).step_by(7) {
            prop_assert_eq!(log.entry(i).expect("entry"), entry(i));
            prop_assert_eq!(log.leaf_hash(i).expect("leaf"), reference.leaves[i as usize]);
        }
        prop_assert!(log.verify().is_ok());
    }
}
