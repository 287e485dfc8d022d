//! The right edge of a Merkle tree (its "compact range" from 0): the roots
//! of the complete subtrees that make up the first `size` leaves, largest
//! first. Enough to compute the root and to append leaves, so a monitor
//! that has seen every entry up to a checkpoint can check the next
//! checkpoint's root from the new entries alone.

use xgate_ledger::{Hash, node_hash};

/// The complete subtrees covering leaves `0..size`, one per bit set in
/// `size`, largest (leftmost) first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edge {
    size: u64,
    nodes: Vec<Hash>,
}

/// The hashes given do not make an edge of the size given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{got} hashes are not the edge of a tree of size {size}")]
pub struct BadEdge {
    /// The tree size.
    pub size: u64,
    /// How many hashes were given.
    pub got: usize,
}

impl Edge {
    /// The edge of a tree of `size` leaves from its subtree roots, largest
    /// first: exactly one per bit set in `size`.
    ///
    /// # Errors
    /// [`BadEdge`] for the wrong number of hashes.
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Result<Edge, BadEdge> {
        if nodes.len() != size.count_ones() as usize {
            return Err(BadEdge {
                size,
                got: nodes.len(),
            });
        }
        Ok(Edge { size, nodes })
    }

    /// How many leaves the edge covers.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The subtree roots, largest first.
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut size = self.size;
        // Each trailing one bit of the old size is a subtree of the new
        // leaf's height that now has a right sibling: merge them.
        while size & 1 == 1 {
            match self.nodes.pop() {
                Some(left) => hash = node_hash(&left, &hash),
                None => break,
            }
            size >>= 1;
        }
        self.nodes.push(hash);
        self.size += 1;
    }

    /// `MTH` of the leaves covered (RFC 9162: the smaller subtrees nest on
    /// the right).
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(last) = nodes.next() else {
            return Hash::EMPTY_ROOT;
        };
        nodes.fold(*last, |right, left| node_hash(left, &right))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_root_is_the_tree_root_at_every_size() {
        let mut edge = Edge::default();
        let mut leaves = Vec::new();
        assert_eq!(edge.root(), Hash::EMPTY_ROOT);
        for i in 0u32..600 {
            let leaf = xgate_ledger::leaf_hash(&i.to_be_bytes());
            leaves.push(leaf);
            edge.push(leaf);
            assert_eq!(
                edge.root(),
                xgate_ledger::hash::root_of(&leaves),
                "size {}",
                i + 1
            );
            assert_eq!(edge.nodes().len(), edge.size().count_ones() as usize);
        }
        let again = Edge::from_parts(edge.size(), edge.nodes().to_vec()).expect("parts");
        assert_eq!(again, edge);
        assert_eq!(
            Edge::from_parts(3, vec![Hash::EMPTY_ROOT]),
            Err(BadEdge { size: 3, got: 1 })
        );
    }
}
