//! One batch, as the database sees it: a transaction that takes the log's
//! lock ([`lock`]: `BEGIN` and `SELECT ... FOR UPDATE` pipelined with the
//! reads a writer needs, one round trip), then sends every write of the
//! batch with its `COMMIT` ([`commit`]: one more round trip), each write a
//! handful of arrays unnested by one statement, whatever the batch's size.
//!
//! A batch adds one chunk to each bundle and tile it grows (never rewriting
//! what they held: a database rewrites a whole value it updates, and a
//! partial bundle can be 16 MiB), and merges the chunks of those it fills.
//! Bundles and tiles that do not hold what the lock's size says fail a
//! check inside the database (`xgate_check`), which aborts the transaction
//! and turns the pipelined `COMMIT` into a rollback: nothing half-done is
//! ever committed. A connection lost at any point leaves the outcome to
//! the server: the transaction commits whole or not at all.

use std::collections::BTreeMap;
use std::time::Instant;

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::db::{Fail, Held, Pending, Rows, get, pg, pipeline, prepare};
use super::sql;
use super::tree::{MAX_SIZE, TileAppend, TileKey, WIDTH};
use crate::checkpoint::SignedCheckpoint;
use crate::error::Error;
use crate::store::{BodyWrite, WriteBatch};
use crate::tlog::bundle;

/// Largest body PostgreSQL can hold in one field (1 GiB).
const MAX_BODY: usize = (1 << 30) - 1;
/// Batches of the change feed kept past the newest.
pub(super) const FEED_KEEP: i64 = 100_000;
/// The feed is pruned once every so many batches.
const PRUNE_EVERY: i64 = 1024;

/// The tree state, as the lock found it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tree {
    /// Entries in the log.
    pub size: u64,
    /// The last batch in the change feed.
    pub seq: u64,
    /// The size of the newest checkpoint signed.
    pub latest_size: Option<u64>,
    /// The size of the newest checkpoint published.
    pub noted_size: Option<u64>,
    /// Whether a second has passed since a checkpoint was last published.
    pub note_due: bool,
}

/// What a writer wants read along with the lock.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Want {
    /// The change feed after this batch.
    pub feed_after: Option<u64>,
    /// The edge's rows, unless the tree has this size (`None`: the edge
    /// is not wanted; `Some(None)`: wanted whatever the size).
    pub edge_unless: Option<Option<u64>>,
}

/// A transaction holding the log's lock.
pub(super) struct Locked {
    /// Its connection.
    pub held: Held,
    /// The tree state.
    pub tree: Tree,
    /// The change feed's rows, if wanted.
    pub feed: Vec<Row>,
    /// The edge's stored rows by level, if wanted and the size moved.
    pub edge: Option<BTreeMap<u8, Vec<u8>>>,
    /// When the lock was granted (its answer came back).
    pub at: Instant,
    /// When its `BEGIN` was sent.
    pub asked: Instant,
    /// Round trips so far.
    pub round_trips: u32,
}

/// Every statement a batch may use, prepared together.
const STATEMENTS: [&str; 20] = [
    sql::BEGIN,
    sql::LOCK,
    sql::FEED,
    sql::EDGE,
    sql::BUNDLES,
    sql::TILES,
    sql::STATE_PUT,
    sql::STATE_DELETE,
    sql::BODY_PUT,
    sql::BODY_DROP,
    sql::CHANGE,
    sql::PRUNE,
    sql::ADVANCE,
    sql::NOTE,
    sql::COMMIT,
    sql::ROLLBACK,
    sql::BUNDLES_CHECK,
    sql::TILES_CHECK,
    sql::BUNDLES_FULL,
    sql::TILES_FULL,
];

/// Begins a transaction and takes the log's lock, reading what `want`
/// asks for in the same round trip.
pub(super) async fn lock(pool: &Pool, want: Want) -> Result<Locked, Fail> {
    let held = Held::new(get(pool).await?);
    let client = held.client()?;
    let cached = client.statement_cache.size();
    let s = prepare(client, &STATEMENTS).await?;
    let mut round_trips = u32::from(client.statement_cache.size() != cached);
    let feed_after = want.feed_after.map(to_i64);
    let cap = FEED_KEEP;
    let edge_unless = want.edge_unless.map(|size| size.map_or(-1, to_i64));
    let after = feed_after.unwrap_or(0);
    let unless = edge_unless.unwrap_or(0);
    let feed: [&(dyn ToSql + Sync); 2] = [&after, &cap];
    let edge: [&(dyn ToSql + Sync); 1] = [&unless];
    let mut calls: Vec<Pending<'_, Rows>> = vec![
        Box::pin(client.query(&s[0], &[])),
        Box::pin(client.query(&s[1], &[])),
    ];
    if feed_after.is_some() {
        calls.push(Box::pin(client.query(&s[2], &feed)));
    }
    if edge_unless.is_some() {
        calls.push(Box::pin(client.query(&s[3], &edge)));
    }
    let asked = Instant::now();
    let mut out = pipeline(calls).await.into_iter();
    round_trips += 1;
    let mut next = || out.next().unwrap_or_else(|| Ok(Vec::new()));
    next().map_err(pg("begin"))?;
    let row = next().map_err(pg("lock the tree"))?;
    let at = Instant::now();
    let tree = tree_of(row.first())?;
    let feed = match feed_after {
        Some(_) => next().map_err(pg("read the change feed"))?,
        None => Vec::new(),
    };
    let edge = match edge_unless {
        Some(_) => {
            let rows = next().map_err(pg("read the edge"))?;
            edge_of(&rows, tree.size, want.edge_unless.flatten())?
        }
        None => None,
    };
    Ok(Locked {
        held,
        tree,
        feed,
        edge,
        at,
        asked,
        round_trips,
    })
}

fn tree_of(row: Option<&Row>) -> Result<Tree, Fail> {
    let row = row.ok_or_else(|| {
        Fail::Log(Error::Invalid(
            "the database holds no log: open it with PgLog::open first".into(),
        ))
    })?;
    let size: i64 = row.try_get(0).map_err(pg("lock the tree"))?;
    let seq: i64 = row.try_get(1).map_err(pg("lock the tree"))?;
    let latest: Option<i64> = row.try_get(2).map_err(pg("lock the tree"))?;
    let noted: Option<i64> = row.try_get(3).map_err(pg("lock the tree"))?;
    let note_due: bool = row.try_get(4).map_err(pg("lock the tree"))?;
    Ok(Tree {
        size: to_u64(size)?,
        seq: to_u64(seq)?,
        latest_size: latest.map(to_u64).transpose()?,
        noted_size: noted.map(to_u64).transpose()?,
        note_due,
    })
}

/// The edge's rows, or `None` if the tree has the size the writer knows
/// (then the query returned nothing).
fn edge_of(
    rows: &[Row],
    size: u64,
    known: Option<u64>,
) -> Result<Option<BTreeMap<u8, Vec<u8>>>, Fail> {
    if known == Some(size) {
        return Ok(None);
    }
    let mut out = BTreeMap::new();
    for row in rows {
        let level: i16 = row.try_get(0).map_err(pg("read the edge"))?;
        let hashes: Vec<u8> = row.try_get(1).map_err(pg("read the edge"))?;
        let level = u8::try_from(level)
            .map_err(|_| Fail::Log(Error::Corrupt("a tile level is negative".into())))?;
        out.insert(level, hashes);
    }
    Ok(Some(out))
}

/// A size or sequence number from the database.
pub(super) fn to_u64(v: i64) -> Result<u64, Fail> {
    u64::try_from(v).map_err(|_| Fail::Log(Error::Corrupt("a stored size is negative".into())))
}

/// A size as the database stores it (sizes stay below 2^56).
pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Every write of one batch, as statement parameters.
#[derive(Default)]
pub(super) struct Writes {
    from: (i64, i64),
    to: (i64, i64),
    /// Each bundle's chunk: index, first entry in it, entries, bytes.
    bundles: (Vec<i64>, Vec<i16>, Vec<i16>, Vec<Vec<u8>>),
    /// Entries each bundle must hold before the batch.
    bundles_before: (Vec<i64>, Vec<i32>),
    /// Bundles the batch fills that already had chunks.
    bundles_full: Vec<i64>,
    /// Each tile's chunk: level, index, first hash in it, hashes.
    tiles: (Vec<i16>, Vec<i64>, Vec<i16>, Vec<Vec<u8>>),
    /// Hashes each tile must hold before the batch.
    tiles_before: (Vec<i16>, Vec<i64>, Vec<i32>),
    /// Tiles the batch fills that already had chunks.
    tiles_full: (Vec<i16>, Vec<i64>),
    puts: (Vec<Vec<u8>>, Vec<Vec<u8>>),
    deletes: Vec<Vec<u8>>,
    bodies: (Vec<Vec<u8>>, Vec<bool>, Vec<Vec<u8>>),
    dropped: Vec<Vec<u8>>,
    change: Option<(Vec<Vec<u8>>, Vec<bool>)>,
    latest: (Option<String>, Option<i64>),
    note: Option<(i64, String)>,
    bytes: u64,
}

impl Writes {
    /// No writes yet, from where the lock found the tree.
    pub(super) fn at(tree: &Tree) -> Writes {
        let from = (to_i64(tree.size), to_i64(tree.seq));
        Writes {
            from,
            to: from,
            ..Writes::default()
        }
    }

    /// The small writes and bodies of `batch`, and its keys in the change
    /// feed.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a key starting with `L` (the log's own key
    /// space, as on disk) or a body PostgreSQL cannot hold.
    pub(super) fn small(&mut self, mut batch: WriteBatch) -> Result<(), Error> {
        if batch.touches_prefix(b"L") {
            return Err(Error::Invalid(
                "writes committed with an append must not use keys starting with 'L'".into(),
            ));
        }
        for (key, write) in batch.take_bodies() {
            self.bytes += key.len() as u64;
            match write {
                BodyWrite::Put(data) | BodyWrite::Keep(data) if data.len() > MAX_BODY => {
                    return Err(Error::Invalid("a body must be under 1 GiB".into()));
                }
                BodyWrite::Put(data) => self.body(key, false, data),
                BodyWrite::Keep(data) => self.body(key, true, data),
                BodyWrite::Drop => self.dropped.push(key),
            }
        }
        let mut keys = Vec::with_capacity(batch.len());
        let mut puts = Vec::with_capacity(batch.len());
        for (key, value) in batch.into_ops() {
            self.bytes += 2 * key.len() as u64;
            keys.push(key.clone());
            puts.push(value.is_some());
            match value {
                Some(value) => {
                    self.bytes += value.len() as u64;
                    self.puts.0.push(key);
                    self.puts.1.push(value);
                }
                None => self.deletes.push(key),
            }
        }
        if !keys.is_empty() {
            self.change = Some((keys, puts));
            self.to.1 = self.from.1 + 1;
        }
        Ok(())
    }

    fn body(&mut self, key: Vec<u8>, kept: bool, data: Vec<u8>) {
        self.bytes += data.len() as u64;
        self.bodies.0.push(key);
        self.bodies.1.push(kept);
        self.bodies.2.push(data);
    }

    /// Appends `entries` at the tree's size, with what the tiles gained.
    ///
    /// # Errors
    /// [`Error::EntryTooLarge`] for an entry a bundle cannot frame,
    /// [`Error::Invalid`] past the largest size the log takes.
    pub(super) fn entries<E: AsRef<[u8]>>(
        &mut self,
        entries: &[E],
        tiles: &BTreeMap<TileKey, TileAppend>,
    ) -> Result<(), Error> {
        let first = self.from.0 as u64;
        let end = first + entries.len() as u64;
        if end >= MAX_SIZE {
            return Err(Error::Invalid(format!(
                "the log takes no more than {MAX_SIZE} entries"
            )));
        }
        let mut at = first;
        for chunk in group_by_bundle(first, entries) {
            let index = at / WIDTH;
            let before = (at % WIDTH) as i16;
            let mut data = Vec::new();
            for e in chunk {
                bundle::push(&mut data, e.as_ref()).map_err(|e| Error::EntryTooLarge {
                    len: e.len,
                    max: bundle::MAX_ENTRY_LEN,
                })?;
            }
            self.bytes += data.len() as u64;
            let count = chunk.len() as i16;
            self.bundles.0.push(to_i64(index));
            self.bundles.1.push(before);
            self.bundles.2.push(count);
            self.bundles.3.push(data);
            self.bundles_before.0.push(to_i64(index));
            self.bundles_before.1.push(i32::from(before));
            if before > 0 && (before + count) as u64 == WIDTH {
                self.bundles_full.push(to_i64(index));
            }
            at += chunk.len() as u64;
        }
        for ((level, index), add) in tiles {
            self.bytes += add.hashes.len() as u64;
            let (level, index) = (i16::from(*level), to_i64(*index));
            let before = add.before as i16;
            self.tiles.0.push(level);
            self.tiles.1.push(index);
            self.tiles.2.push(before);
            self.tiles.3.push(add.hashes.clone());
            self.tiles_before.0.push(level);
            self.tiles_before.1.push(index);
            self.tiles_before.2.push(i32::from(before));
            let after = add.before as usize + add.hashes.len() / crate::hash::HASH_LEN;
            if before > 0 && after as u64 == WIDTH {
                self.tiles_full.0.push(level);
                self.tiles_full.1.push(index);
            }
        }
        self.to.0 = to_i64(end);
        Ok(())
    }

    /// Records `signed` as the newest checkpoint, and publishes it (adds
    /// it to the history) if `publish`.
    pub(super) fn checkpoint(&mut self, signed: &SignedCheckpoint, publish: bool) {
        let size = to_i64(signed.checkpoint.size);
        self.bytes += signed.note.len() as u64;
        self.latest = (Some(signed.note.clone()), Some(size));
        if publish {
            self.note = Some((size, signed.note.clone()));
        }
    }

    /// Whether the batch changes nothing.
    pub(super) fn is_empty(&self) -> bool {
        self.from == self.to
            && self.latest.0.is_none()
            && self.note.is_none()
            && !self.writes_rows()
    }

    fn writes_rows(&self) -> bool {
        !(self.puts.0.is_empty()
            && self.deletes.is_empty()
            && self.bodies.0.is_empty()
            && self.dropped.is_empty())
    }

    /// The batch's number in the change feed, if it has one.
    pub(super) fn seq(&self) -> Option<u64> {
        self.change.as_ref().map(|_| self.to.1 as u64)
    }

    /// Bytes of data the batch sends (roughly: its parameters).
    pub(super) fn bytes(&self) -> u64 {
        self.bytes + 64
    }
}

/// `entries`, cut where bundles end, from index `first`.
fn group_by_bundle<E>(first: u64, entries: &[E]) -> Vec<&[E]> {
    let mut out = Vec::new();
    let mut rest = entries;
    let mut at = first;
    while !rest.is_empty() {
        let room = (WIDTH - at % WIDTH) as usize;
        let (chunk, tail) = rest.split_at(room.min(rest.len()));
        out.push(chunk);
        at += chunk.len() as u64;
        rest = tail;
    }
    out
}

/// Sends every write of `writes` and the `COMMIT` in one round trip.
/// Returns when the commit is durable, with when it was sent and when it
/// returned (the sessions commit with
/// `synchronous_commit = on`).
///
/// # Errors
/// A write the database refused (then the transaction rolled back), or a
/// failed or unanswered `COMMIT` (the outcome is then unknown to this
/// process: the next lock reads the truth).
pub(super) async fn commit(locked: Locked, writes: &Writes) -> Result<(Instant, Instant), Fail> {
    let client = locked.held.client()?;
    let s = prepare(client, &STATEMENTS).await?;
    let w = writes;
    let bundles_before: [&(dyn ToSql + Sync); 2] = [&w.bundles_before.0, &w.bundles_before.1];
    let tiles_before: [&(dyn ToSql + Sync); 3] =
        [&w.tiles_before.0, &w.tiles_before.1, &w.tiles_before.2];
    let bundles: [&(dyn ToSql + Sync); 4] =
        [&w.bundles.0, &w.bundles.1, &w.bundles.2, &w.bundles.3];
    let tiles: [&(dyn ToSql + Sync); 4] = [&w.tiles.0, &w.tiles.1, &w.tiles.2, &w.tiles.3];
    let bundles_full: [&(dyn ToSql + Sync); 1] = [&w.bundles_full];
    let tiles_full: [&(dyn ToSql + Sync); 2] = [&w.tiles_full.0, &w.tiles_full.1];
    let noted = w.note.as_ref().map(|(size, _)| *size);
    let advance: [&(dyn ToSql + Sync); 7] = [
        &w.from.0,
        &w.from.1,
        &w.to.0,
        &w.to.1,
        &w.latest.0,
        &w.latest.1,
        &noted,
    ];
    let seq = w.to.1;
    let prune = seq - FEED_KEEP;
    let no_keys = (Vec::new(), Vec::new());
    let (keys, puts) = w.change.as_ref().unwrap_or(&no_keys);
    let no_note = (0, String::new());
    let (note_size, note) = w.note.as_ref().unwrap_or(&no_note);
    let put: [&(dyn ToSql + Sync); 2] = [&w.puts.0, &w.puts.1];
    let delete: [&(dyn ToSql + Sync); 1] = [&w.deletes];
    let bodies: [&(dyn ToSql + Sync); 3] = [&w.bodies.0, &w.bodies.1, &w.bodies.2];
    let dropped: [&(dyn ToSql + Sync); 1] = [&w.dropped];
    let change: [&(dyn ToSql + Sync); 3] = [&seq, keys, puts];
    let pruned: [&(dyn ToSql + Sync); 1] = [&prune];
    let publish: [&(dyn ToSql + Sync); 2] = [note_size, note];
    let mut calls: Vec<(&'static str, Pending<'_, Rows>)> = Vec::new();
    if w.from.0 != w.to.0 {
        // The checks first: a failed one aborts the transaction, and every
        // statement after it (the COMMIT too) changes nothing.
        calls.push((
            "check entry bundles",
            Box::pin(client.query(&s[16], &bundles_before)),
        ));
        calls.push(("check tiles", Box::pin(client.query(&s[17], &tiles_before))));
        calls.push((
            "write entry bundles",
            Box::pin(client.query(&s[4], &bundles)),
        ));
        calls.push(("write tiles", Box::pin(client.query(&s[5], &tiles))));
        if !w.bundles_full.is_empty() {
            calls.push((
                "merge entry bundles",
                Box::pin(client.query(&s[18], &bundles_full)),
            ));
        }
        if !w.tiles_full.0.is_empty() {
            calls.push(("merge tiles", Box::pin(client.query(&s[19], &tiles_full))));
        }
    }
    if !w.puts.0.is_empty() {
        calls.push(("write state", Box::pin(client.query(&s[6], &put))));
    }
    if !w.deletes.is_empty() {
        calls.push(("delete state", Box::pin(client.query(&s[7], &delete))));
    }
    if !w.bodies.0.is_empty() {
        calls.push(("write bodies", Box::pin(client.query(&s[8], &bodies))));
    }
    if !w.dropped.is_empty() {
        calls.push(("drop bodies", Box::pin(client.query(&s[9], &dropped))));
    }
    if w.change.is_some() {
        calls.push((
            "write the change feed",
            Box::pin(client.query(&s[10], &change)),
        ));
        if seq % PRUNE_EVERY == 0 {
            calls.push((
                "prune the change feed",
                Box::pin(client.query(&s[11], &pruned)),
            ));
        }
    }
    calls.push(("advance the tree", Box::pin(client.query(&s[12], &advance))));
    if w.note.is_some() {
        calls.push((
            "publish a checkpoint",
            Box::pin(client.query(&s[13], &publish)),
        ));
    }
    calls.push(("commit", Box::pin(client.query(&s[14], &[]))));
    let (names, calls): (Vec<_>, Vec<_>) = calls.into_iter().unzip();
    let sent = Instant::now();
    let results = pipeline(calls).await;
    // The first failure is the cause; those after it only report the
    // aborted transaction (and a COMMIT after one rolled back).
    for (name, result) in names.into_iter().zip(results) {
        result.map_err(pg(name))?;
    }
    let at = Instant::now();
    locked.held.release();
    Ok((sent, at))
}

/// Ends the transaction with no change and frees the lock.
pub(super) async fn rollback(locked: Locked) -> Result<(), Fail> {
    let client = locked.held.client()?;
    let s = prepare(client, &STATEMENTS).await?;
    client.query(&s[15], &[]).await.map_err(pg("rollback"))?;
    locked.held.release();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_cut_where_bundles_end() {
        let entries: Vec<u32> = (0..600).collect();
        let chunks = group_by_bundle(250, &entries);
        let lens: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(lens, [6, 256, 256, 82]);
        assert!(group_by_bundle::<u8>(7, &[]).is_empty());
        assert_eq!(group_by_bundle(256, &entries[..1]).len(), 1);
    }

    #[test]
    fn log_keys_and_huge_entries_are_refused() {
        let tree = Tree {
            size: 0,
            seq: 0,
            latest_size: None,
            noted_size: None,
            note_due: true,
        };
        let mut batch = WriteBatch::new();
        batch.put(b"Lx".to_vec(), vec![1]);
        assert!(matches!(
            Writes::at(&tree).small(batch),
            Err(Error::Invalid(_))
        ));
        let mut batch = WriteBatch::new();
        batch.put_kept(b"L1".to_vec(), vec![1]);
        assert!(matches!(
            Writes::at(&tree).small(batch),
            Err(Error::Invalid(_))
        ));
        let huge = vec![0u8; bundle::MAX_ENTRY_LEN + 1];
        let mut w = Writes::at(&tree);
        assert!(matches!(
            w.entries(&[huge], &BTreeMap::new()),
            Err(Error::EntryTooLarge { .. })
        ));
    }

    #[test]
    fn a_batch_of_small_writes_takes_the_next_feed_number() {
        let tree = Tree {
            size: 5,
            seq: 41,
            latest_size: None,
            noted_size: None,
            note_due: false,
        };
        let mut w = Writes::at(&tree);
        assert!(w.is_empty());
        let mut batch = WriteBatch::new();
        batch.put(b"Ga".to_vec(), b"1".to_vec());
        batch.delete(b"Gb".to_vec());
        w.small(batch).expect("small");
        assert_eq!(w.seq(), Some(42));
        assert_eq!(
            w.change,
            Some((vec![b"Ga".to_vec(), b"Gb".to_vec()], vec![true, false]))
        );
        // Bodies alone are not in the feed.
        let mut w = Writes::at(&tree);
        let mut batch = WriteBatch::new();
        batch.put_body(b"k".to_vec(), b"body".to_vec());
        w.small(batch).expect("small");
        assert_eq!(w.seq(), None);
        assert!(!w.is_empty());
    }
}
