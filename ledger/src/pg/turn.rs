//! The write path: every append and every write is a batch that takes the
//! log's lock in the database, and so a writer's turn ([`crate::turn`]).
//!
//! A batch, on this process's writer (held throughout, so that this
//! process's batches take turns and its memory moves in order):
//!
//! 1. one round trip: `BEGIN`, the tree state `FOR UPDATE`, and with them
//!    the change feed since this process's last turn and, if another
//!    replica appended since, the unfinished tiles to rebuild the edge;
//! 2. the caller decides what to commit from where the log stands
//!    ([`TurnStart`]): nothing else can be committed meanwhile;
//! 3. leaf hashes onto a copy of the edge, which yields the hashes each
//!    tile gains; a checkpoint signed for the new size if every commit
//!    signs one;
//! 4. one round trip: every write and the `COMMIT`, durable on the server
//!    when it returns;
//! 5. only then does memory move: the edge, the size, the checkpoint.
//!
//! A failure anywhere leaves memory as it was: a batch whose `COMMIT` went
//! unanswered is in the database or not, and the next batch reads which.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_postgres::Row;

use super::batch::{self, FEED_KEEP, Locked, Want, Writes, to_u64};
use super::db::pg;
use super::tree::Edge;
use super::{PgLog, Writer};
use crate::checkpoint::SignedCheckpoint;
use crate::error::Error;
use crate::hash::{Hash, leaf_hash};
use crate::proof;
use crate::store::WriteBatch;
use crate::turn::{Change, Changes, Decide, Prepare, TurnStart};
use crate::{Committed, MAX_ENTRY_LEN};

/// A batch holding the lock, before its writes.
struct Begun {
    locked: Locked,
    /// The edge at the tree's size, if the batch asked for it.
    edge: Option<Arc<Edge>>,
    changes: Changes,
}

impl PgLog {
    /// Appends one entry and returns its index once it is durable.
    ///
    /// # Errors
    /// As [`PgLog::append_batch_with`].
    pub fn append(&self, entry: &[u8]) -> Result<u64, Error> {
        self.append_batch(&[entry]).map(|r| r.start)
    }

    /// Appends entries, in order and contiguously, in one batch, and
    /// returns their indices once they are durable.
    ///
    /// # Errors
    /// As [`PgLog::append_batch_with`].
    pub fn append_batch<E: AsRef<[u8]>>(&self, entries: &[E]) -> Result<Range<u64>, Error> {
        self.append_batch_with(entries, |_| WriteBatch::new())
            .map(|c| c.range)
    }

    /// As [`Log::append_batch_with`](crate::Log::append_batch_with): the
    /// entries and the writes `with` makes for their indices commit in one
    /// transaction, durable when this returns.
    ///
    /// # Errors
    /// [`Error::EntryTooLarge`] or [`Error::Invalid`] (a key starting with
    /// `L`): nothing is written; [`Error::Store`] if the database failed or
    /// went away: nothing is acknowledged, though a batch whose `COMMIT`
    /// was sent may be in the log.
    pub fn append_batch_with<E, F>(&self, entries: &[E], with: F) -> Result<Committed, Error>
    where
        E: AsRef<[u8]>,
        F: FnOnce(Range<u64>) -> WriteBatch,
    {
        check_lengths(entries)?;
        let mut writer = self.writer();
        let begun = self.begin(&mut writer, false, true)?;
        let first = begun.locked.tree.size;
        let batch = with(first..first + entries.len() as u64);
        self.finish(&mut writer, begun, entries, batch)
    }

    /// Commits `batch` alone, with no entry, durable when this returns.
    ///
    /// # Errors
    /// As [`PgLog::append_batch_with`].
    pub fn commit_writes(&self, batch: WriteBatch) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut writer = self.writer();
        let begun = self.begin(&mut writer, false, false)?;
        self.finish::<&[u8]>(&mut writer, begun, &[], batch)
            .map(|_| ())
    }

    /// Commits what `decide` returns, alone, deciding it while this batch
    /// holds the log's lock: every replica's writes take it, so what
    /// `decide` reads (through [`PgLog::store`], on other connections,
    /// which see every batch committed before the lock was granted) stays
    /// true until the commit.
    ///
    /// # Errors
    /// What `decide` returns; else as [`PgLog::append_batch_with`].
    pub fn commit_writes_with(&self, decide: &mut Decide<'_>) -> Result<(), Error> {
        let mut writer = self.writer();
        let begun = self.begin(&mut writer, false, false)?;
        let batch = match decide() {
            Ok(batch) => batch,
            Err(e) => return Err(self.fail(begun.locked, e)),
        };
        if batch.is_empty() {
            return self.abandon(begun);
        }
        self.finish::<&[u8]>(&mut writer, begun, &[], batch)
            .map(|_| ())
    }

    /// Takes the writer's turn: the log's lock in the database. `prepare`
    /// learns where the log stands and which keys other writers (other
    /// replicas, and this process's own appends and writes outside turns)
    /// changed since this process's last turn, and decides what to commit;
    /// nothing else commits meanwhile. Nothing is written if it returns no
    /// entry and no write.
    ///
    /// # Errors
    /// As [`PgLog::append_batch_with`].
    pub fn turn(&self, prepare: &mut Prepare<'_>) -> Result<Committed, Error> {
        let mut writer = self.writer();
        let begun = self.begin(&mut writer, true, true)?;
        let start = TurnStart {
            next_index: begun.locked.tree.size,
            changes: begun.changes.clone(),
        };
        // `prepare` learns of every batch up to this one, whatever happens
        // to this turn's own.
        writer.known_seq = writer.known_seq.max(begun.locked.tree.seq);
        let (entries, batch) = prepare(&start);
        if entries.is_empty() && batch.is_empty() {
            self.abandon(begun)?;
            return Ok(Committed {
                range: start.next_index..start.next_index,
                checkpoint: None,
            });
        }
        if let Err(e) = check_lengths(&entries) {
            return Err(self.fail(begun.locked, e));
        }
        let (committed, seq) = self.commit_batch(&mut writer, begun, &entries, batch)?;
        if let Some(seq) = seq {
            writer.known_seq = writer.known_seq.max(seq);
        }
        Ok(committed)
    }

    /// Publishes a checkpoint for the log's size in a batch of its own,
    /// unless the newest one published is for that size already; returns
    /// it. (`publish` calls this.)
    pub(super) fn checkpoint_turn(&self) -> Result<SignedCheckpoint, Error> {
        let mut writer = self.writer();
        let begun = self.begin(&mut writer, false, true)?;
        let tree = begun.locked.tree;
        if tree.latest_size == Some(tree.size) && tree.noted_size == Some(tree.size) {
            self.abandon(begun)?;
            let known = self.refresh()?;
            return known
                .latest
                .filter(|l| l.checkpoint.size >= tree.size)
                .ok_or_else(|| Error::Corrupt("the checkpoint published is missing".into()));
        }
        let edge = edge_of(&begun)?;
        let root = proof::root_at(
            &super::Nodes::Reader {
                edge: Some(&edge),
                tiles: &Default::default(),
            },
            tree.size,
        )?;
        // Ed25519 is deterministic: re-signing a checkpoint already signed
        // gives the same note.
        let signed = self.sign(tree.size, root);
        let mut writes = Writes::at(&tree);
        writes.checkpoint(&signed, true);
        self.send(begun, writes, 0)?;
        self.head.committed(tree.size, Some(&signed));
        Ok(signed)
    }

    /// Begins a batch: takes the lock, reading the change feed (`report`)
    /// and the edge (`edge`) with it.
    fn begin(&self, writer: &mut Writer, report: bool, edge: bool) -> Result<Begun, Error> {
        let want = Want {
            feed_after: report.then_some(writer.known_seq),
            edge_unless: edge.then(|| writer.edge.as_ref().map(|e| e.size())),
        };
        let pool = self.db.pool();
        let locked = self.db.run(async move { batch::lock(&pool, want).await })?;
        self.stats.round_trips(locked.round_trips);
        let tree = locked.tree;
        if let Err(e) = went_back(writer, &tree) {
            return Err(self.fail(locked, e));
        }
        let changes = if report {
            match changes(&locked.feed, writer.known_seq, tree.seq) {
                Ok(changes) => changes,
                Err(e) => return Err(self.fail(locked, e)),
            }
        } else {
            Changes::None
        };
        let current = if !edge {
            Ok(None)
        } else {
            match (&locked.edge, &writer.edge) {
                (Some(rows), _) => Edge::from_rows(tree.size, rows).map(|e| Some(Arc::new(e))),
                (None, Some(known)) if known.size() == tree.size => Ok(Some(Arc::clone(known))),
                (None, _) => Err(Error::Corrupt("the edge was not read with the lock".into())),
            }
        };
        let current = match current {
            Ok(current) => current,
            Err(e) => return Err(self.fail(locked, e)),
        };
        if let Some(edge) = &current {
            // The truth at this size, whatever this batch does.
            writer.edge = Some(Arc::clone(edge));
            self.publish_edge(edge);
            self.head.committed(tree.size, None);
        }
        Ok(Begun {
            locked,
            edge: current,
            changes,
        })
    }

    /// Writes `entries` and `batch` in the batch `begun` and commits.
    fn finish<E: AsRef<[u8]>>(
        &self,
        writer: &mut Writer,
        begun: Begun,
        entries: &[E],
        batch: WriteBatch,
    ) -> Result<Committed, Error> {
        self.commit_batch(writer, begun, entries, batch)
            .map(|(committed, _)| committed)
    }

    /// [`PgLog::finish`], also returning the batch's number in the feed.
    fn commit_batch<E: AsRef<[u8]>>(
        &self,
        writer: &mut Writer,
        begun: Begun,
        entries: &[E],
        batch: WriteBatch,
    ) -> Result<(Committed, Option<u64>), Error> {
        let tree = begun.locked.tree;
        let first = tree.size;
        let end = first + entries.len() as u64;
        let mut writes = Writes::at(&tree);
        let staged = writes.small(batch).and_then(|()| {
            if entries.is_empty() {
                return Ok((None, None));
            }
            let mut edge = Edge::clone(&*edge_of(&begun)?);
            let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e.as_ref())).collect();
            let grown = edge.push(&leaves);
            writes.entries(entries, &grown)?;
            let signed = if self.every_commit.load(Ordering::Acquire) {
                // Every node of the new root's cover is on the new edge.
                let nodes = super::Nodes::Reader {
                    edge: Some(&edge),
                    tiles: &Default::default(),
                };
                let signed = self.sign(end, proof::root_at(&nodes, end)?);
                writes.checkpoint(&signed, tree.note_due);
                Some(signed)
            } else {
                None
            };
            Ok((Some(Arc::new(edge)), signed))
        });
        let (edge, checkpoint) = match staged {
            Ok(staged) => staged,
            Err(e) => return Err(self.fail(begun.locked, e)),
        };
        let range = first..end;
        if writes.is_empty() {
            self.abandon(begun)?;
            return Ok((
                Committed {
                    range,
                    checkpoint: None,
                },
                None,
            ));
        }
        let seq = writes.seq();
        self.send(begun, writes, entries.len() as u64)?;
        if let Some(edge) = edge {
            writer.edge = Some(Arc::clone(&edge));
            self.publish_edge(&edge);
        }
        self.head.committed(end, checkpoint.as_ref());
        Ok((Committed { range, checkpoint }, seq))
    }

    /// Sends `writes` and the `COMMIT`, counting what it cost.
    fn send(&self, begun: Begun, writes: Writes, entries: u64) -> Result<(), Error> {
        let bytes = writes.bytes();
        let (asked, locked_at) = (begun.locked.asked, begun.locked.at);
        let result = self
            .db
            .run(async move { batch::commit(begun.locked, &writes).await });
        self.stats.round_trips(1);
        let (sent, committed_at) = result?;
        let times = [
            locked_at.duration_since(asked),
            committed_at.duration_since(locked_at),
            committed_at.duration_since(sent),
        ];
        self.stats.committed(entries, times, bytes);
        Ok(())
    }

    /// Ends a batch with no change.
    fn abandon(&self, begun: Begun) -> Result<(), Error> {
        let result = self
            .db
            .run(async move { batch::rollback(begun.locked).await });
        self.stats.round_trips(1);
        result
    }

    /// Ends a batch that failed with `error`, and returns it.
    fn fail(&self, locked: Locked, error: Error) -> Error {
        let begun = Begun {
            locked,
            edge: None,
            changes: Changes::None,
        };
        // A rollback that fails drops the connection, which rolls back
        // too: either way the lock is freed, and `error` is the news.
        let _ = self.abandon(begun);
        error
    }
}

/// The edge a batch read with its lock.
fn edge_of(begun: &Begun) -> Result<Arc<Edge>, Error> {
    begun
        .edge
        .clone()
        .ok_or_else(|| Error::Corrupt("a batch that appends has no edge".into()))
}

/// Refuses entries a bundle cannot frame, before anything is sent.
fn check_lengths<E: AsRef<[u8]>>(entries: &[E]) -> Result<(), Error> {
    match entries.iter().find(|e| e.as_ref().len() > MAX_ENTRY_LEN) {
        Some(e) => Err(Error::EntryTooLarge {
            len: e.as_ref().len(),
            max: MAX_ENTRY_LEN,
        }),
        None => Ok(()),
    }
}

/// Refuses a database that holds less than this process saw committed:
/// restored from an older backup, or failed over to a standby that had not
/// received every commit. Acknowledged entries are gone from it, and what
/// this process holds in memory (the edge, full tiles, caches) may belong
/// to a history it no longer has: appending on would build a fork that
/// witnesses refuse. Every turn is refused (503 to clients; the gateway
/// logs why) until the replica is restarted, which an operator does knowingly
/// (docs/operations.md, "Backups").
fn went_back(writer: &Writer, tree: &batch::Tree) -> Result<(), Error> {
    let seen = writer.edge.as_ref().map_or(0, |e| e.size());
    if tree.seq >= writer.known_seq && tree.size >= seen {
        return Ok(());
    }
    Err(Error::Store(crate::StoreError(format!(
        "the database holds {} entries (batch {}), fewer than the {} (batch {}) this replica \
         saw committed: it was restored or failed over with commits lost; restart the replica \
         once that is understood",
        tree.size, tree.seq, seen, writer.known_seq
    ))))
}

/// The changes since batch `known`, from the feed's rows after it, the
/// lock having found batch `seq` the last.
fn changes(rows: &[Row], known: u64, seq: u64) -> Result<Changes, Error> {
    if seq == known {
        return Ok(Changes::None);
    }
    if seq < known {
        // The database went back in time (a restore): caches are ahead.
        return Ok(Changes::Unknown);
    }
    let mut keys = Vec::new();
    let mut expected = known + 1;
    for row in rows {
        let at: i64 = row
            .try_get(0)
            .map_err(|e| Error::from(pg("read the change feed")(e)))?;
        if to_u64(at).map_err(Error::from)? != expected {
            // Pruned past where this process stood.
            return Ok(Changes::Unknown);
        }
        let batch_keys: Vec<Vec<u8>> = row
            .try_get(1)
            .map_err(|e| Error::from(pg("read the change feed")(e)))?;
        let puts: Vec<bool> = row
            .try_get(2)
            .map_err(|e| Error::from(pg("read the change feed")(e)))?;
        if puts.len() != batch_keys.len() {
            return Err(Error::Corrupt(format!(
                "change feed batch {at} is malformed"
            )));
        }
        keys.extend(
            batch_keys
                .into_iter()
                .zip(puts)
                .map(|(key, put)| Change { key, put }),
        );
        expected += 1;
    }
    // Cut short by the cap (too many keys) or pruned: read everything.
    if expected != seq + 1 || keys.len() > FEED_KEEP as usize {
        return Ok(Changes::Unknown);
    }
    Ok(Changes::Keys(keys))
}

#[cfg(test)]
mod tests {
    //! A database that holds less than this process saw is refused; one
    //! that holds as much or more is taken as it is.
    use super::*;

    fn writer(size: u64, known_seq: u64) -> Writer {
        let mut edge = Edge::empty();
        let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        edge.push(&leaves);
        Writer {
            edge: Some(Arc::new(edge)),
            known_seq,
        }
    }

    fn tree(size: u64, seq: u64) -> batch::Tree {
        batch::Tree {
            size,
            seq,
            latest_size: None,
            noted_size: None,
            note_due: false,
        }
    }

    #[test]
    fn a_database_that_went_back_is_refused_until_restart() {
        let seen = writer(10, 7);
        // As seen, or grown by other replicas: taken.
        assert!(went_back(&seen, &tree(10, 7)).is_ok());
        assert!(went_back(&seen, &tree(12, 9)).is_ok());
        // Fewer entries, or an earlier batch: a restore or a lossy failover.
        for (size, seq) in [(9, 7), (10, 6), (12, 6), (3, 2)] {
            let e = went_back(&seen, &tree(size, seq)).expect_err("went back");
            assert!(matches!(e, Error::Store(_)), "{e}");
            assert!(e.to_string().contains("restart the replica"), "{e}");
        }
        // A process that has seen nothing takes whatever is there.
        let fresh = Writer {
            edge: None,
            known_seq: 0,
        };
        assert!(went_back(&fresh, &tree(0, 0)).is_ok());
    }
}
