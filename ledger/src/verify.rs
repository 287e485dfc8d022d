//! Pure proof verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2).
//!
//! Nothing here touches storage or the network, and nothing panics on any
//! input: auditors embed this module (build the crate with
//! `default-features = false`) and feed it whatever a log operator sent.
//! Checkpoint signatures are checked in `checkpoint`.

use crate::hash::{Hash, node_hash};
use crate::proof::{ConsistencyProof, InclusionProof};

/// Why a proof did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// The leaf index claimed.
        index: u64,
        /// The tree size claimed.
        size: u64,
    },
    /// The old size of a consistency proof is larger than the new one.
    #[error("old size {old} is larger than new size {new}")]
    SizesReversed {
        /// Claimed old size.
        old: u64,
        /// Claimed new size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for the sizes claimed.
    #[error("proof has the wrong number of hashes for these sizes")]
    WrongLength,
    /// The proof is well formed but leads to a different root.
    #[error("proof does not lead to the expected root")]
    RootMismatch,
}

/// Checks that `leaf_hash` is leaf `proof.leaf_index` of the tree of size
/// `proof.tree_size` whose root is `root` (RFC 9162 section 2.1.3.2).
///
/// # Errors
/// [`VerifyError`] for an out-of-range index, a proof of the wrong length or
/// a wrong root.
pub fn verify_inclusion(
    proof: &InclusionProof,
    leaf_hash: &Hash,
    root: &Hash,
) -> Result<(), VerifyError> {
    let (index, size) = (proof.leaf_index, proof.tree_size);
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in &proof.hashes {
        if snode == 0 {
            return Err(VerifyError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            // Skip the levels where this node is the lone rightmost child.
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(VerifyError::WrongLength);
    }
    if r != *root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of size `proof.old_size` with root `old_root` is a
/// prefix of the tree of size `proof.new_size` with root `new_root`
/// (RFC 9162 section 2.1.4.2).
///
/// Equal sizes need an empty proof and equal roots. The empty tree is a
/// prefix of every tree, with an empty proof, when `old_root` is the
/// empty-tree hash.
///
/// # Errors
/// [`VerifyError`] for reversed sizes, a proof of the wrong length or a
/// mismatching root.
pub fn verify_consistency(
    proof: &ConsistencyProof,
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), VerifyError> {
    let (old, new) = (proof.old_size, proof.new_size);
    if old > new {
        return Err(VerifyError::SizesReversed { old, new });
    }
    if old == new || old == 0 {
        if !proof.hashes.is_empty() {
            return Err(VerifyError::WrongLength);
        }
        let expected = if old == 0 {
            &Hash::EMPTY_ROOT
        } else {
            new_root
        };
        return if old_root == expected {
            Ok(())
        } else {
            Err(VerifyError::RootMismatch)
        };
    }
    // When the old tree is a complete subtree, the proof omits its root (it
    // is the starting point); put it back in front.
    let mut path = proof.hashes.iter();
    let seed = if old.is_power_of_two() {
        *old_root
    } else {
        *path.next().ok_or(VerifyError::WrongLength)?
    };
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in path {
        if snode == 0 {
            return Err(VerifyError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(VerifyError::WrongLength);
    }
    if fr != *old_root || sr != *new_root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}
