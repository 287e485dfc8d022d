//! Reading the log, from any replica: its size, entries, leaf hashes,
//! roots and proofs at any size, bodies, and the C2SP tlog-tiles resources
//! as a server must serve them.
//!
//! A size asked for past what this process knows is first checked with
//! the database: a receipt for an entry another replica appended proves
//! from this one as soon as it is committed.

use super::batch::to_i64;
use super::db::{Fail, pg, prepare};
use super::tree::{HEIGHT, TILE_BYTES, WIDTH};
use super::{PgLog, sql};
use crate::error::Error;
use crate::hash::{HASH_LEN, Hash};
use crate::proof::{self, ConsistencyProof, InclusionProof, NodeSource};
use crate::tlog::{Resource, Width, bundle};
use crate::tree::NodeId;

impl PgLog {
    /// The number of entries in the log, as this process knows it
    /// (refreshed from the database when more than a few milliseconds
    /// old; if the database is away, the last size known).
    pub fn size(&self) -> u64 {
        self.known().size
    }

    /// The index the next append would get: a hint only, with several
    /// writers.
    pub fn next_index(&self) -> u64 {
        self.size()
    }

    /// The root hash of the log at `size`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] past the log's size.
    pub fn root_at(&self, size: u64) -> Result<Hash, Error> {
        let current = self.size_at_least(size)?;
        if size > current {
            return Err(Error::OutOfRange {
                what: "size",
                value: size,
                size: current,
            });
        }
        self.over_tree(size, |nodes| proof::root_at(nodes, size))
    }

    /// The entry at `index`, exactly as appended.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] past the log's size.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, Error> {
        self.check_index(index, index.saturating_add(1))?;
        let (count, data) = self
            .bundle(index / WIDTH)?
            .ok_or_else(|| Error::Corrupt(format!("entry {index} is missing")))?;
        let at = (index % WIDTH) as usize;
        if at >= count {
            return Err(Error::Corrupt(format!("entry {index} is missing")));
        }
        bundle::nth(&data, at)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::Corrupt(format!("bundle holding entry {index} is malformed")))
    }

    /// The leaf hash of entry `index`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] past the log's size.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash, Error> {
        self.check_index(index, index.saturating_add(1))?;
        self.over_tree(index + 1, |nodes| nodes.node(NodeId::new(0, index)))
    }

    /// An inclusion proof for entry `index` in the tree of `size` entries.
    ///
    /// # Errors
    /// [`Error::Invalid`] for size 0, [`Error::OutOfRange`] unless
    /// `index < size <= ` the log's size.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<InclusionProof, Error> {
        self.check_size(size)?;
        if index >= size {
            return Err(Error::OutOfRange {
                what: "index",
                value: index,
                size,
            });
        }
        self.over_tree(size, |nodes| proof::prove_inclusion(nodes, index, size))
    }

    /// A consistency proof from size `old` to size `new`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for `old == 0` or `old > new`,
    /// [`Error::OutOfRange`] past the log's size.
    pub fn consistency(&self, old: u64, new: u64) -> Result<ConsistencyProof, Error> {
        crate::error::check_consistency_sizes(old, new)?;
        self.check_size(new)?;
        self.over_tree(new, |nodes| proof::prove_consistency(nodes, old, new))
    }

    /// A public C2SP tlog-tiles resource, as a server must serve it: the
    /// checkpoint (for a witnessed log, only what
    /// [`PgLog::publish_cosigned`] stored; else the newest signed), a full
    /// tile or bundle once it is full, a partial one (`.p/<W>`) once the
    /// log holds its `W` hashes or entries. `None` if there is no such
    /// resource (yet).
    ///
    /// # Errors
    /// A stored row that is not what its place says; the database failing.
    pub fn read_public(&self, resource: &Resource) -> Result<Option<Vec<u8>>, Error> {
        match *resource {
            Resource::Checkpoint => {
                let known = self.known();
                let note = if self.witnessed {
                    known.served
                } else {
                    known.latest
                };
                Ok(note.map(|n| n.note.into_bytes()))
            }
            Resource::Tile {
                level,
                index,
                width,
            } => {
                if u32::from(level) * u32::from(HEIGHT) >= 56 {
                    return Ok(None);
                }
                if width == Width::Full
                    && let Some(full) = self.cached_tile(level, index)
                {
                    return Ok(Some(full));
                }
                let Some(bytes) = self.tile_row(level, index)? else {
                    return Ok(None);
                };
                if !bytes.len().is_multiple_of(HASH_LEN) || bytes.len() > TILE_BYTES {
                    return Err(Error::Corrupt(format!("tile {level}/{index} is malformed")));
                }
                let want = width.count() * HASH_LEN;
                Ok(match width {
                    Width::Full => (bytes.len() == TILE_BYTES).then_some(bytes),
                    Width::Partial(_) => (bytes.len() >= want).then(|| bytes[..want].to_vec()),
                })
            }
            Resource::Bundle { index, width } => {
                let Some((count, data)) = self.bundle(index)? else {
                    return Ok(None);
                };
                let want = width.count();
                if count < want {
                    return Ok(None);
                }
                let end = prefix_len(&data, want)
                    .ok_or_else(|| Error::Corrupt(format!("entry bundle {index} is malformed")))?;
                if width == Width::Full && end != data.len() {
                    return Err(Error::Corrupt(format!("entry bundle {index} is malformed")));
                }
                Ok(Some(data[..end].to_vec()))
            }
        }
    }

    /// The body a batch kept under `key` (with `put_body` or `put_kept`),
    /// if it is still there.
    ///
    /// # Errors
    /// The database failing.
    pub fn body(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let key = key.to_vec();
        self.db.read(move |client| {
            let key = key.clone();
            async move {
                let s = prepare(&client, &[sql::BODY]).await?;
                let row = client
                    .query_opt(&s[0], &[&key])
                    .await
                    .map_err(pg("read a body"))?;
                row.map(|r| r.try_get(0).map_err(pg("read a body")))
                    .transpose()
            }
        })
    }

    /// A full tile from the cache, as served.
    fn cached_tile(&self, level: u8, index: u64) -> Option<Vec<u8>> {
        let mut cache = self
            .tiles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(&(level, index)).map(|t| t.row_bytes())
    }

    /// The stored row of one tile.
    fn tile_row(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, Error> {
        let (level, index) = (i16::from(level), to_i64(index));
        self.db.read(move |client| async move {
            let s = prepare(&client, &[sql::TILE]).await?;
            let row = client
                .query_opt(&s[0], &[&level, &index])
                .await
                .map_err(pg("read a tile"))?;
            // An aggregate: one row, null when the tile has no chunk.
            let hashes: Option<Option<Vec<u8>>> = row
                .map(|r| r.try_get(0).map_err(pg("read a tile")))
                .transpose()?;
            Ok(hashes.flatten())
        })
    }

    /// One entry bundle: how many entries it holds, and its bytes.
    pub(super) fn bundle(&self, index: u64) -> Result<Option<(usize, Vec<u8>)>, Error> {
        let index = to_i64(index);
        self.db.read(move |client| async move {
            let s = prepare(&client, &[sql::BUNDLE]).await?;
            let row = client
                .query_opt(&s[0], &[&index])
                .await
                .map_err(pg("read an entry bundle"))?;
            let Some(row) = row else {
                return Ok(None);
            };
            // An aggregate: nulls when the bundle has no chunk.
            let count: Option<i64> = row.try_get(0).map_err(pg("read an entry bundle"))?;
            let data: Option<Vec<u8>> = row.try_get(1).map_err(pg("read an entry bundle"))?;
            let (Some(count), Some(data)) = (count, data) else {
                return Ok(None);
            };
            let count = usize::try_from(count).map_err(|_| {
                Fail::Log(Error::Corrupt("an entry bundle's count is negative".into()))
            })?;
            Ok(Some((count, data)))
        })
    }

    /// Checks `index` against the size, which must reach `wanted`.
    fn check_index(&self, index: u64, wanted: u64) -> Result<(), Error> {
        let size = self.size_at_least(wanted)?;
        if index >= size {
            return Err(Error::OutOfRange {
                what: "index",
                value: index,
                size,
            });
        }
        Ok(())
    }

    /// Checks a tree size a proof is asked for: not empty, not past the end.
    fn check_size(&self, size: u64) -> Result<(), Error> {
        crate::error::check_proof_size(size, || self.size_at_least(size))
    }
}

/// Bytes of the first `n` entries of a bundle, if it holds them.
fn prefix_len(data: &[u8], n: usize) -> Option<usize> {
    let mut at = 0usize;
    for _ in 0..n {
        let len = data.get(at..at + 2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        at = at.checked_add(2 + len)?;
        if at > data.len() {
            return None;
        }
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_prefixes_end_where_an_entry_ends() {
        let mut data = Vec::new();
        for e in [&b"ab"[..], b"", b"xyz"] {
            bundle::push(&mut data, e).expect("push");
        }
        assert_eq!(prefix_len(&data, 0), Some(0));
        assert_eq!(prefix_len(&data, 1), Some(4));
        assert_eq!(prefix_len(&data, 2), Some(6));
        assert_eq!(prefix_len(&data, 3), Some(data.len()));
        assert_eq!(prefix_len(&data, 4), None);
        assert_eq!(prefix_len(&data[..5], 2), None);
    }
}
