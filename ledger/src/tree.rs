//! Tree arithmetic for RFC 9162 trees: where splits fall and which complete
//! subtrees make up a range of leaves.
//!
//! A complete subtree is addressed as `(level, index)`: it covers leaves
//! `[index << level, (index + 1) << level)`. These are the only hashes the log
//! ever stores; every other hash a proof needs is folded from them.

use crate::hash::{Hash, node_hash};

/// A complete (perfect) subtree: `2^level` leaves starting at `index << level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves (0 = a leaf).
    pub level: u8,
    /// Position among the nodes of that level, left to right.
    pub index: u64,
}

impl NodeId {
    /// The node at `level` whose leftmost leaf is `index << level`.
    pub const fn new(level: u8, index: u64) -> NodeId {
        NodeId { level, index }
    }
}

/// The largest power of two strictly smaller than `n` (the RFC 9162 split
/// point `k`). `n` must be at least 2.
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The complete subtrees that exactly cover leaves `[lo, hi)`, left to right,
/// each as large as the alignment of its start allows.
///
/// When `lo` is a multiple of the power of two at or above `hi - lo` (as for
/// every range in an RFC 9162 proof or root), the pieces shrink from left to
/// right and folding them right to left with [`node_hash`] gives `MTH(D[lo:hi])`.
pub(crate) fn cover(lo: u64, hi: u64) -> impl Iterator<Item = NodeId> {
    let mut lo = lo;
    std::iter::from_fn(move || {
        if lo >= hi {
            return None;
        }
        let by_alignment = if lo == 0 { 63 } else { lo.trailing_zeros() };
        let by_length = 63 - (hi - lo).leading_zeros();
        let level = by_alignment.min(by_length);
        let node = NodeId::new(level as u8, lo >> level);
        lo += 1 << level;
        Some(node)
    })
}

/// Folds the hashes of the pieces from [`cover`] into one subtree hash, right
/// to left as RFC 9162 nests them. Returns `None` for an empty list.
pub(crate) fn fold_right(pieces: &[Hash]) -> Option<Hash> {
    let (last, rest) = pieces.split_last()?;
    Some(
        rest.iter()
            .rev()
            .fold(*last, |acc, left| node_hash(left, &acc)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_is_largest_power_of_two_below() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(1 << 40), 1 << 39);
        assert_eq!(split_point((1 << 40) + 1), 1 << 40);
    }

    #[test]
    fn cover_follows_binary_decomposition() {
        let pieces: Vec<_> = cover(0, 13).collect();
        assert_eq!(
            pieces,
            vec![NodeId::new(3, 0), NodeId::new(2, 2), NodeId::new(0, 12)]
        );
        let pieces: Vec<_> = cover(8, 11).collect();
        assert_eq!(pieces, vec![NodeId::new(1, 4), NodeId::new(0, 10)]);
        assert_eq!(cover(5, 5).count(), 0);
    }

    #[test]
    fn cover_handles_unaligned_starts() {
        let pieces: Vec<_> = cover(3, 9).collect();
        assert_eq!(
            pieces,
            vec![NodeId::new(0, 3), NodeId::new(2, 1), NodeId::new(0, 8)]
        );
    }
}
