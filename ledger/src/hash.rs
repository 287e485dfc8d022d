//! RFC 9162 section 2.1 hashing: the leaf and interior node hash functions,
//! the [`Hash`](struct@Hash) newtype, and the `rs_merkle` hasher that gives the RFC tree
//! shape.
//!
//! Tree arithmetic (which subtrees make up a range) lives in `tree`; proofs in
//! `proof` and `verify`.

use std::fmt;

use rs_merkle::{Hasher, MerkleTree, PartialTree};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Length in bytes of every hash in the log (SHA-256).
pub const HASH_LEN: usize = 32;

/// A SHA-256 hash of a leaf, an interior node or a whole tree.
///
/// Equality is constant time: hashes are compared against attacker-supplied
/// proofs, and a timing side channel there would be a needless gift.
#[derive(Clone, Copy)]
pub struct Hash(pub [u8; HASH_LEN]);

impl Hash {
    /// The root of the empty tree, `SHA-256("")` (RFC 9162 section 2.1.1).
    pub const EMPTY_ROOT: Hash = Hash([
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9,
        0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52,
        0xb8, 0x55,
    ]);

    /// The bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Reads a hash from a slice that must be exactly [`HASH_LEN`] bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Hash> {
        <[u8; HASH_LEN]>::try_from(bytes).ok().map(Hash)
    }
}

impl PartialEq for Hash {
    fn eq(&self, other: &Hash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Hash {}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl From<Hash> for Vec<u8> {
    fn from(h: Hash) -> Vec<u8> {
        h.0.to_vec()
    }
}

impl TryFrom<Vec<u8>> for Hash {
    type Error = Vec<u8>;

    fn try_from(v: Vec<u8>) -> Result<Hash, Vec<u8>> {
        Hash::from_slice(&v).ok_or(v)
    }
}

/// `MTH({d}) = SHA-256(0x00 || d)`: the hash of one log entry (RFC 9162 section 2.1.1).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    Hash(h.finalize().into())
}

/// `SHA-256(0x01 || left || right)`: an interior node (RFC 9162 section 2.1.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// The RFC 9162 hasher for `rs_merkle`.
///
/// `rs_merkle` builds trees bottom-up, pairing neighbours and passing a lone
/// rightmost node up unchanged. With the 0x01 node prefix applied here, that
/// "promote the lone left node" rule yields exactly the RFC 9162 tree, whose
/// recursive definition splits at the largest power of two below `n`. Leaves
/// handed to `rs_merkle` are already [`leaf_hash`]es, so `hash` is only the bare
/// digest that `rs_merkle` uses nowhere on our paths.
#[derive(Clone, Copy, Debug)]
pub struct Rfc9162Hasher;

impl Hasher for Rfc9162Hasher {
    type Hash = Hash;

    fn hash(data: &[u8]) -> Hash {
        Hash(Sha256::digest(data).into())
    }

    fn concat_and_hash(left: &Hash, right: Option<&Hash>) -> Hash {
        match right {
            Some(right) => node_hash(left, right),
            None => *left,
        }
    }

    fn hash_size() -> usize {
        HASH_LEN
    }
}

/// The Merkle tree hash `MTH(D[n])` of a bounded list of leaf hashes, computed
/// by `rs_merkle`. The empty list has the empty-tree root.
///
/// This builds the whole tree in memory: use it for bounded pieces (a tile, a
/// test), never for the log itself.
pub fn root_of(leaves: &[Hash]) -> Hash {
    MerkleTree::<Rfc9162Hasher>::from_leaves(leaves)
        .root()
        .unwrap_or(Hash::EMPTY_ROOT)
}

/// Every layer of the RFC 9162 tree over `leaves`, bottom first, as built by
/// `rs_merkle`. Layer `h` holds `ceil(n / 2^h)` nodes, the last of which may be
/// a promoted (incomplete) subtree when `n` is not a multiple of `2^h`.
pub fn layers_of(leaves: &[Hash]) -> Vec<Vec<Hash>> {
    let mut layers = match PartialTree::<Rfc9162Hasher>::from_leaves(leaves) {
        Ok(tree) => tree.layer_nodes(),
        // rs_merkle only fails on an empty input.
        Err(_) => Vec::new(),
    };
    // rs_merkle 1.5 repeats the root as an extra one-node layer; drop it.
    while layers.len() >= 2 && layers[layers.len() - 2].len() == 1 {
        layers.pop();
    }
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(Hash::EMPTY_ROOT, Hash(Sha256::digest(b"").into()));
        assert_eq!(root_of(&[]), Hash::EMPTY_ROOT);
    }

    #[test]
    fn leaf_and_node_hashes_are_domain_separated() {
        let l = leaf_hash(b"");
        assert_ne!(l, Hash(Sha256::digest(b"").into()));
        assert_ne!(
            node_hash(&l, &l),
            Hash(Sha256::digest([l.0, l.0].concat()).into())
        );
    }

    #[test]
    fn layers_of_matches_root_of() {
        let leaves: Vec<Hash> = (0u8..13).map(|i| leaf_hash(&[i])).collect();
        let layers = layers_of(&leaves);
        assert_eq!(layers[0].len(), 13);
        assert_eq!(layers.len(), 5, "13 leaves make a tree of depth 4");
        assert_eq!(layers.last().map(|l| l.len()), Some(1));
        assert_eq!(layers.last().map(|l| l[0]), Some(root_of(&leaves)));
    }
}
