//! Checkpoints: signed with every batch that appends
//! ([`PgLog::set_checkpoint_every_commit`]) or on demand
//! ([`PgLog::checkpoint`]), the history of published ones, and the
//! cosigned checkpoint a witnessed log serves.
//!
//! A checkpoint is signed only inside a batch, holding the lock, for the
//! size the lock found: replicas never sign two checkpoints that disagree.
//! Its tiles are in the database the moment it commits, so every signed
//! checkpoint is published; the history gets one at most once a second
//! from batches, and every one asked for with [`PgLog::checkpoint`].

use std::sync::atomic::Ordering;

use super::db::{pg, prepare};
use super::{PgLog, sql};
use crate::checkpoint::{SignedCheckpoint, verify_checkpoint};
use crate::error::Error;

impl PgLog {
    /// The newest checkpoint signed, by any replica.
    pub fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        self.known().latest
    }

    /// The newest checkpoint published: every signed one is (its tiles are
    /// in the database with it), so this is [`PgLog::latest_checkpoint`].
    pub fn published_checkpoint(&self) -> Option<SignedCheckpoint> {
        self.latest_checkpoint()
    }

    /// A checkpoint for the log's size, signed now (in a batch of its own)
    /// unless the newest published one is for that size; it is added to
    /// the published ones.
    ///
    /// # Errors
    /// The database failing; nothing new is published then.
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, Error> {
        self.checkpoint_turn()
    }

    /// Makes every later batch that appends sign a checkpoint for its new
    /// size in the same transaction ([`Committed::checkpoint`](crate::Committed)).
    pub fn set_checkpoint_every_commit(&self, on: bool) {
        self.every_commit.store(on, Ordering::Release);
    }

    /// Every published checkpoint note, oldest first, with its size.
    ///
    /// # Errors
    /// The database failing.
    pub fn checkpoints(&self) -> Result<Vec<(u64, String)>, Error> {
        self.db.read(|client| async move {
            let s = prepare(&client, &[sql::NOTES]).await?;
            let rows = client
                .query(&s[0], &[])
                .await
                .map_err(pg("read checkpoints"))?;
            rows.iter()
                .map(|row| {
                    let size: i64 = row.try_get(0).map_err(pg("read checkpoints"))?;
                    let note: String = row.try_get(1).map_err(pg("read checkpoints"))?;
                    Ok((super::batch::to_u64(size)?, note))
                })
                .collect()
        })
    }

    /// Serves `note` as the tlog-tiles checkpoint of a witnessed log
    /// ([`OpenOptions::witnessed`](crate::OpenOptions)), as
    /// [`Log::publish_cosigned`](crate::Log::publish_cosigned): it must
    /// carry this log's signature on a checkpoint of this tree, no smaller
    /// than the one served. Returns its size.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] for a note this log did not sign,
    /// [`Error::Corrupt`] for a size past the log's or behind the one
    /// served, or a root that is not this tree's; the database failing.
    pub fn publish_cosigned(&self, note: &str) -> Result<u64, Error> {
        let checkpoint = verify_checkpoint(note, &self.verifier)?;
        let size = self.size_at_least(checkpoint.size)?;
        if checkpoint.size > size {
            return Err(Error::Corrupt(format!(
                "checkpoint size {} is not published yet (published: {size})",
                checkpoint.size
            )));
        }
        if self.root_at(checkpoint.size)? != checkpoint.root {
            return Err(Error::Corrupt(format!(
                "the checkpoint's root at size {} is not this log's",
                checkpoint.size
            )));
        }
        let at = super::batch::to_i64(checkpoint.size);
        let text = note.to_owned();
        let changed = self.db.read(move |client| {
            let text = text.clone();
            async move {
                let s = prepare(&client, &[sql::SERVE]).await?;
                client
                    .execute(&s[0], &[&text, &at])
                    .await
                    .map_err(pg("serve a checkpoint"))
            }
        })?;
        if changed == 0 {
            let served = self.refresh()?.served.map_or(0, |s| s.checkpoint.size);
            return Err(Error::Corrupt(format!(
                "checkpoint size {} is behind the one served ({served})",
                checkpoint.size
            )));
        }
        let size = checkpoint.size;
        self.head.served(SignedCheckpoint {
            checkpoint,
            note: note.to_owned(),
        });
        Ok(size)
    }
}
