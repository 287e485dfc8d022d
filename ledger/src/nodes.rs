//! The private proof sidecar: every full height-4 tile above the bottom one
//! (`tile` level 1 and up, with all 31 of its hashes), back to back in one
//! file per level, so a proof reads each with one `pread` and hashes
//! nothing.
//!
//! Why it exists beside the public tlog-tiles: those hold only the bottom
//! row of each height-8 tile, and rebuilding the interior from it costs up
//! to 255 hashes per tile a proof touches. The bottom private level is not
//! kept here: its 16 leaf hashes are a `pread` of 512 bytes from the public
//! level-0 tile, and its 15 interior hashes cheap to recompute. What remains
//! is 31 hashes per 256 entries and above: about 4 bytes per entry, under
//! 2 % of the log.
//!
//! Crash safety: the integrator writes tiles here, `fdatasync`s the files,
//! and only then records the size they cover (`ledger/integrated`). On open
//! each file is cut back to the tiles that size implies; anything past it
//! is written again from the journal.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{Error, io_at};
use crate::tile::{TILE_BYTES, TILE_HEIGHT};

/// Tile levels a log of up to 2^64 entries can have.
const LEVELS: usize = 64 / TILE_HEIGHT as usize;
const TILE_LEN: u64 = TILE_BYTES as u64;

/// The sidecar files of one log.
#[derive(Debug)]
pub(crate) struct Nodes {
    dir: PathBuf,
    /// `files[L]` for tile level `L` >= 1, once it exists.
    files: Mutex<Vec<Option<Arc<File>>>>,
    /// Levels written since the last sync, and whether a file was created.
    dirty: Mutex<(Vec<bool>, bool)>,
}

impl Nodes {
    /// Opens the sidecar in `dir` (created, mode 0700, if missing) for a
    /// log whose integrated size is `size`: each level keeps exactly the
    /// full tiles of a tree of `size` leaves.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a file holds fewer tiles than `size` needs,
    /// [`Error::Io`] on I/O failure.
    pub fn open(dir: &Path, size: u64) -> Result<Nodes, Error> {
        crate::fsutil::create_private_dir(dir).map_err(io_at(dir))?;
        let mut files = vec![None; LEVELS];
        for (level, slot) in files.iter_mut().enumerate().skip(1) {
            let path = level_path(dir, level);
            let file = match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_at(&path)(e)),
            };
            let want = full_tiles(size, level) * TILE_LEN;
            let have = file.metadata().map_err(io_at(&path))?.len();
            if have < want {
                return Err(Error::Corrupt(format!(
                    "{} holds {} tiles; the integrated size {size} needs {}",
                    path.display(),
                    have / TILE_LEN,
                    want / TILE_LEN
                )));
            }
            if have > want {
                file.set_len(want).map_err(io_at(&path))?;
                file.sync_data().map_err(io_at(&path))?;
            }
            *slot = Some(Arc::new(file));
        }
        Ok(Nodes {
            dir: dir.to_path_buf(),
            files: Mutex::new(files),
            dirty: Mutex::new((vec![false; LEVELS], false)),
        })
    }

    /// The full tile `level`/`index` (level >= 1), if the file holds it.
    ///
    /// # Errors
    /// [`Error::Io`] on a read failure.
    pub fn read(&self, level: u8, index: u64) -> Result<Option<Box<[u8; TILE_BYTES]>>, Error> {
        let Some(file) = self.file(level as usize) else {
            return Ok(None);
        };
        let mut tile = Box::new([0u8; TILE_BYTES]);
        let Some(at) = index.checked_mul(TILE_LEN) else {
            return Ok(None);
        };
        match file.read_exact_at(tile.as_mut_slice(), at) {
            Ok(()) => Ok(Some(tile)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(io_at(&level_path(&self.dir, level as usize))(e)),
        }
    }

    /// Writes the full tile `level`/`index` (level >= 1), creating the
    /// level's file if needed. Durable after the next [`Nodes::sync`].
    ///
    /// # Errors
    /// [`Error::Io`] on a write failure.
    pub fn write(&self, level: u8, index: u64, tile: &[u8]) -> Result<(), Error> {
        let level = level as usize;
        let path = level_path(&self.dir, level);
        let file = match self.file(level) {
            Some(f) => f,
            None => {
                let f = Arc::new(
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .mode(0o600)
                        .open(&path)
                        .map_err(io_at(&path))?,
                );
                self.files.lock().unwrap_or_else(PoisonError::into_inner)[level] =
                    Some(Arc::clone(&f));
                self.dirty.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
                f
            }
        };
        file.write_all_at(tile, index * TILE_LEN)
            .map_err(io_at(&path))?;
        self.dirty.lock().unwrap_or_else(PoisonError::into_inner).0[level] = true;
        Ok(())
    }

    /// Makes every tile written so far durable: `fdatasync` of each level
    /// written, `fsync` of the directory if a level's file was created.
    ///
    /// # Errors
    /// [`Error::Io`] on failure; the writes are then not known durable.
    pub fn sync(&self) -> Result<(), Error> {
        let (levels, created) = {
            let mut dirty = self.dirty.lock().unwrap_or_else(PoisonError::into_inner);
            let levels = std::mem::replace(&mut dirty.0, vec![false; LEVELS]);
            (levels, std::mem::take(&mut dirty.1))
        };
        for (level, _) in levels.iter().enumerate().filter(|(_, d)| **d) {
            if let Some(file) = self.file(level) {
                file.sync_data()
                    .map_err(io_at(&level_path(&self.dir, level)))?;
            }
        }
        if created {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io_at(&self.dir))?;
        }
        Ok(())
    }

    /// Bytes the files hold.
    pub fn disk_bytes(&self) -> u64 {
        self.files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .flatten()
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    fn file(&self, level: usize) -> Option<Arc<File>> {
        self.files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(level)?
            .clone()
    }
}

/// Full tiles of tile level `level` in a tree of `size` leaves.
pub(crate) fn full_tiles(size: u64, level: usize) -> u64 {
    size.checked_shr(TILE_HEIGHT as u32 * (level as u32 + 1))
        .unwrap_or(0)
}

fn level_path(dir: &Path, level: usize) -> PathBuf {
    dir.join(format!("level-{level}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_round_trip_and_open_cuts_back_to_the_integrated_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nodes = Nodes::open(dir.path(), 0).expect("open");
        let tile = |b: u8| vec![b; TILE_BYTES];
        for i in 0..3 {
            nodes.write(1, i, &tile(i as u8 + 1)).expect("write");
        }
        nodes.sync().expect("sync");
        assert_eq!(nodes.read(1, 2).expect("read").map(|t| t[0]), Some(3));
        assert!(nodes.read(1, 3).expect("read").is_none());
        assert!(nodes.read(2, 0).expect("read").is_none());
        drop(nodes);

        // Two level-1 tiles cover 2 * 256 leaves: the third is cut.
        let nodes = Nodes::open(dir.path(), 512).expect("reopen");
        assert!(nodes.read(1, 1).expect("read").is_some());
        assert!(nodes.read(1, 2).expect("read").is_none());
        drop(nodes);
        assert!(matches!(
            Nodes::open(dir.path(), 1024),
            Err(Error::Corrupt(_))
        ));
    }
}
