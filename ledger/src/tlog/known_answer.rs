//! An independent known-answer test of the tile layout.
//!
//! Two halves, each written from C2SP tlog-tiles and RFC 9162 alone, with
//! none of the log's own tree code:
//!
//! - a *reference* builds every tile from the spec's formula, tile `n` of
//!   level `l` holding `MTH(D[(n*256+i)*256^l : (n*256+i+1)*256^l])` for
//!   `i < width`, with `ct-merkle` computing each MTH;
//! - a *verifier* reads a tree size's tiles and bundles back from the
//!   directory and recomputes that size's root from them.
//!
//! The tiles go through [`TileDir`] in between, and the verifier's root must
//! equal `ct-merkle`'s root of the whole prefix.

use std::collections::HashMap;

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use sha2::{Digest, Sha256};

use super::path::{Resource, Width, partial_width, tile_path};
use super::{TileDir, bundle};

type Hash = [u8; 32];

/// The sizes the test covers: one entry, one short of a tile, a tile, one
/// past it, a full level-1 tile, and the spec's example.
const SIZES: [u64; 6] = [1, 255, 256, 257, 65_536, 70_000];

/// `MTH(D)` by ct-merkle (RFC 6962 / 9162 with SHA-256).
fn mth(entries: &[Vec<u8>]) -> Hash {
    let mut tree = MemoryBackedTree::<sha2_next::Sha256, Vec<u8>>::new();
    for e in entries {
        tree.push(e.clone());
    }
    root_bytes(&tree)
}

fn root_bytes(tree: &MemoryBackedTree<sha2_next::Sha256, Vec<u8>>) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(tree.root().as_bytes().as_slice());
    out
}

/// Random entries with a fixed seed: mostly short, one of the longest
/// length a bundle can hold, some empty.
fn entries(n: usize) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(19);
    (0..n)
        .map(|i| {
            let len = match i {
                300 => bundle::MAX_ENTRY_LEN,
                _ if i % 97 == 0 => 0,
                _ => rng.usize(1..200),
            };
            (0..len).map(|_| rng.u8(..)).collect()
        })
        .collect()
}

/// The reference: `hashes[l][p] = MTH(D[p*256^l : (p+1)*256^l])` for every
/// position `p` a tree of `entries.len()` entries has at level `l`.
fn reference_hashes(entries: &[Vec<u8>]) -> Vec<Vec<Hash>> {
    let mut levels = Vec::new();
    let mut span = 1usize;
    while span <= entries.len() {
        levels.push(entries.chunks_exact(span).map(mth).collect());
        span *= 256;
    }
    levels
}

/// The reference roots `MTH(D[0:size])` of every size in [`SIZES`], from
/// one ct-merkle tree grown through them.
fn reference_roots(entries: &[Vec<u8>]) -> HashMap<u64, Hash> {
    let mut tree = MemoryBackedTree::<sha2_next::Sha256, Vec<u8>>::new();
    let mut roots = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        tree.push(e.clone());
        let size = i as u64 + 1;
        if SIZES.contains(&size) {
            roots.insert(size, root_bytes(&tree));
        }
    }
    roots
}

/// Writes the tiles and bundles of a tree of `size` entries, as the spec
/// lays them out: for each level, the full tiles and the partial one.
fn store(dir: &TileDir, hashes: &[Vec<Hash>], entries: &[Vec<u8>], size: u64) {
    for (level, row) in hashes.iter().enumerate() {
        let level = level as u8;
        let count = (size >> (8 * u32::from(level))) as usize;
        let row = &row[..count];
        for (n, chunk) in row.chunks(256).enumerate() {
            let width = if chunk.len() == 256 {
                Width::Full
            } else {
                Width::Partial(chunk.len() as u8)
            };
            dir.put_tile(level, n as u64, width, &chunk.concat())
                .expect("put tile");
        }
    }
    for (n, chunk) in entries[..size as usize].chunks(256).enumerate() {
        let width = if chunk.len() == 256 {
            Width::Full
        } else {
            Width::Partial(chunk.len() as u8)
        };
        let mut b = Vec::new();
        for e in chunk {
            bundle::push(&mut b, e).expect("push");
        }
        dir.put_bundle(n as u64, width, &b).expect("put bundle");
    }
    dir.sync().expect("sync");
}

fn node(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

fn leaf(entry: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0])
        .chain_update(entry)
        .finalize()
        .into()
}

/// The verifier: hashes `first .. first + count` of tile `n` at `level`, in
/// a tree of `size` entries. The tile is full if the tree reaches its end
/// index `(n+1) * 256^(level+1)`, else partial with the spec's width.
fn tile_hashes(
    dir: &TileDir,
    size: u64,
    level: u8,
    n: u64,
    first: usize,
    count: usize,
) -> Vec<Hash> {
    let end = (n + 1) << (8 * (u32::from(level) + 1));
    let bytes = if end <= size {
        let mut out = vec![0u8; count * 32];
        assert!(
            dir.read_tile(level, n, first, &mut out).expect("read"),
            "full tile {level}/{n} missing at size {size}"
        );
        out
    } else {
        let w = partial_width(size, level);
        let path = dir.root().join(tile_path(level, n, Width::Partial(w)));
        let all = std::fs::read(&path).expect("partial tile");
        assert_eq!(all.len(), usize::from(w) * 32, "{}", path.display());
        all[first * 32..(first + count) * 32].to_vec()
    };
    bytes
        .chunks_exact(32)
        .map(|h| h.try_into().expect("32 bytes"))
        .collect()
}

/// The hash of the complete subtree of `2^height` entries from `start`
/// (aligned): `2^(height mod 8)` consecutive hashes of tile level
/// `height / 8`, all in one tile, hashed pairwise up to one.
fn subtree(dir: &TileDir, size: u64, start: u64, height: u32) -> Hash {
    let level = (height / 8) as u8;
    let count = 1usize << (height % 8);
    let position = start >> (8 * u32::from(level));
    let mut row = tile_hashes(
        dir,
        size,
        level,
        position / 256,
        (position % 256) as usize,
        count,
    );
    while row.len() > 1 {
        row = row.chunks_exact(2).map(|p| node(&p[0], &p[1])).collect();
    }
    row[0]
}

/// `MTH(D[0:size])` from the stored tiles: the tree is its complete
/// subtrees of sizes the powers of two in `size`, largest first, and RFC
/// 9162's split at the largest power of two below `n` combines them
/// right to left.
fn root_from_tiles(dir: &TileDir, size: u64) -> Hash {
    let mut subtrees = Vec::new();
    let mut start = 0;
    for height in (0..64).rev() {
        if size & (1 << height) != 0 {
            subtrees.push(subtree(dir, size, start, height));
            start += 1 << height;
        }
    }
    let mut root = subtrees.pop().expect("size > 0");
    while let Some(left) = subtrees.pop() {
        root = node(&left, &root);
    }
    root
}

/// Every entry of the bundles of a tree of `size` entries hashes to the
/// level-0 tile hash at its index (full bundles through `read_bundle`,
/// partial ones through `read`).
fn check_bundles(dir: &TileDir, size: u64, entries: &[Vec<u8>]) {
    for n in 0..size.div_ceil(256) {
        let full = (n + 1) * 256 <= size;
        let bytes = if full {
            dir.read_bundle(n).expect("read").expect("full bundle")
        } else {
            let width = Width::Partial(partial_width(size, 0));
            dir.read(&Resource::Bundle { index: n, width })
                .expect("read")
                .expect("partial bundle")
        };
        let got = bundle::split(&bytes).expect("well-formed");
        let tile = tile_hashes(dir, size, 0, n, 0, got.len());
        for (i, e) in got.iter().enumerate() {
            let index = (n * 256) as usize + i;
            assert_eq!(*e, &entries[index][..], "entry {index}");
            assert_eq!(leaf(e), tile[i], "leaf hash {index} at size {size}");
        }
    }
}

#[test]
fn tiles_from_the_spec_formula_verify_back_to_the_root() {
    let max = SIZES[SIZES.len() - 1];
    let entries = entries(max as usize);
    let hashes = reference_hashes(&entries);
    let roots = reference_roots(&entries);
    // 70,000 entries: 273 positions at level 1, 1 at level 2.
    assert_eq!(
        hashes.iter().map(Vec::len).collect::<Vec<_>>(),
        [70_000, 273, 1]
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = TileDir::open(&tmp.path().join("log")).expect("open");
    // One directory for all sizes, growing like a log: a smaller size's
    // files are a subset of a larger one's, written again identically.
    for size in SIZES {
        store(&dir, &hashes, &entries, size);
        assert_eq!(
            root_from_tiles(&dir, size),
            roots[&size],
            "root at size {size}"
        );
        check_bundles(&dir, size, &entries);
    }
    // Every size verifies again once all are stored (the partials of
    // earlier sizes are still there: pruning is the log's decision).
    for size in SIZES {
        assert_eq!(
            root_from_tiles(&dir, size),
            roots[&size],
            "root at size {size}"
        );
    }
    // The spec's example, file by file: size 70,000 is 273 full level-0
    // tiles and a partial of 112, one full level-1 tile and a partial of
    // 17, a level-2 partial of 1. Size 256 added the level-1 partial of 1.
    let root = dir.root();
    for f in [
        "tile/0/272",
        "tile/0/273.p/112",
        "tile/1/000",
        "tile/1/001.p/17",
        "tile/2/000.p/1",
        "tile/1/000.p/1",
        "tile/entries/272",
        "tile/entries/273.p/112",
    ] {
        assert!(root.join(f).is_file(), "{f}");
    }
    assert!(!root.join("tile/0/273").exists());
    assert!(!root.join("tile/2/000").exists());
    // Spot checks of stored bytes against the formula.
    let mut out = [0u8; 32];
    assert!(dir.read_tile(1, 0, 255, &mut out).expect("read"));
    assert_eq!(out, mth(&entries[255 * 256..256 * 256]));
    let level2 = std::fs::read(root.join("tile/2/000.p/1")).expect("read");
    assert_eq!(level2, mth(&entries[..65_536]));

    // The verifier is not vacuous: one wrong hash it uses changes the root
    // (a root reads the highest tile covering each subtree: the level-1
    // hash of entries 0..256 at size 257, leaf hashes past 256 at 300).
    for (level, position, size) in [(1, 0, 257), (0, 260, 300)] {
        let mut wrong = hashes.clone();
        wrong[level][position][0] ^= 1;
        let tmp = tempfile::tempdir().expect("tempdir");
        let other = TileDir::open(&tmp.path().join("log")).expect("open");
        store(&other, &wrong, &entries, size);
        assert_ne!(
            root_from_tiles(&other, size),
            roots_or_mth(&roots, &entries, size),
            "hash {position} of level {level} at size {size}"
        );
    }
}

fn roots_or_mth(roots: &HashMap<u64, Hash>, entries: &[Vec<u8>], size: u64) -> Hash {
    roots
        .get(&size)
        .copied()
        .unwrap_or_else(|| mth(&entries[..size as usize]))
}
