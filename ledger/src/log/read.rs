//! Reading the log: its size, entries and leaf hashes, roots at any past
//! size, and inclusion and consistency proofs (RFC 9162 section 2.1).
//!
//! Nothing here takes the writer's turn: every read sees the durable size
//! and a snapshot of the right edge, which an append in flight never
//! changes under it.

use super::Log;

/// Bytes on disk by part of the log ([`Log::disk_usage`]). The tile files
/// are not counted: they are the log itself, a function of its size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// The journal's segments.
    pub journal: u64,
    /// Body files of bodies that are dropped in time.
    pub bodies: u64,
    /// Body files of bodies kept for good.
    pub kept: u64,
    /// The private proof sidecar.
    pub sidecar: u64,
}
use crate::checkpoint::NoteVerifier;
use crate::error::Error;
use crate::hash::Hash;
use crate::layout;
use crate::proof::{self, ConsistencyProof, InclusionProof, NodeSource};
use crate::store::Store;
use crate::tlog;
use crate::tree::NodeId;

impl<S: Store> Log<S> {
    /// The number of durable entries: everything below it is acknowledged
    /// and provable.
    pub fn size(&self) -> u64 {
        self.shared.head.durable()
    }

    /// The index the next append will get. It can be past [`Log::size`]
    /// after a failed sync, whose entries may still become durable. For a
    /// log's single writer, which prepares records for the indices its
    /// entries will get; with several writers it is only a hint.
    pub fn next_index(&self) -> u64 {
        self.shared.head.edge().size()
    }

    /// The store under the log, for owners of other keys that commit with
    /// appends ([`Log::append_batch_with`], [`Log::commit_writes`]). Keys
    /// starting with `L` are the log's: read them only through the log,
    /// never write them. Write only through the log, too: a write straight
    /// to the store is in no journal record, so nothing makes it durable.
    pub fn store(&self) -> &S {
        &self.shared.store
    }

    /// The log's origin (the name of its checkpoint key).
    pub fn origin(&self) -> &str {
        self.shared.latest.origin()
    }

    /// The verifier key for this log's checkpoints.
    pub fn verifier(&self) -> NoteVerifier {
        self.shared.latest.verifier()
    }

    /// The root hash of the log at `size`, for any `size <= self.size()`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] past the current size.
    pub fn root_at(&self, size: u64) -> Result<Hash, Error> {
        let current = self.size();
        if size > current {
            return Err(Error::OutOfRange {
                what: "size",
                value: size,
                size: current,
            });
        }
        proof::root_at(&self.shared.reader(), size)
    }

    /// The entry at `index`, exactly as appended.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] past the current size.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, Error> {
        let size = self.size();
        if index >= size {
            return Err(Error::OutOfRange {
                what: "index",
                value: index,
                size,
            });
        }
        // An entry leaves `pending` only once its bundle file is durable:
        // look there first, then in the file.
        if let Some(e) = self.shared.pending_read().entry(index) {
            return Ok(e.to_vec());
        }
        let bundle = index / tlog::WIDTH;
        let bytes = self
            .shared
            .tiles
            .read_bundle(bundle)?
            .ok_or_else(|| Error::Corrupt(format!("entry {index} is missing")))?;
        tlog::bundle::nth(&bytes, (index % tlog::WIDTH) as usize)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::Corrupt(format!("bundle holding entry {index} is malformed")))
    }

    /// A resource of the log's public C2SP tlog-tiles tree (`DIR/log/`),
    /// as a server must serve it ([`tlog::TileDir::read_served`]): the
    /// checkpoint file, a tile or an entry bundle, or `None` if the file
    /// does not exist (a partial tile may be gone once its full tile is
    /// written). Read only: the files are written by the integrator alone.
    ///
    /// # Errors
    /// A file whose length or format does not match its path; I/O failures.
    pub fn read_public(&self, resource: &tlog::Resource) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.shared.tiles.read_served(resource)?)
    }

    /// Whether the log has stopped taking commits until it is reopened: a
    /// journal write or barrier failed (the page cache can no longer be
    /// trusted), or a durable record could not be applied. Reopening
    /// recovers exactly what the disk holds.
    pub fn stopped(&self) -> bool {
        self.shared
            .broken
            .load(std::sync::atomic::Ordering::Acquire)
            || self.shared.journal.stopped()
    }

    /// Bytes the log keeps on disk, by part: what an operator watches to
    /// see the journal and the body files reclaimed.
    pub fn disk_usage(&self) -> DiskUsage {
        let s = &self.shared;
        DiskUsage {
            journal: s.journal.disk_bytes(),
            bodies: s.bodies.disk_bytes(),
            kept: s.kept.disk_bytes(),
            sidecar: s.nodes.disk_bytes(),
        }
    }

    /// The body a commit put under `key` with
    /// [`WriteBatch::put_body`](crate::WriteBatch::put_body) or
    /// [`WriteBatch::put_kept`](crate::WriteBatch::put_kept), if it is
    /// still there.
    ///
    /// # Errors
    /// A storage error, or [`Error::Corrupt`] if the store names a body the
    /// files do not hold.
    pub fn body(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        if let Some(at) = self.shared.body_at(&layout::body_key(key))? {
            return Ok(Some(self.shared.bodies.read(&at)?));
        }
        if let Some(at) = self.shared.body_at(&layout::kept_key(key))? {
            return Ok(Some(self.shared.kept.read(&at)?));
        }
        Ok(None)
    }

    /// The leaf hash of entry `index`, as stored in the tree.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] past the current size.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash, Error> {
        let size = self.size();
        if index >= size {
            return Err(Error::OutOfRange {
                what: "index",
                value: index,
                size,
            });
        }
        self.shared.reader().node(NodeId::new(0, index))
    }

    /// An inclusion proof for entry `index` in the tree of size `size`
    /// (RFC 9162 section 2.1.3.1).
    ///
    /// # Errors
    /// [`Error::OutOfRange`] unless `index < size <= self.size()`.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<InclusionProof, Error> {
        self.check_size(size)?;
        if index >= size {
            return Err(Error::OutOfRange {
                what: "index",
                value: index,
                size,
            });
        }
        proof::prove_inclusion(&self.shared.reader(), index, size)
    }

    /// A consistency proof from size `old` to size `new` (RFC 9162 section
    /// 2.1.4.1).
    ///
    /// # Errors
    /// [`Error::Invalid`] for `old == 0` or `old > new`,
    /// [`Error::OutOfRange`] past the current size.
    pub fn consistency(&self, old: u64, new: u64) -> Result<ConsistencyProof, Error> {
        crate::error::check_consistency_sizes(old, new)?;
        self.check_size(new)?;
        proof::prove_consistency(&self.shared.reader(), old, new)
    }

    /// Checks a tree size a proof is asked for: non-empty and not past the end.
    fn check_size(&self, size: u64) -> Result<(), Error> {
        crate::error::check_proof_size(size, || Ok(self.size()))
    }
}
