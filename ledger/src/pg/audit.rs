//! Whole-log verification: every entry read back from its bundle, every
//! tile and the root recomputed from the entries alone, every published
//! checkpoint checked (signature and root).
//!
//! Tiles are rebuilt with `rs_merkle` (`hash::root_of`), an implementation
//! independent of the incremental code that wrote them, and the root is
//! folded from those rows, then compared with the one the stored tiles
//! give.

use std::collections::BTreeMap;

use super::batch::{to_i64, to_u64};
use super::db::{Fail, pg, prepare};
use super::tree::{HEIGHT, WIDTH};
use super::{PgLog, sql};
use crate::VerifyReport;
use crate::error::Error;
use crate::error::check_kept_note;
use crate::hash::{Hash, leaf_hash, root_of};
use crate::tlog::bundle;
use crate::tree::{cover, fold_right};

/// Bundles read per query.
const PAGE: u64 = 64;

impl PgLog {
    /// Recomputes the whole log from its entries and checks every stored
    /// tile, the root and every published checkpoint. Appends go on
    /// meanwhile; the check covers the size at its start.
    ///
    /// # Errors
    /// [`Error::Corrupt`] describing the first discrepancy found; the
    /// database failing.
    pub fn verify(&self) -> Result<VerifyReport, Error> {
        let size = self.refresh()?.size;
        let mut check = Recompute::default();
        let bundles = size.div_ceil(WIDTH);
        let mut from = 0;
        while from < bundles {
            let to = (from + PAGE).min(bundles);
            let rows = self.bundle_range(from, to)?;
            if rows.len() as u64 != to - from {
                return Err(corrupt(format!(
                    "entry bundles {from}..{to} are not all there"
                )));
            }
            for (b, (index, count, data)) in (from..to).zip(rows) {
                let expected = (size - b * WIDTH).min(WIDTH) as usize;
                if index != b
                    || count < expected
                    || (expected == WIDTH as usize && count != expected)
                {
                    return Err(corrupt(format!(
                        "entry bundle {b} does not hold its entries"
                    )));
                }
                let entries = bundle::split(&data)
                    .filter(|e| e.len() == count)
                    .ok_or_else(|| corrupt(format!("entry bundle {b} is malformed")))?;
                for e in &entries[..expected] {
                    check.leaf(leaf_hash(e));
                }
            }
            self.check_full(&mut check)?;
            from = to;
        }
        // The unfinished rows: stored rows may have grown since.
        let open: Vec<(u8, u64)> = check
            .rows
            .iter()
            .enumerate()
            .filter(|(_, row)| !row.is_empty())
            .map(|(level, _)| (level as u8, check.done[level]))
            .collect();
        let stored: BTreeMap<(u8, u64), Vec<u8>> =
            self.fetch_tiles(open.clone())?.into_iter().collect();
        for key in open {
            let want = bytes_of(&check.rows[key.0 as usize]);
            if !stored.get(&key).is_some_and(|got| got.starts_with(&want)) {
                return Err(corrupt(format!(
                    "tile {}/{} does not match its entries",
                    key.0, key.1
                )));
            }
        }
        let root = check.root(size)?;
        if self.root_at(size)? != root {
            return Err(corrupt(format!(
                "the stored tiles give another root at size {size}"
            )));
        }
        let mut checkpoints = 0;
        for (at, note) in self.checkpoints()? {
            if at > size {
                // Published by a replica after this check began.
                continue;
            }
            check_kept_note(at, &note, &self.verifier, |at| {
                if at == size {
                    Ok(root)
                } else {
                    self.root_at(at)
                }
            })?;
            checkpoints += 1;
        }
        Ok(VerifyReport {
            size,
            root,
            tiles: check.tiles,
            checkpoints,
        })
    }

    /// Compares the full tiles recomputed so far with the stored ones.
    fn check_full(&self, check: &mut Recompute) -> Result<(), Error> {
        if check.full.is_empty() {
            return Ok(());
        }
        let full = std::mem::take(&mut check.full);
        let keys = full.iter().map(|(key, _)| *key).collect();
        let stored: BTreeMap<(u8, u64), Vec<u8>> = self.fetch_tiles(keys)?.into_iter().collect();
        for (key, want) in full {
            if stored.get(&key) != Some(&want) {
                return Err(corrupt(format!(
                    "tile {}/{} is missing or does not match its entries",
                    key.0, key.1
                )));
            }
            check.tiles += 1;
        }
        Ok(())
    }

    /// Bundles `from..to`: index, entries held, bytes.
    fn bundle_range(&self, from: u64, to: u64) -> Result<Vec<(u64, usize, Vec<u8>)>, Error> {
        let (from, to) = (to_i64(from), to_i64(to));
        self.db.read(move |client| async move {
            let s = prepare(&client, &[sql::BUNDLE_RANGE]).await?;
            let rows = client
                .query(&s[0], &[&from, &to])
                .await
                .map_err(pg("read entry bundles"))?;
            rows.iter()
                .map(|row| {
                    let index: i64 = row.try_get(0).map_err(pg("read entry bundles"))?;
                    let count: i64 = row.try_get(1).map_err(pg("read entry bundles"))?;
                    let data: Vec<u8> = row.try_get(2).map_err(pg("read entry bundles"))?;
                    let count = usize::try_from(count)
                        .map_err(|_| Fail::Log(corrupt("an entry bundle's count is negative")))?;
                    Ok((to_u64(index)?, count, data))
                })
                .collect()
        })
    }
}

/// The recomputation: the row of each level's unfinished tile, filled
/// leaf by leaf; full tiles are kept until compared.
#[derive(Default)]
struct Recompute {
    /// `rows[L]`: hashes of tree level 8L in tile `done[L]` so far.
    rows: Vec<Vec<Hash>>,
    /// Full tiles per level so far.
    done: Vec<u64>,
    /// Full tiles not yet compared: key and bytes.
    full: Vec<((u8, u64), Vec<u8>)>,
    /// Full tiles compared.
    tiles: u64,
}

impl Recompute {
    fn leaf(&mut self, leaf: Hash) {
        let mut carry = leaf;
        for level in 0u8.. {
            if self.rows.len() == level as usize {
                self.rows.push(Vec::new());
                self.done.push(0);
            }
            let row = &mut self.rows[level as usize];
            row.push(carry);
            if row.len() < WIDTH as usize {
                return;
            }
            let full = std::mem::take(row);
            carry = root_of(&full);
            let index = self.done[level as usize];
            self.done[level as usize] += 1;
            self.full.push(((level, index), bytes_of(&full)));
        }
    }

    /// The root of the first `size` leaves: the pieces of the RFC 9162
    /// cover, each the `rs_merkle` root of a slice of one unfinished row.
    fn root(&self, size: u64) -> Result<Hash, Error> {
        let mut pieces = Vec::new();
        for node in cover(0, size) {
            let level = node.level / HEIGHT;
            let span = 1usize << (node.level % HEIGHT);
            let row = self
                .rows
                .get(level as usize)
                .ok_or_else(|| corrupt("the recomputed tree is too short"))?;
            let first = ((node.index << (node.level % HEIGHT)) % WIDTH) as usize;
            let slice = row
                .get(first..first + span)
                .ok_or_else(|| corrupt("the recomputed tree is too short"))?;
            pieces.push(root_of(slice));
        }
        Ok(fold_right(&pieces).unwrap_or(Hash::EMPTY_ROOT))
    }
}

fn bytes_of(row: &[Hash]) -> Vec<u8> {
    row.iter().flat_map(|h| *h.as_bytes()).collect()
}

fn corrupt(msg: impl Into<String>) -> Error {
    Error::Corrupt(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recomputed_root_is_the_root_of_the_leaves() {
        for n in [0u64, 1, 2, 3, 255, 256, 257, 300, 511, 512, 513, 65_537] {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect();
            let mut check = Recompute::default();
            for l in &leaves {
                check.leaf(*l);
            }
            assert_eq!(check.root(n).ok(), Some(root_of(&leaves)), "{n}");
            assert_eq!(check.full.len() as u64, n / 256 + n / 65_536);
        }
    }
}
