//! What readers see of the tree: the right edge as last applied to the
//! store, and the size known durable.
//!
//! The two move apart only between an append's write and its sync (and
//! after a failed sync): the edge follows the store, so the next append
//! builds on what the store holds; the durable size follows the syncs, so
//! nothing is readable or provable before it is acknowledged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::edge::Edge;

/// The published edge and durable size.
pub(super) struct Head {
    edge: RwLock<Arc<Edge>>,
    durable: AtomicU64,
}

impl Head {
    /// The head of a tree that is durable up to its edge, as on open.
    pub(super) fn new(edge: Arc<Edge>) -> Head {
        Head {
            durable: AtomicU64::new(edge.size()),
            edge: RwLock::new(edge),
        }
    }

    /// A snapshot of the edge: readers keep it for as long as they read.
    pub(super) fn edge(&self) -> Arc<Edge> {
        // Swapping an `Arc` cannot leave the lock's data half-written.
        Arc::clone(&self.edge.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The number of durable entries.
    pub(super) fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Publishes the edge of a batch the store has just applied. Full
    /// tiles the old edge held are in the store by now, so a reader on
    /// either edge finds every node.
    pub(super) fn applied(&self, edge: Arc<Edge>) {
        *self.edge.write().unwrap_or_else(PoisonError::into_inner) = edge;
    }

    /// Publishes that the store's sync made the first `size` entries durable.
    pub(super) fn synced(&self, size: u64) {
        self.durable.fetch_max(size, Ordering::AcqRel);
    }
}
