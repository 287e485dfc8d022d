//! Building inclusion and consistency proofs (RFC 9162 sections 2.1.3.1 and
//! 2.1.4.1) from stored complete-subtree hashes.
//!
//! The builders are written against [`NodeSource`], so they run the same over
//! the on-disk log and over an in-memory list of leaves in tests. Checking a
//! proof is in `verify`, which needs none of this.

use crate::hash::Hash;
use crate::tree::{NodeId, cover, fold_right, split_point};

/// Anything that can produce the hash of a complete subtree that exists.
pub trait NodeSource {
    /// Why a node could not be read.
    type Error;

    /// The hash of the complete subtree `node`.
    fn node(&self, node: NodeId) -> Result<Hash, Self::Error>;
}

/// An inclusion proof (audit path) for one leaf in a tree of a given size.
///
/// `hashes` runs from the leaf's sibling up to the child of the root, as in
/// RFC 9162 section 2.1.3.1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// Index of the proven leaf.
    pub leaf_index: u64,
    /// Size of the tree the proof is for.
    pub tree_size: u64,
    /// The audit path.
    pub hashes: Vec<Hash>,
}

/// A consistency proof between two sizes of the log (RFC 9162 section 2.1.4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The older, smaller size.
    pub old_size: u64,
    /// The newer, larger size.
    pub new_size: u64,
    /// The proof nodes, in RFC order.
    pub hashes: Vec<Hash>,
}

/// `MTH(D[lo:hi])` for a range whose start is aligned to the power of two at or
/// above its length, folded from stored complete subtrees.
pub(crate) fn subtree_hash<S: NodeSource>(src: &S, lo: u64, hi: u64) -> Result<Hash, S::Error> {
    let mut pieces = Vec::with_capacity(64);
    for node in cover(lo, hi) {
        pieces.push(src.node(node)?);
    }
    Ok(fold_right(&pieces).unwrap_or(Hash::EMPTY_ROOT))
}

/// The root hash of the first `size` leaves.
pub fn root_at<S: NodeSource>(src: &S, size: u64) -> Result<Hash, S::Error> {
    subtree_hash(src, 0, size)
}

/// Builds `PATH(index, D[0:size])`.
///
/// The caller guarantees `index < size` and that every leaf below `size` exists.
pub fn prove_inclusion<S: NodeSource>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<InclusionProof, S::Error> {
    debug_assert!(index < size);
    // The RFC recursion descends towards the leaf and appends each sibling
    // after the deeper path; walking down and reversing gives the same order.
    let (mut lo, mut hi) = (0, size);
    let mut hashes = Vec::with_capacity(64);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            hashes.push(subtree_hash(src, lo + k, hi)?);
            hi = lo + k;
        } else {
            hashes.push(subtree_hash(src, lo, lo + k)?);
            lo += k;
        }
    }
    hashes.reverse();
    Ok(InclusionProof {
        leaf_index: index,
        tree_size: size,
        hashes,
    })
}

/// Builds `PROOF(old, D[0:new])` = `SUBPROOF(old, D[0:new], true)`.
///
/// The caller guarantees `0 < old <= new` and that every leaf below `new`
/// exists. Equal sizes give the empty proof.
pub fn prove_consistency<S: NodeSource>(
    src: &S,
    old: u64,
    new: u64,
) -> Result<ConsistencyProof, S::Error> {
    debug_assert!(0 < old && old <= new);
    let (mut lo, mut hi) = (0, new);
    // `whole_old_tree` is the RFC's `b`: true while the old tree is the left
    // edge of the current subtree, so its root need not be sent.
    let mut whole_old_tree = true;
    let mut hashes = Vec::with_capacity(64);
    loop {
        if old == hi {
            if !whole_old_tree {
                hashes.push(subtree_hash(src, lo, hi)?);
            }
            break;
        }
        let k = split_point(hi - lo);
        if old <= lo + k {
            hashes.push(subtree_hash(src, lo + k, hi)?);
            hi = lo + k;
        } else {
            hashes.push(subtree_hash(src, lo, lo + k)?);
            lo += k;
            whole_old_tree = false;
        }
    }
    hashes.reverse();
    Ok(ConsistencyProof {
        old_size: old,
        new_size: new,
        hashes,
    })
}

/// A [`NodeSource`] over a list of leaf hashes held in memory, hashing each
/// requested subtree from its leaves. Meant for tests and small tools.
#[derive(Clone, Debug, Default)]
pub struct MemoryLeaves(pub Vec<Hash>);

impl NodeSource for MemoryLeaves {
    type Error = std::convert::Infallible;

    fn node(&self, node: NodeId) -> Result<Hash, Self::Error> {
        let lo = (node.index << node.level) as usize;
        let hi = lo + (1usize << node.level);
        Ok(crate::hash::root_of(&self.0[lo..hi]))
    }
}
