//! What the journal holds durably but the tile files do not yet: entries
//! past the last full bundle file, the full private tiles completed since
//! the integrator last ran, and which journal records hold those entries.
//!
//! Readers look here before the files; the integrator removes things only
//! after their files are durable, so a reader finds every node and entry
//! in one place or the other.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::tlog;

/// The not-yet-integrated part of the log.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// The first entry not in a full bundle file: a multiple of 256.
    base: u64,
    /// Entries `base..`, in order.
    entries: VecDeque<Vec<u8>>,
    /// `(seq, first index)` of the journal records holding entries from
    /// `base` on, oldest first.
    records: VecDeque<(u64, u64)>,
    /// Full private tiles whose files are not yet durable, by (level, index).
    tiles: HashMap<(u8, u64), Arc<[u8]>>,
}

impl Pending {
    /// Nothing pending past `base`.
    pub fn new(base: u64) -> Pending {
        Pending {
            base,
            ..Pending::default()
        }
    }

    /// The first entry not in a bundle file.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Entry `index`, if it is past `base` and held here.
    pub fn entry(&self, index: u64) -> Option<&[u8]> {
        let at = index.checked_sub(self.base)?;
        self.entries
            .get(usize::try_from(at).ok()?)
            .map(Vec::as_slice)
    }

    /// The entries of bundle `bundle`, if it is here and full.
    pub fn bundle(&self, bundle: u64) -> Option<impl Iterator<Item = &[u8]>> {
        let from =
            usize::try_from(bundle.checked_mul(tlog::WIDTH)?.checked_sub(self.base)?).ok()?;
        let to = from + tlog::WIDTH as usize;
        (to <= self.entries.len()).then(|| self.entries.range(from..to).map(Vec::as_slice))
    }

    /// The entries from `from` to the end.
    pub fn entries_from(&self, from: u64) -> impl Iterator<Item = &[u8]> {
        let skip = from.saturating_sub(self.base) as usize;
        self.entries.iter().skip(skip).map(Vec::as_slice)
    }

    /// A full private tile, if it is here.
    pub fn tile(&self, level: u8, index: u64) -> Option<Arc<[u8]>> {
        self.tiles.get(&(level, index)).cloned()
    }

    /// The full private tiles held, by (level, index).
    pub fn tiles(&self) -> impl Iterator<Item = (&(u8, u64), &Arc<[u8]>)> {
        self.tiles.iter()
    }

    /// Records a durable commit: journal record `seq` holding `entries`
    /// from index `first`, and the full tiles it completed.
    pub fn push<E: AsRef<[u8]>>(
        &mut self,
        seq: u64,
        first: u64,
        entries: &[E],
        tiles: Vec<(u8, u64, Vec<u8>)>,
    ) {
        if entries.is_empty() {
            return;
        }
        self.records.push_back((seq, first));
        self.entries
            .extend(entries.iter().map(|e| e.as_ref().to_vec()));
        for (level, index, tile) in tiles {
            self.tiles.insert((level, index), tile.into());
        }
    }

    /// Forgets what the files now hold: entries before `base` (a multiple
    /// of 256, at most the end of the entries held) and the tiles `written`.
    pub fn integrated(&mut self, base: u64, written: &[(u8, u64)]) {
        let drop = base.saturating_sub(self.base) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.base = self.base.max(base);
        // Records wholly before `base`: the next one starts at or before it.
        while self.records.len() > 1 && self.records[1].1 <= self.base {
            self.records.pop_front();
        }
        for key in written {
            self.tiles.remove(key);
        }
    }

    /// The oldest journal record still needed for the entries held, if any.
    pub fn first_record(&self) -> Option<u64> {
        self.records.front().map(|(seq, _)| *seq)
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integration_forgets_what_the_files_hold() {
        let mut p = Pending::new(256);
        let entries: Vec<Vec<u8>> = (0..300u32).map(|i| i.to_be_bytes().to_vec()).collect();
        p.push(7, 256, &entries[..200], vec![(0, 16, vec![1; 4])]);
        p.push(8, 456, &entries[200..], Vec::new());
        assert_eq!(p.entry(256 + 199), Some(&entries[199][..]));
        assert_eq!(p.entry(255), None);
        assert!(p.bundle(1).is_some());
        assert!(p.bundle(2).is_none());
        assert_eq!(p.first_record(), Some(7));

        p.integrated(512, &[(0, 16)]);
        assert_eq!(p.base(), 512);
        assert_eq!(p.len(), 44);
        assert_eq!(p.entry(512), Some(&entries[256][..]));
        // Record 8 (from 456) still holds entries past 512.
        assert_eq!(p.first_record(), Some(8));
        assert!(p.tile(0, 16).is_none());
    }
}
