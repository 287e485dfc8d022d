//! A read copy of the full tiles in plain files, one per tile level, so a
//! proof reads each tile with one `pread` instead of a database lookup.
//!
//! The store stays the only source of truth and the only write path that
//! matters: a tile reaches its file after the batch holding it was applied,
//! nothing waits on the file for durability, and every read falls back to the
//! store for a tile the file does not (yet, or any more) hold. The files are a
//! cache the log can always rebuild.
//!
//! Why files: a random tile lookup in sled at 10^7 entries costs about 14 us
//! (a node of 16 tiles read and decoded), and a proof needs one per tile
//! level; a `pread` of the same 992 bytes from the page cache costs about
//! 1 us (docs/performance.md).
//!
//! Crash safety. A file's first `n` tiles are trusted only if the store says
//! so: every [`SYNC_EVERY`] tiles the appender `fdatasync`s the files and
//! records their lengths under [`layout::TILE_FILES_KEY`] in its next batch,
//! which the store makes durable after the tiles themselves. On open each
//! file is cut back to its recorded length (a power loss may have left
//! anything past it) and refilled from the store, which costs at most
//! [`SYNC_EVERY`] tile reads per level.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{Error, io_at};
use crate::layout;
use crate::store::{Store, WriteBatch};
use crate::tile::{TILE_BYTES, TILE_HEIGHT, TILE_WIDTH};

/// Tile levels a log of up to 2^64 entries can have.
const LEVELS: usize = 64 / TILE_HEIGHT as usize;
/// Level-0 tiles written between two syncs of the files.
pub(crate) const SYNC_EVERY: u64 = 1024;
const TILE_LEN: u64 = TILE_BYTES as u64;

/// The tile files of one log directory.
#[derive(Debug)]
pub(crate) struct TileFiles {
    dir: PathBuf,
    levels: [OnceLock<LevelFile>; LEVELS],
    /// Level-0 tile count at the last sync; drives the next one.
    synced_level0: AtomicU64,
}

#[derive(Debug)]
struct LevelFile {
    file: File,
    /// Tiles readable from the file: published after they are written.
    tiles: AtomicU64,
    /// Set after a failed write: the level stops growing and reads fall
    /// back to the store until the next open rebuilds it.
    stalled: AtomicBool,
}

impl TileFiles {
    /// Opens (creating if needed) the tile files in `dir` for a log of
    /// `size` entries, trusting only what `store` records as synced, and
    /// refills each file from the store up to the log's full tiles.
    pub fn open<S: Store>(dir: &Path, store: &S, size: u64) -> Result<TileFiles, Error> {
        crate::fsutil::create_private_dir(dir).map_err(io_at(dir))?;
        let recorded = match store.get(layout::TILE_FILES_KEY)? {
            Some(v) => layout::decode_counts(v.as_ref())
                .ok_or_else(|| Error::Corrupt("tile file lengths are malformed".into()))?,
            None => Vec::new(),
        };
        let files = TileFiles {
            dir: dir.to_path_buf(),
            levels: Default::default(),
            synced_level0: AtomicU64::new(recorded.first().copied().unwrap_or(0)),
        };
        let mut full = size / TILE_WIDTH as u64;
        let mut refilled = false;
        for level in 0..LEVELS {
            if full == 0 {
                break;
            }
            let f = files.level(level)?;
            let on_disk = f.file.metadata().map_err(io_at(&files.path(level)))?.len() / TILE_LEN;
            let trusted = recorded
                .get(level)
                .copied()
                .unwrap_or(0)
                .min(on_disk)
                .min(full);
            f.file
                .set_len(trusted * TILE_LEN)
                .map_err(io_at(&files.path(level)))?;
            f.tiles.store(trusted, Ordering::Release);
            for index in trusted..full {
                let tile = store
                    .get(&layout::tile_key(level as u8, index))?
                    .ok_or_else(|| Error::Corrupt(format!("tile {level}/{index} is missing")))?;
                files.write(level as u8, index, tile.as_ref());
                refilled = true;
            }
            full /= TILE_WIDTH as u64;
        }
        if refilled {
            // Record the refill, so the next open need not repeat it.
            let mut batch = WriteBatch::new();
            files.sync_now(&mut batch);
            if !batch.is_empty() {
                store.apply(batch)?;
                store.sync()?;
            }
        }
        Ok(files)
    }

    /// Copies a full tile, just applied to the store, into its file. Tiles of
    /// a level arrive in order; a failure stalls the level instead of
    /// failing the append, since the store already holds the tile.
    pub fn write(&self, level: u8, index: u64, tile: &[u8]) {
        let Ok(f) = self.level(level as usize) else {
            return;
        };
        if f.stalled.load(Ordering::Acquire) || f.tiles.load(Ordering::Acquire) != index {
            return;
        }
        if tile.len() != TILE_BYTES || f.file.write_all_at(tile, index * TILE_LEN).is_err() {
            f.stalled.store(true, Ordering::Release);
            return;
        }
        f.tiles.store(index + 1, Ordering::Release);
    }

    /// The full tile `level`/`index` if its file holds it.
    pub fn read(&self, level: u8, index: u64) -> Option<Box<[u8; TILE_BYTES]>> {
        let f = self.levels.get(level as usize)?.get()?;
        if index >= f.tiles.load(Ordering::Acquire) {
            return None;
        }
        let mut tile = Box::new([0u8; TILE_BYTES]);
        f.file
            .read_exact_at(tile.as_mut_slice(), index * TILE_LEN)
            .ok()?;
        Some(tile)
    }

    /// Once [`SYNC_EVERY`] level-0 tiles have been written since the last
    /// sync, does [`TileFiles::sync_now`]. The appender calls this before it
    /// applies `batch`.
    pub fn sync_into(&self, batch: &mut WriteBatch) {
        if self.level0_tiles() >= self.synced_level0.load(Ordering::Acquire) + SYNC_EVERY {
            self.sync_now(batch);
        }
    }

    /// Syncs the files and records in `batch` how many tiles of each are now
    /// safe to trust after a crash.
    fn sync_now(&self, batch: &mut WriteBatch) {
        let level0 = self.level0_tiles();
        let mut counts = Vec::new();
        for slot in &self.levels {
            let Some(f) = slot.get() else { break };
            // A level that cannot be synced is trusted no further than it was.
            let tiles = f.tiles.load(Ordering::Acquire);
            if f.file.sync_data().is_err() {
                return;
            }
            counts.push(tiles);
        }
        batch.put(
            layout::TILE_FILES_KEY.to_vec(),
            layout::encode_counts(&counts),
        );
        self.synced_level0.store(level0, Ordering::Release);
    }

    fn level0_tiles(&self) -> u64 {
        self.levels[0]
            .get()
            .map_or(0, |f| f.tiles.load(Ordering::Acquire))
    }

    fn level(&self, level: usize) -> Result<&LevelFile, Error> {
        if let Some(f) = self.levels.get(level).and_then(OnceLock::get) {
            return Ok(f);
        }
        let path = self.path(level);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_at(&path))?;
        let slot = self
            .levels
            .get(level)
            .ok_or_else(|| Error::Corrupt(format!("tile level {level} is out of range")))?;
        Ok(slot.get_or_init(|| LevelFile {
            file,
            tiles: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
        }))
    }

    fn path(&self, level: usize) -> PathBuf {
        self.dir.join(format!("level-{level}"))
    }
}
