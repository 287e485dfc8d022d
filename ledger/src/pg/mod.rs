//! [`PgLog`]: a transparency log in one PostgreSQL database that several
//! processes ("replicas") append to concurrently (issue 23).
//!
//! Everything is in the database except the log's signing key, which each
//! replica loads from its own data directory (replicas start with copies
//! of one data directory). The design follows Tessera's MySQL storage: one
//! tree-state row locked per batch with `SELECT ... FOR UPDATE`, entries
//! numbered in the batch's transaction, entry bundles and tiles (C2SP
//! tlog-tiles, height 8) written in that same transaction, so a replica
//! that dies mid-batch leaves nothing, and every read a point lookup.
//!
//! The files, each importing only those before it:
//!
//! - `runtime`: the private tokio runtime every query runs on, and the
//!   bridge from the ledger's synchronous API to it;
//! - `db`: connection settings, the pool, timeouts, pipelining and the
//!   error of a query;
//! - `sql`: every statement; `schema`: the migrations ([`migrate`]);
//! - `tree`: tiles, the right edge and the node source of proofs;
//! - `batch`: one batch's transaction (lock, writes, commit);
//! - `state` ([`PgStore`]): the owner's small state;
//! - `head`: the size and checkpoints this process knows; `stats`
//!   ([`PgStats`]): what the batches cost;
//! - this file: [`PgLog`] and opening it; then one file per concern:
//!   `turn` (the write path), `read` (entries, proofs, tlog-tiles
//!   resources), `publish` (checkpoints), `audit` ([`PgLog::verify`]), and
//!   `ledger` (the [`Ledger`](crate::Ledger) trait).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;

use lru::LruCache;

mod audit;
mod batch;
mod db;
mod head;
mod ledger;
mod publish;
mod read;
mod runtime;
mod schema;
mod sql;
mod state;
mod stats;
mod tree;
mod turn;

pub use schema::{MigrateReport, latest_version, migrate};
pub use state::PgStore;
pub use stats::PgStats;

use batch::to_u64;
use db::{Db, Fail, pg, prepare};
use head::{Head, HeadRow, Known};
use stats::Counters;
use tree::{Edge, Layers, Nodes, TileKey, hashes_of};

use crate::checkpoint::{Checkpoint, NoteSigner, NoteVerifier, SignedCheckpoint};
use crate::disk::{DEFAULT_ORIGIN, DataDir, OpenOptions, key_label};
use crate::error::Error;
use crate::hash::Hash;

/// Bytes a cached full tile takes, roughly (511 hashes and their vectors).
const TILE_COST: u64 = 17 << 10;

/// A transparency log in PostgreSQL: the same log as [`Log`](crate::Log)
/// (the same tlog-tiles resources, proofs and checkpoints), appended to by
/// any number of processes at once.
///
/// `PgLog` is `Sync`: calls from many threads share a pool of
/// connections; this process's batches take turns among themselves, and
/// with other processes' on the database's lock.
pub struct PgLog {
    db: Arc<Db>,
    store: PgStore,
    signer: NoteSigner,
    verifier: NoteVerifier,
    /// Serve only what [`PgLog::publish_cosigned`] stored.
    witnessed: bool,
    /// Sign a checkpoint with every batch that appends.
    every_commit: AtomicBool,
    /// This process's writer: held for each of its batches.
    writer: Mutex<Writer>,
    /// The newest edge this process knows, for readers.
    edge: RwLock<Option<Arc<Edge>>>,
    /// The size and checkpoints this process knows.
    head: Head,
    /// Full tiles, which never change.
    tiles: Mutex<LruCache<TileKey, Arc<Layers>>>,
    stats: Counters,
}

/// The writer's memory between batches.
struct Writer {
    /// The right edge as of this process's last batch (or last reload).
    edge: Option<Arc<Edge>>,
    /// The last change-feed batch a turn reported (or that was current
    /// when the log was opened).
    known_seq: u64,
}

impl PgLog {
    /// Opens the log in the database at `url` (a libpq URL or key-value
    /// string), migrating its schema first, with the signing key in
    /// `data_dir`: loaded from its `checkpoint.key`, or, if there is none
    /// and the database holds no log yet, created there (mode 0600, the
    /// directory 0700) exactly as a log on disk creates it
    /// (`options.key`, else a fresh key named `options.origin`). On an
    /// empty database the log's origin and verifier key are recorded;
    /// replicas opening one at the same instant end with one log, and the
    /// others refuse.
    ///
    /// # Errors
    /// [`Error::KeyMismatch`] if the database holds a log signed by
    /// another key (messages name keys, never their material),
    /// [`Error::NotALog`] if `data_dir` has no key but the database holds
    /// a log (start replicas from a copy of the first one's data
    /// directory), [`Error::OriginMismatch`] or [`Error::Invalid`] as for
    /// [`Log::create_or_open`](crate::Log::create_or_open), [`Error::Store`]
    /// if the database cannot be reached.
    pub fn open(url: &str, data_dir: &Path, options: &OpenOptions) -> Result<PgLog, Error> {
        let dir = DataDir::create(data_dir, options)?;
        let db = Db::connect(url)?;
        schema::migrate_on(&db)?;
        let existing = whose(&db)?;
        let signer = if dir.has_key() {
            dir.read_key(options)?
        } else {
            let signer = match (options.given_signer()?, &existing) {
                (Some(given), _) => given,
                (None, Some((_, vkey, _))) => {
                    return Err(dir.not_a_log(&format!(
                        "there is no checkpoint.key, but the database holds log {}: start \
                         replicas with a copy of the first one's data directory",
                        label_of(vkey)
                    )));
                }
                (None, None) => {
                    NoteSigner::generate(options.origin.as_deref().unwrap_or(DEFAULT_ORIGIN))?
                }
            };
            // A key that cannot be the database's log's is not kept.
            if let Some((_, vkey, _)) = &existing {
                check_vkey(vkey, &signer.verifier())?;
            }
            dir.write_key(&signer.to_private_key())?;
            signer
        };
        let verifier = signer.verifier();
        let (origin, vkey, seq) = claim(&db, signer.name(), &verifier.to_string())?;
        check_vkey(&vkey, &verifier)?;
        if origin != signer.name() {
            return Err(Error::OriginMismatch {
                existing: origin,
                requested: signer.name().to_owned(),
            });
        }
        let capacity = (options.cache_bytes / TILE_COST).max(64);
        let capacity = NonZeroUsize::new(usize::try_from(capacity).unwrap_or(usize::MAX))
            .unwrap_or(NonZeroUsize::MIN);
        let log = PgLog {
            store: PgStore::new(Arc::clone(&db)),
            db,
            signer,
            verifier,
            witnessed: options.witnessed,
            every_commit: AtomicBool::new(false),
            writer: Mutex::new(Writer {
                edge: None,
                known_seq: seq,
            }),
            edge: RwLock::new(None),
            head: Head::new(),
            tiles: Mutex::new(LruCache::new(capacity)),
            stats: Counters::default(),
        };
        log.refresh()?;
        Ok(log)
    }

    /// The owner's small state.
    pub fn store(&self) -> &PgStore {
        &self.store
    }

    /// The log's origin (the name of its checkpoint key).
    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// The verifier key of the log's checkpoints.
    pub fn verifier(&self) -> NoteVerifier {
        self.verifier.clone()
    }

    /// What this process's batches have cost the database so far.
    pub fn stats(&self) -> PgStats {
        self.stats.get()
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        // A panic in a batch's `prepare` leaves the writer as it was
        // before the batch: its memory changes only after a commit.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest edge this process knows.
    fn edge(&self) -> Option<Arc<Edge>> {
        self.edge
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Offers `edge` (the truth at its size) to readers.
    fn publish_edge(&self, edge: &Arc<Edge>) {
        let mut slot = self.edge.write().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_none_or(|old| old.size() <= edge.size()) {
            *slot = Some(Arc::clone(edge));
        }
    }

    /// Signs the checkpoint of `size` entries with `root`.
    fn sign(&self, size: u64, root: Hash) -> SignedCheckpoint {
        let checkpoint = Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root,
        };
        let note = self.signer.sign_note(&checkpoint.body());
        SignedCheckpoint { checkpoint, note }
    }

    /// Reads the tree-state row.
    fn refresh(&self) -> Result<Known, Error> {
        let (latest, served) = self.head.note_sizes();
        let latest = latest.map(batch::to_i64);
        let served = served.map(batch::to_i64);
        let row = self.db.read(move |client| async move {
            let s = prepare(&client, &[sql::HEAD]).await?;
            let row = client
                .query_opt(&s[0], &[&latest, &served])
                .await
                .map_err(pg("read the tree state"))?
                .ok_or_else(|| Fail::Log(Error::Corrupt("the log's tree state is gone".into())))?;
            let get = |i| -> Result<Option<i64>, Fail> {
                row.try_get(i).map_err(pg("read the tree state"))
            };
            let text = |i| -> Result<Option<String>, Fail> {
                row.try_get(i).map_err(pg("read the tree state"))
            };
            Ok(HeadRow {
                size: to_u64(get(0)?.unwrap_or(0))?,
                latest: (get(1)?.map(to_u64).transpose()?, text(2)?),
                served: (get(3)?.map(to_u64).transpose()?, text(4)?),
            })
        })?;
        self.head.read(row, Instant::now(), &self.verifier)?;
        Ok(self.head.known())
    }

    /// What is known, refreshed first if it is more than a few
    /// milliseconds old, unless another reader is refreshing it (a
    /// database that is away leaves it as it was).
    fn known(&self) -> Known {
        if let Some(_refreshing) = self.head.due() {
            // Readers go on with what they know; the next call retries.
            let _ = self.refresh();
        }
        self.head.known()
    }

    /// The size, at least `wanted` if the log has that many entries:
    /// refreshed if what is known is smaller (another replica appended).
    ///
    /// # Errors
    /// The database failing as the tree state is read.
    pub fn size_at_least(&self, wanted: u64) -> Result<u64, Error> {
        if wanted == 0 {
            return Ok(self.known().size);
        }
        // A turn raises the size it found before its own checkpoint is
        // signed: what is known must also be signed that far, or a receipt
        // built from it would name a checkpoint that does not cover the
        // entry. One read either way.
        let known = self.head.known();
        let signed = known.latest.as_ref().map_or(0, |c| c.checkpoint.size);
        if known.size >= wanted && signed >= wanted {
            return Ok(known.size);
        }
        Ok(self.refresh()?.size)
    }

    /// Runs `compute` over the tree as of `size`: once with a recorder to
    /// learn which tiles it reads, then over those tiles (the edge, full
    /// tiles cached, the rest fetched in one query).
    fn over_tree<T>(
        &self,
        size: u64,
        compute: impl Fn(&Nodes<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let edge = self.edge().filter(|e| e.size() >= size);
        let recorder = Nodes::recorder();
        // The recorder answers every node: only the tiles matter here.
        let _ = compute(&recorder);
        let mut tiles = HashMap::new();
        let mut missing = Vec::new();
        {
            let mut cache = self.tiles.lock().unwrap_or_else(PoisonError::into_inner);
            for key in recorder.recorded() {
                let on_edge = edge
                    .as_ref()
                    .and_then(|e| e.tile(key.0))
                    .is_some_and(|(index, _)| index == key.1);
                if on_edge {
                    continue;
                }
                match cache.get(&key) {
                    Some(layers) => {
                        tiles.insert(key, Arc::clone(layers));
                    }
                    None => missing.push(key),
                }
            }
        }
        if !missing.is_empty() {
            for (key, bytes) in self.fetch_tiles(missing)? {
                let row = hashes_of(&bytes).ok_or_else(|| {
                    Error::Corrupt(format!("tile {}/{} is malformed", key.0, key.1))
                })?;
                let layers = Arc::new(Layers::from_row(&row));
                if layers.is_full() {
                    self.tiles
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .put(key, Arc::clone(&layers));
                }
                tiles.insert(key, layers);
            }
        }
        compute(&Nodes::Reader {
            edge: edge.as_deref(),
            tiles: &tiles,
        })
    }

    /// The stored rows of `keys` (those that exist), in one query.
    fn fetch_tiles(&self, keys: Vec<TileKey>) -> Result<Vec<(TileKey, Vec<u8>)>, Error> {
        let levels: Vec<i16> = keys.iter().map(|k| i16::from(k.0)).collect();
        let indices: Vec<i64> = keys.iter().map(|k| batch::to_i64(k.1)).collect();
        self.db.read(move |client| {
            let (levels, indices) = (levels.clone(), indices.clone());
            async move {
                let s = prepare(&client, &[sql::TILES_AT]).await?;
                let rows = client
                    .query(&s[0], &[&levels, &indices])
                    .await
                    .map_err(pg("read tiles"))?;
                rows.iter()
                    .map(|row| {
                        let level: i16 = row.try_get(0).map_err(pg("read tiles"))?;
                        let index: i64 = row.try_get(1).map_err(pg("read tiles"))?;
                        let hashes: Vec<u8> = row.try_get(2).map_err(pg("read tiles"))?;
                        let level = u8::try_from(level).map_err(|_| {
                            Fail::Log(Error::Corrupt("a tile level is negative".into()))
                        })?;
                        Ok(((level, to_u64(index)?), hashes))
                    })
                    .collect()
            }
        })
    }
}

/// Which log the database holds, if any: origin, verifier key, batch.
fn whose(db: &Arc<Db>) -> Result<Option<(String, String, u64)>, Error> {
    db.read(|client| async move {
        let s = prepare(&client, &[sql::WHOSE]).await?;
        let row = client
            .query_opt(&s[0], &[])
            .await
            .map_err(pg("read the log"))?;
        row.map(|row| {
            let origin: String = row.try_get(0).map_err(pg("read the log"))?;
            let vkey: String = row.try_get(1).map_err(pg("read the log"))?;
            let seq: i64 = row.try_get(2).map_err(pg("read the log"))?;
            Ok((origin, vkey, to_u64(seq)?))
        })
        .transpose()
    })
}

/// Records this log in an empty database (or nothing, if it holds one)
/// and returns the log it holds.
fn claim(db: &Arc<Db>, origin: &str, vkey: &str) -> Result<(String, String, u64), Error> {
    let (o, v) = (origin.to_owned(), vkey.to_owned());
    db.read(move |client| {
        let (o, v) = (o.clone(), v.clone());
        async move {
            let s = prepare(&client, &[sql::CLAIM]).await?;
            client
                .execute(&s[0], &[&o, &v])
                .await
                .map_err(pg("record the log"))?;
            Ok(())
        }
    })?;
    whose(db)?.ok_or_else(|| Error::Corrupt("the log's tree state is gone".into()))
}

/// [`Error::KeyMismatch`] unless the stored verifier key `vkey` is
/// `verifier`.
fn check_vkey(vkey: &str, verifier: &NoteVerifier) -> Result<(), Error> {
    if vkey == verifier.to_string() {
        return Ok(());
    }
    Err(Error::KeyMismatch {
        existing: label_of(vkey),
        given: key_label(verifier),
    })
}

/// A stored verifier key's label (`<name>+<id>`), never its material.
fn label_of(vkey: &str) -> String {
    NoteVerifier::parse(vkey)
        .map(|v| key_label(&v))
        .unwrap_or_else(|_| "<an unreadable key>".into())
}
