//! A C2SP tlog-tiles client: the checkpoint, tiles and entry bundles of a
//! log, turned into roots, proofs and entries that are recomputed here and
//! checked against signed checkpoints, never taken from the server.
//!
//! The rules of the spec it follows:
//! - a partial tile (or bundle) is fetched only for the size of a
//!   checkpoint the caller verified (every method takes that
//!   [`Checkpoint`]), and when it is gone (the log may delete it once the
//!   full one exists) the full one is fetched instead and its first `W`
//!   hashes used;
//! - full tiles are immutable: they are cached (up to [`CACHE_TILES`]),
//!   but only once they have taken part in a root that matched a signed
//!   checkpoint;
//! - a tile must be exactly `32 * W` bytes, a bundle exactly `W` entries.

use std::num::NonZeroUsize;
use std::sync::Arc;

use bytes::Bytes;
use lru::LruCache;
use xgate_ledger::proof::{InclusionProof, prove_consistency, prove_inclusion, root_at};
use xgate_ledger::{Checkpoint, Hash, verify_consistency};

use super::fetch::{FetchError, Fetcher};
use super::layout::{LayoutError, Needed, TileRef, Tiles};

/// Full tiles kept in memory: 32 MiB.
pub const CACHE_TILES: usize = 4096;

/// The largest checkpoint accepted: a note with the spec's 16 signatures of
/// ML-DSA-44 size fits many times over.
const MAX_CHECKPOINT: usize = 256 * 1024;

/// Why the log's resources did not give what a verified checkpoint
/// promises. [`TilesError::is_misbehaviour`] separates what only a
/// misbehaving log can cause from a log that could not be reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TilesError {
    /// The log could not be reached or answered an unexpected status.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A resource a verified checkpoint requires is not served (404, and
    /// no full tile to fall back on).
    #[error("the log does not serve {path}, which its checkpoint of size {size} requires")]
    Missing {
        /// The resource's path.
        path: String,
        /// The checkpoint's size.
        size: u64,
    },
    /// A resource is not what its path says: wrong length, bad framing,
    /// not UTF-8.
    #[error("{path} is malformed: {why}")]
    Malformed {
        /// The resource's path.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The tiles do not hash to the checkpoint's root.
    #[error("the log's tiles do not hash to the root of its checkpoint of size {size}")]
    RootMismatch {
        /// The checkpoint's size.
        size: u64,
    },
    /// A bundle's entry does not hash to its level-0 tile's leaf hash.
    #[error("entry {index} in the log's bundle does not hash to its leaf hash in tile/0")]
    BundleMismatch {
        /// The entry's index.
        index: u64,
    },
    /// No consistency proof exists between the two checkpoints: the tiles
    /// of the larger one (which hash to its root) do not contain the
    /// smaller one's root.
    #[error("the checkpoints of sizes {old} and {new} are not consistent: {why}")]
    Inconsistent {
        /// The smaller size.
        old: u64,
        /// The larger size.
        new: u64,
        /// What the proof recomputed from tiles says.
        why: String,
    },
    /// A tile needed was not fetched: a bug here, not the log's doing.
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

impl TilesError {
    /// Whether only a log that misbehaves (serves resources that
    /// contradict its signed checkpoints) can cause this, as opposed to a
    /// log that is unreachable or incomplete.
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            TilesError::Malformed { .. }
                | TilesError::RootMismatch { .. }
                | TilesError::BundleMismatch { .. }
                | TilesError::Inconsistent { .. }
        )
    }
}

/// A tlog-tiles client for one log.
pub struct LogClient {
    fetcher: Fetcher,
    cache: LruCache<(u8, u64), Arc<[Hash]>>,
}

impl LogClient {
    /// A client fetching with `fetcher`.
    pub fn new(fetcher: Fetcher) -> LogClient {
        LogClient {
            fetcher,
            cache: LruCache::new(NonZeroUsize::MIN.saturating_add(CACHE_TILES - 1)),
        }
    }

    /// The log's current checkpoint note, unverified.
    ///
    /// # Errors
    /// [`TilesError::Fetch`], [`TilesError::Missing`] (404, with size 0),
    /// [`TilesError::Malformed`] for a note that is not UTF-8 or too large.
    pub async fn checkpoint(&mut self) -> Result<String, TilesError> {
        let path = xgate_ledger::tlog::path::CHECKPOINT;
        let body = self
            .fetcher
            .get(path)
            .await?
            .ok_or_else(|| TilesError::Missing {
                path: path.to_owned(),
                size: 0,
            })?;
        if body.len() > MAX_CHECKPOINT {
            return Err(malformed(path, "larger than a checkpoint can be"));
        }
        String::from_utf8(body.to_vec()).map_err(|_| malformed(path, "not UTF-8"))
    }

    /// The tiles a computation over the tree of `checkpoint` needs, fetched
    /// and checked: `record` runs the computation over a [`Needed`] to list
    /// them; the tiles for the root are always added, and the root they
    /// give must be the checkpoint's.
    ///
    /// # Errors
    /// Any [`TilesError`]; [`TilesError::RootMismatch`] if the tiles do not
    /// hash to the checkpoint's root.
    pub async fn tiles_for(
        &mut self,
        checkpoint: &Checkpoint,
        record: impl FnOnce(&Needed),
    ) -> Result<Tiles, TilesError> {
        let size = checkpoint.size;
        let needed = Needed::new(size);
        root_at(&needed, size)?;
        record(&needed);
        let mut tiles = Tiles::new(size);
        let mut fetched_full = Vec::new();
        for tile in needed.into_tiles() {
            let (hashes, fresh) = self.tile(tile, size).await?;
            if fresh && tile.is_full() {
                fetched_full.push((tile, Arc::clone(&hashes)));
            }
            tiles.insert(tile, hashes);
        }
        if root_at(&tiles, size)? != checkpoint.root {
            return Err(TilesError::RootMismatch { size });
        }
        // Only tiles that hashed to a signed root are kept for later.
        for (tile, hashes) in fetched_full {
            self.cache.put((tile.level, tile.index), hashes);
        }
        Ok(tiles)
    }

    /// Checks that `a` and `b` (two verified checkpoints of one log, in
    /// either order) are consistent, with the proof recomputed from the
    /// larger one's tiles.
    ///
    /// # Errors
    /// [`TilesError::Inconsistent`], or why the tiles could not be had.
    pub async fn check_consistent(
        &mut self,
        a: &Checkpoint,
        b: &Checkpoint,
    ) -> Result<(), TilesError> {
        let (old, new) = if a.size <= b.size { (a, b) } else { (b, a) };
        let inconsistent = |why: String| TilesError::Inconsistent {
            old: old.size,
            new: new.size,
            why,
        };
        if old.size == new.size {
            return match old.root == new.root {
                true => Ok(()),
                false => Err(inconsistent("same size, different roots".into())),
            };
        }
        if old.size == 0 {
            return match old.root == Hash::EMPTY_ROOT {
                true => Ok(()),
                false => Err(inconsistent("an empty tree with a non-empty root".into())),
            };
        }
        let tiles = self
            .tiles_for(new, |n| {
                let _ = prove_consistency(n, old.size, new.size);
            })
            .await?;
        let proof = prove_consistency(&tiles, old.size, new.size)?;
        verify_consistency(&proof, &old.root, &new.root)
            .map_err(|e| inconsistent(format!("the proof from the tiles: {e}")))
    }

    /// The inclusion proof of entry `index` in the tree of `checkpoint`,
    /// recomputed from its tiles (which hash to its root).
    ///
    /// # Errors
    /// [`TilesError::Missing`] for an index not below the size, or why the
    /// tiles could not be had.
    pub async fn inclusion(
        &mut self,
        checkpoint: &Checkpoint,
        index: u64,
    ) -> Result<InclusionProof, TilesError> {
        if index >= checkpoint.size {
            return Err(TilesError::Missing {
                path: format!("entry {index}"),
                size: checkpoint.size,
            });
        }
        let tiles = self
            .tiles_for(checkpoint, |n| {
                let _ = prove_inclusion(n, index, checkpoint.size);
            })
            .await?;
        Ok(prove_inclusion(&tiles, index, checkpoint.size)?)
    }

    /// The entries of bundle `bundle` in the tree of `checkpoint`, with their
    /// leaf hashes, each checked to hash to its hash in the level-0 tile.
    /// The level-0 tile itself is not tied to the root here: fold the
    /// hashes into an [`Edge`](super::edge::Edge), or prove them.
    ///
    /// # Errors
    /// [`TilesError::BundleMismatch`], [`TilesError::Malformed`] for a bundle
    /// of the wrong number of entries, or why they could not be had.
    pub async fn bundle(
        &mut self,
        checkpoint: &Checkpoint,
        bundle: u64,
    ) -> Result<Vec<(Vec<u8>, Hash)>, TilesError> {
        let size = checkpoint.size;
        let tile = TileRef::at(0, bundle, size);
        if tile.width == 0 {
            return Err(TilesError::Missing {
                path: tile.bundle_path(),
                size,
            });
        }
        let (hashes, _) = self.tile(tile, size).await?;
        let width = usize::from(tile.width);
        let (path, body) = self.resource(tile, size, true).await?;
        let entries = xgate_ledger::tlog::bundle::split(&body)
            .ok_or_else(|| malformed(&path, "not a sequence of length-prefixed entries"))?;
        // A full bundle fetched for a partial one holds 256: the first W
        // are the partial's.
        let expected = if is_partial(&path) { width } else { 256 };
        if entries.len() != expected {
            return Err(malformed(
                &path,
                &format!("{} entries where {expected} are expected", entries.len()),
            ));
        }
        let first = bundle * 256;
        entries
            .into_iter()
            .take(width)
            .zip(hashes.iter())
            .enumerate()
            .map(|(i, (entry, hash))| {
                if xgate_ledger::leaf_hash(entry) == *hash {
                    Ok((entry.to_vec(), *hash))
                } else {
                    Err(TilesError::BundleMismatch {
                        index: first + i as u64,
                    })
                }
            })
            .collect()
    }

    /// The hashes of `tile` (at least `tile.width`), from the cache if full
    /// and seen before; the flag says whether they were fetched now.
    async fn tile(&mut self, tile: TileRef, size: u64) -> Result<(Arc<[Hash]>, bool), TilesError> {
        if let Some(hashes) = self.cache.get(&(tile.level, tile.index)) {
            return Ok((Arc::clone(hashes), false));
        }
        let (path, body) = self.resource(tile, size, false).await?;
        let count = if is_partial(&path) {
            usize::from(tile.width)
        } else {
            256
        };
        if body.len() != count * 32 {
            return Err(malformed(
                &path,
                &format!("{} bytes where {} are expected", body.len(), count * 32),
            ));
        }
        let hashes: Vec<Hash> = body.chunks_exact(32).filter_map(Hash::from_slice).collect();
        Ok((hashes.into(), true))
    }

    /// Fetches `tile` (or its bundle), partial as the checkpoint requires,
    /// falling back on the full one if the partial is gone. Returns the
    /// path that answered.
    async fn resource(
        &mut self,
        tile: TileRef,
        size: u64,
        bundle: bool,
    ) -> Result<(String, Bytes), TilesError> {
        let path_of = |t: TileRef| if bundle { t.bundle_path() } else { t.path() };
        let path = path_of(tile);
        if let Some(body) = self.fetcher.get(&path).await? {
            return Ok((path, body));
        }
        if !tile.is_full() {
            let full = TileRef { width: 256, ..tile };
            let full_path = path_of(full);
            if let Some(body) = self.fetcher.get(&full_path).await? {
                return Ok((full_path, body));
            }
        }
        Err(TilesError::Missing { path, size })
    }
}

/// Whether `path` names a partial tile or bundle.
fn is_partial(path: &str) -> bool {
    path.contains(".p/")
}

fn malformed(path: &str, why: &str) -> TilesError {
    TilesError::Malformed {
        path: path.to_owned(),
        why: why.to_owned(),
    }
}
