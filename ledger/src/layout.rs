//! Where the log keeps things in its [`Store`](crate::store::Store): key
//! encodings and the entry bundle format.
//!
//! The size key is written by every append; it sorts after everything else
//! so that it shares a sled node with nothing large that would be rewritten
//! with it.
//!
//! Every key starts with `L` so that other owners (the gateway's state) can
//! share the store, and one atomic batch, without colliding. Numbers are
//! big-endian so keys sort in log order.
//!
//! | key                          | value                                   |
//! |------------------------------|-----------------------------------------|
//! | `L` `F`                      | format marker [`FORMAT`]                |
//! | `L` `z`                      | tree size, u64                          |
//! | `L` `E` bundle(u64)          | 16 entries, each u32 length + bytes     |
//! | `L` `e` index(u64)           | one entry not yet in a full bundle      |
//! | `L` `T` level(u8) tile(u64)  | a full tile, 31 hashes (see `tile`)     |
//! | `L` `h` level(u8) index(u64) | bottom hash of an unfinished tile, L >= 1 |
//! | `L` `C` size(u64)            | a signed checkpoint note                |
//! | `L` `t`                      | tiles per level safe in the tile files, u64 each |

use crate::tile::TILE_WIDTH;

/// Value of the format marker key.
pub const FORMAT: &[u8] = b"xgate-ledger/2";

pub(crate) const FORMAT_KEY: &[u8] = b"LF";
pub(crate) const SIZE_KEY: &[u8] = b"Lz";
pub(crate) const BUNDLE_PREFIX: &[u8] = b"LE";
pub(crate) const TAIL_ENTRY_PREFIX: &[u8] = b"Le";
pub(crate) const TILE_PREFIX: &[u8] = b"LT";
pub(crate) const TAIL_HASH_PREFIX: &[u8] = b"Lh";
pub(crate) const CHECKPOINT_PREFIX: &[u8] = b"LC";
pub(crate) const TILE_FILES_KEY: &[u8] = b"Lt";

fn key(prefix: &[u8], level: Option<u8>, n: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 9);
    k.extend_from_slice(prefix);
    k.extend(level);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

pub(crate) fn bundle_key(bundle: u64) -> Vec<u8> {
    key(BUNDLE_PREFIX, None, bundle)
}

pub(crate) fn tail_entry_key(index: u64) -> Vec<u8> {
    key(TAIL_ENTRY_PREFIX, None, index)
}

pub(crate) fn tile_key(level: u8, tile: u64) -> Vec<u8> {
    key(TILE_PREFIX, Some(level), tile)
}

pub(crate) fn tail_hash_key(level: u8, index: u64) -> Vec<u8> {
    key(TAIL_HASH_PREFIX, Some(level), index)
}

pub(crate) fn tail_hash_prefix(level: u8) -> Vec<u8> {
    let mut k = TAIL_HASH_PREFIX.to_vec();
    k.push(level);
    k
}

pub(crate) fn checkpoint_key(size: u64) -> Vec<u8> {
    key(CHECKPOINT_PREFIX, None, size)
}

/// Reads the trailing big-endian u64 of a key.
pub(crate) fn key_number(key: &[u8]) -> Option<u64> {
    let tail = key.len().checked_sub(8).map(|at| &key[at..])?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

pub(crate) fn encode_u64(n: u64) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

pub(crate) fn decode_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Encodes a list of counts, u64 big-endian each.
pub(crate) fn encode_counts(counts: &[u64]) -> Vec<u8> {
    counts.iter().flat_map(|c| c.to_be_bytes()).collect()
}

/// Decodes [`encode_counts`]; `None` unless the length is a multiple of 8.
pub(crate) fn decode_counts(bytes: &[u8]) -> Option<Vec<u64>> {
    let (chunks, rest) = bytes.as_chunks::<8>();
    rest.is_empty()
        .then(|| chunks.iter().map(|c| u64::from_be_bytes(*c)).collect())
}

/// Appends one entry to a bundle being built.
pub(crate) fn bundle_push(bundle: &mut Vec<u8>, entry: &[u8]) {
    // Entries are capped at MAX_ENTRY_LEN, far below u32::MAX.
    bundle.extend_from_slice(&(entry.len() as u32).to_be_bytes());
    bundle.extend_from_slice(entry);
}

/// Splits a stored bundle into its entries; `None` if it is not exactly
/// [`TILE_WIDTH`] well-formed entries.
pub(crate) fn bundle_entries(mut bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let mut entries = Vec::with_capacity(TILE_WIDTH);
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        let (entry, rest) = rest.split_at(len);
        entries.push(entry);
        bytes = rest;
    }
    (entries.len() == TILE_WIDTH).then_some(entries)
}

/// Entry `offset` of a stored bundle, without splitting the rest.
pub(crate) fn bundle_entry(mut bytes: &[u8], offset: usize) -> Option<&[u8]> {
    for _ in 0..offset {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        bytes = rest.get(u32::from_be_bytes(*len) as usize..)?;
    }
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    rest.get(..u32::from_be_bytes(*len) as usize)
}
