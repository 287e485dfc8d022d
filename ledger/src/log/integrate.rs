//! Integration, off the write path: what the journal holds durably becomes
//! C2SP tlog-tiles files, a checkpoint is published for them, and the
//! journal is released.
//!
//! One round, on the integrator thread (every second, or sooner when many
//! entries wait), for the tree as one edge snapshot shows it (size `n`):
//!
//! 1. every full entry bundle below `n` that is not yet a file, from the
//!    entries pending in memory;
//! 2. the full private tiles (levels >= 1) to the proof sidecar;
//! 3. every full public tile below `n`, its 256 hashes read through the
//!    same reader proofs use;
//! 4. barriers: each new file was written to a temporary, `fdatasync`ed and
//!    renamed; now each directory that got a name is `fsync`ed, the sidecar,
//!    the body files and the store are made durable;
//! 5. `ledger/integrated` records the entries the files now hold (a
//!    multiple of 256), the point recovery starts from;
//! 6. memory forgets what the files hold, and the journal releases every
//!    record that neither the files nor the store still need;
//! 7. publication, at most once a second when the tree grew: the partial
//!    bundle and tiles for `n`, then the checkpoint for `n` appended to
//!    `ledger/checkpoints` and written to the tlog-tiles `checkpoint` file
//!    (tiles before the checkpoint that needs them); partials made obsolete
//!    by full files since the last publication are removed.
//!
//! Every step is idempotent: a round cut short by a crash is done again
//! from the journal at the next open, and a file that already exists must
//! hold the same bytes (an immutable create).

use std::path::Path;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use super::Shared;
use super::edge::Edge;
use super::lock::lock;
use super::progress::{Progress, Publish, ROUND_EVERY};
use crate::error::{Error, io_at};
use crate::fsutil::write_atomic;
use crate::layout;
use crate::nodes;
use crate::proof::{self, NodeSource};
use crate::store::Store;
use crate::tlog::{self, Width, bundle};
use crate::tree::NodeId;

/// Entries waiting in memory past which a commit first runs an integration
/// round itself: memory must not grow without bound while the integrator
/// is behind or failing.
/// (4,096 in unit tests, to reach it quickly.)
pub(super) const PENDING_LIMIT: usize = if cfg!(test) { 1 << 12 } else { 1 << 20 };

impl<S: Store> Shared<S> {
    /// Runs one integration round, publishing as `publish` says.
    pub(super) fn integrate(&self, publish: Publish) -> Result<(), Error> {
        let mut progress = lock(&self.progress);
        let result = self.round(&mut progress, publish);
        progress.failure = result.as_ref().err().map(ToString::to_string);
        result
    }

    fn round(&self, progress: &mut Progress, publish: Publish) -> Result<(), Error> {
        let edge = self.head.edge();
        let size = edge.size();
        let reader = self.reader_over(Arc::clone(&edge));
        let base = self.pending_read().base();
        let new_base = size / tlog::WIDTH * tlog::WIDTH;
        let mut written = Vec::new();
        let mut full_bundles = Vec::new();

        // 1. Full bundles.
        for b in base / tlog::WIDTH..new_base / tlog::WIDTH {
            let bytes = {
                let pending = self.pending_read();
                let entries = pending.bundle(b).ok_or_else(|| {
                    Error::Corrupt(format!("entries of bundle {b} are not pending"))
                })?;
                let mut bytes = Vec::new();
                for e in entries {
                    bundle::push(&mut bytes, e).map_err(|_| {
                        Error::Corrupt(format!("an entry of bundle {b} is too large"))
                    })?;
                }
                bytes
            };
            self.tiles.put_bundle(b, Width::Full, &bytes)?;
            full_bundles.push(b);
        }

        // 2. Private tiles: the sidecar for levels >= 1; level 0 lives in
        //    the public tiles of step 3.
        let held: Vec<_> = self
            .pending_read()
            .tiles()
            .map(|(k, t)| (*k, Arc::clone(t)))
            .collect();
        for ((level, index), tile) in held {
            if index >= nodes::full_tiles(size, level as usize) {
                continue;
            }
            let per = tlog::WIDTH / crate::tile::TILE_WIDTH as u64;
            if level == 0 {
                if index / per < new_base / tlog::WIDTH {
                    written.push((level, index));
                }
                continue;
            }
            self.nodes.write(level, index, &tile)?;
            written.push((level, index));
        }

        // 3. Full public tiles.
        let mut full_tiles = Vec::new();
        for level in 0u8.. {
            let full = size.checked_shr(8 * (level as u32 + 1)).unwrap_or(0);
            if full == 0 {
                break;
            }
            if progress.public.len() <= level as usize {
                progress.public.push(0);
            }
            for n in progress.public[level as usize]..full {
                let bytes = row(&reader, level, n, tlog::WIDTH as usize)?;
                self.tiles.put_tile(level, n, Width::Full, &bytes)?;
                full_tiles.push((level, n));
            }
        }

        // 4. Barriers.
        self.tiles.sync()?;
        self.nodes.sync()?;
        self.bodies.sync()?;
        self.kept.sync()?;
        let applied = self.applied()?;
        self.store.sync()?;
        sync_file(&self.store_file)?;

        // 5. What the files hold now.
        if new_base > base {
            write_atomic(
                &self.integrated_file,
                format!("{new_base}\n").as_bytes(),
                0o600,
            )
            .map_err(io_at(&self.integrated_file))?;
        }
        for (level, n) in &full_tiles {
            progress.public[*level as usize] = n + 1;
        }
        progress
            .obsolete
            .extend(full_bundles.iter().map(|b| (None, *b)));
        progress
            .obsolete
            .extend(full_tiles.iter().map(|(level, n)| (Some(*level), *n)));

        // 6. Forget and release.
        let keep_from = {
            let mut pending = self.pending_write();
            pending.integrated(new_base, &written);
            pending.first_record()
        };
        let keep_from = keep_from
            .unwrap_or(u64::MAX)
            .min(applied.map_or(0, |a| a + 1))
            .min(self.journal.next_seq());
        self.journal.release_before(keep_from)?;
        self.bodies.reclaim()?;

        // 7. Publication.
        let due = publish != Publish::IfDue
            || progress
                .published_at
                .is_none_or(|at| at.elapsed() >= ROUND_EVERY);
        // An empty log publishes only when asked to.
        let grew = size > progress.published
            || (publish == Publish::Always && self.latest.get().is_none());
        if due && grew {
            self.publish_at(&edge, &reader, size, progress)?;
            progress.published = size;
            progress.published_at = Some(Instant::now());
            // Every partial made obsolete since the last publication (not
            // only this round's): a tile that filled in a round that did
            // not publish keeps its partial until a checkpoint past it is
            // out, then loses it here.
            for (level, n) in &progress.obsolete {
                self.tiles.prune_partials(*level, *n)?;
            }
            progress.obsolete.clear();
        }
        Ok(())
    }

    /// Writes the partial bundle and tiles for `size`, then the checkpoint.
    fn publish_at(
        &self,
        edge: &Edge,
        reader: &super::reader::Reader<'_>,
        size: u64,
        progress: &mut Progress,
    ) -> Result<(), Error> {
        let width = (size % tlog::WIDTH) as u8;
        if width > 0 {
            let mut bytes = Vec::new();
            let from = size - u64::from(width);
            for e in self.pending_read().entries_from(from).take(width as usize) {
                bundle::push(&mut bytes, e)
                    .map_err(|_| Error::Corrupt("a pending entry is too large".into()))?;
            }
            self.tiles
                .put_bundle(size / tlog::WIDTH, Width::Partial(width), &bytes)?;
        }
        for level in 0u8.. {
            if size.checked_shr(8 * level as u32).unwrap_or(0) == 0 {
                break;
            }
            let width = tlog::path::partial_width(size, level);
            if width == 0 {
                continue;
            }
            let n = size >> (8 * (level as u32 + 1));
            let bytes = row(reader, level, n, width as usize)?;
            self.tiles
                .put_tile(level, n, Width::Partial(width), &bytes)?;
        }
        self.tiles.sync()?;
        let signed = match self.latest.get() {
            Some(l) if l.checkpoint.size == size => l,
            _ => self.latest.sign(size, proof::root_at(reader, size)?),
        };
        debug_assert_eq!(edge.size(), size);
        if size > progress.noted || progress.published_at.is_none() && size == 0 {
            self.notes.append(size, &signed.note)?;
            progress.noted = size;
        }
        if !self.witnessed {
            self.tiles.write_checkpoint(signed.note.as_bytes())?;
        }
        self.latest.published(&signed)
    }

    /// The last journal record the store holds, if any.
    pub(super) fn applied(&self) -> Result<Option<u64>, Error> {
        match self.store.get(layout::APPLIED_KEY)? {
            None => Ok(None),
            Some(v) => layout::decode_u64(v.as_ref())
                .map(Some)
                .ok_or_else(|| Error::Corrupt("the applied record key is not a u64".into())),
        }
    }

    pub(super) fn pending_read(&self) -> std::sync::RwLockReadGuard<'_, super::pending::Pending> {
        self.pending.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn pending_write(&self) -> std::sync::RwLockWriteGuard<'_, super::pending::Pending> {
        self.pending.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The first `width` hashes of public tile `level`/`n`: tree level `8 *
/// level`, nodes `n * 256 ..`.
fn row<N: NodeSource<Error = Error>>(
    reader: &N,
    level: u8,
    n: u64,
    width: usize,
) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::with_capacity(width * 32);
    for i in 0..width as u64 {
        let node = reader.node(NodeId::new(8 * level, n * tlog::WIDTH + i))?;
        bytes.extend_from_slice(node.as_bytes());
    }
    Ok(bytes)
}

/// `fdatasync` of a file we do not otherwise write: the store's data file,
/// which the store itself makes durable only with `sync_file_range`.
fn sync_file(path: &Path) -> Result<(), Error> {
    match std::fs::File::open(path) {
        Ok(f) => f.sync_data().map_err(io_at(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_at(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{Log, OpenOptions};

    fn entries(from: u64, to: u64) -> Vec<Vec<u8>> {
        (from..to)
            .map(|i| format!("entry {i}").into_bytes())
            .collect()
    }

    #[test]
    fn a_partial_whose_tile_filled_in_a_quiet_round_goes_at_the_next_publication() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("open");
        let partial = dir.path().join("log/tile/entries/001.p/44");
        log.append_batch(&entries(0, 300)).expect("append");
        log.shared.integrate(Publish::Always).expect("publish 300");
        assert!(partial.is_file(), "the partial of the published size");
        // Bundle 1 fills in a round that does not publish (one just did).
        log.append_batch(&entries(300, 600)).expect("append");
        log.shared.integrate(Publish::IfDue).expect("quiet round");
        assert!(dir.path().join("log/tile/entries/001").is_file());
        assert_eq!(
            log.shared.progress.lock().map(|p| p.published).ok(),
            Some(300)
        );
        // The next publication removes it, though its round filled nothing.
        log.append_batch(&entries(600, 610)).expect("append");
        if let Ok(mut p) = log.shared.progress.lock() {
            p.published_at = Instant::now().checked_sub(Duration::from_secs(2));
        }
        log.shared
            .integrate(Publish::IfDue)
            .expect("publishing round");
        assert!(!partial.exists(), "the obsolete partial is gone");
        assert!(!dir.path().join("log/tile/0/001.p").exists());
        assert!(dir.path().join("log/tile/entries/002.p/98").is_file());
    }

    #[test]
    fn an_appender_that_outruns_the_integrator_is_slowed_not_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("open");
        for b in 0..20 {
            log.append_batch(&entries(b * 1000, (b + 1) * 1000))
                .expect("an append past the limit waits for a round");
            let pending = log.shared.pending_read().len();
            assert!(pending <= PENDING_LIMIT + 1000, "{pending} pending");
        }
        assert_eq!(log.size(), 20_000);
        assert!(log.integration_failure().is_none());
    }
}
