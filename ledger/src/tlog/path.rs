//! The resource paths of C2SP tlog-tiles, relative to the log's prefix:
//! `checkpoint`, `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`.
//!
//! `<N>` is the index in groups of three decimal digits, most significant
//! first, every group but the last prefixed with `x` (1234067 is
//! `x001/x234/067`), so a directory never shares a name with a file. `<L>`
//! is 0 to 63 and `<W>` 1 to 255, both decimal without leading zeros.
//!
//! [`parse`] is the exact inverse of the builders: it accepts only the one
//! spelling they produce, so a server that maps URLs through it never serves
//! one file under two names, and a path it accepts names a file this crate
//! could have written.

use std::fmt::Write;

use super::shape::{HEIGHT, WIDTH};

/// The signed checkpoint's path, the one mutable resource.
pub const CHECKPOINT: &str = "checkpoint";

/// The highest tile level the spec allows.
pub const MAX_LEVEL: u8 = 63;

/// How many hashes (or entries) a tile (or bundle) holds: all 256, or the
/// first 1 to 255 of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    /// A full tile: 256 hashes, or a full bundle of 256 entries. Immutable.
    Full,
    /// A partial tile or bundle of 1 to 255 hashes or entries, served for a
    /// tree size a checkpoint was signed for. `Partial(0)` is not a width:
    /// its path is one [`parse`] refuses and `TileDir` refuses to write it.
    Partial(u8),
}

impl Width {
    /// How many hashes or entries this width stands for.
    pub fn count(self) -> usize {
        match self {
            Width::Full => WIDTH as usize,
            Width::Partial(w) => usize::from(w),
        }
    }

    /// The width of the rightmost tile at `level` for a tree of `size`
    /// entries, if that tile is partial ([`partial_width`] as a `Width`).
    pub fn partial_at(size: u64, level: u8) -> Option<Width> {
        match partial_width(size, level) {
            0 => None,
            w => Some(Width::Partial(w)),
        }
    }
}

/// A resource of the log, as named by its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `checkpoint`.
    Checkpoint,
    /// `tile/<level>/<index>[.p/<width>]`: hashes of the tree.
    Tile {
        /// 0 (leaf hashes) to 63.
        level: u8,
        /// The tile's index within its level.
        index: u64,
        /// Full or partial.
        width: Width,
    },
    /// `tile/entries/<index>[.p/<width>]`: the entries of level-0 tile `index`.
    Bundle {
        /// The bundle's index (entries `index * 256 ..`).
        index: u64,
        /// Full or partial.
        width: Width,
    },
}

impl Resource {
    /// The resource's path relative to the log's prefix.
    pub fn path(&self) -> String {
        match *self {
            Resource::Checkpoint => CHECKPOINT.to_owned(),
            Resource::Tile {
                level,
                index,
                width,
            } => tile_path(level, index, width),
            Resource::Bundle { index, width } => bundle_path(index, width),
        }
    }
}

/// The path of tile `index` at `level`: `tile/0/x001/x234/067` for a full
/// tile, `tile/0/x001/x234/067.p/3` for a partial one of width 3.
pub fn tile_path(level: u8, index: u64, width: Width) -> String {
    let mut path = format!("tile/{level}/");
    push_index(&mut path, index, width);
    path
}

/// The path of entry bundle `index`: `tile/entries/x001/x234/067`, or
/// `tile/entries/x001/x234/067.p/3` for a partial bundle of 3 entries.
pub fn bundle_path(index: u64, width: Width) -> String {
    let mut path = String::from("tile/entries/");
    push_index(&mut path, index, width);
    path
}

/// `floor(size / 256^level) mod 256`: the width of the partial tile at
/// `level` for a tree of `size` entries, 0 when that level has none (the
/// spec's "empty tiles MUST NOT be served").
pub fn partial_width(size: u64, level: u8) -> u8 {
    let shift = u32::from(level) * u32::from(HEIGHT);
    // Levels from 8 up span more than 2^64 entries each: always empty.
    size.checked_shr(shift).map_or(0, |n| (n % WIDTH) as u8)
}

/// Appends `<N>[.p/<W>]` for `index` to `path`.
fn push_index(path: &mut String, index: u64, width: Width) {
    // u64::MAX has 20 digits: 7 groups.
    let mut groups = [0u64; 7];
    let mut n = index;
    let mut len = 0;
    loop {
        groups[len] = n % 1000;
        len += 1;
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    for (i, group) in groups[..len].iter().rev().enumerate() {
        // Writing to a String cannot fail.
        let _ = if i + 1 < len {
            write!(path, "x{group:03}/")
        } else {
            write!(path, "{group:03}")
        };
    }
    if let Width::Partial(w) = width {
        let _ = write!(path, ".p/{w}");
    }
}

/// The resource `path` names, if it is spelled exactly as [`tile_path`],
/// [`bundle_path`] or [`CHECKPOINT`] spell it: no leading or trailing slash,
/// no leading zeros in a level or width, no empty `x000/` groups, widths 1
/// to 255, levels 0 to 63, indices that fit in 64 bits.
pub fn parse(path: &str) -> Option<Resource> {
    if path == CHECKPOINT {
        return Some(Resource::Checkpoint);
    }
    let rest = path.strip_prefix("tile/")?;
    let resource = match rest.strip_prefix("entries/") {
        Some(n) => {
            let (index, width) = parse_index(n)?;
            Resource::Bundle { index, width }
        }
        None => {
            let (level, n) = rest.split_once('/')?;
            let level = u8::try_from(decimal(level)?).ok()?;
            if level > MAX_LEVEL {
                return None;
            }
            let (index, width) = parse_index(n)?;
            Resource::Tile {
                level,
                index,
                width,
            }
        }
    };
    // The parsers above accept a few spellings of one number (`x000/001`,
    // `07`); only the builders' own spelling names the resource.
    (resource.path() == path).then_some(resource)
}

/// Parses `<N>[.p/<W>]`.
fn parse_index(s: &str) -> Option<(u64, Width)> {
    let (n, width) = match s.split_once(".p/") {
        Some((n, w)) => {
            let w = u8::try_from(decimal(w)?).ok()?;
            if w == 0 {
                return None;
            }
            (n, Width::Partial(w))
        }
        None => (s, Width::Full),
    };
    let mut groups = n.split('/').peekable();
    let mut index: u64 = 0;
    while let Some(group) = groups.next() {
        let digits = if groups.peek().is_some() {
            group.strip_prefix('x')?
        } else {
            group
        };
        if digits.len() != 3 {
            return None;
        }
        index = index.checked_mul(1000)?.checked_add(decimal(digits)?)?;
    }
    Some((index, width))
}

/// A non-empty run of ASCII digits (no sign, no spaces) as a number.
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn indices_are_spelled_as_the_spec_spells_them() {
        let full = |n| tile_path(0, n, Width::Full);
        assert_eq!(full(0), "tile/0/000");
        assert_eq!(full(999), "tile/0/999");
        assert_eq!(full(1000), "tile/0/x001/000");
        assert_eq!(full(1_234_067), "tile/0/x001/x234/067");
        assert_eq!(full(u64::MAX), "tile/0/x018/x446/x744/x073/x709/x551/615");
        assert_eq!(
            tile_path(0, 1_234_067, Width::Partial(3)),
            "tile/0/x001/x234/067.p/3"
        );
        assert_eq!(tile_path(63, 5, Width::Partial(1)), "tile/63/005.p/1");
        assert_eq!(tile_path(1, 0, Width::Partial(255)), "tile/1/000.p/255");
        assert_eq!(
            bundle_path(1_234_067, Width::Full),
            "tile/entries/x001/x234/067"
        );
        assert_eq!(
            bundle_path(1_234_067, Width::Partial(3)),
            "tile/entries/x001/x234/067.p/3"
        );
        assert_eq!(
            bundle_path(0, Width::Partial(255)),
            "tile/entries/000.p/255"
        );
        assert_eq!(Resource::Checkpoint.path(), "checkpoint");
    }

    #[test]
    fn the_paths_of_a_log_of_ten_million_entries() {
        // Worked out by hand from the spec for size 10^7.
        let size = 10_000_000u64;
        assert_eq!(tile_path(0, size / 256 - 1, Width::Full), "tile/0/x039/061");
        let partial = |level: u8| {
            tile_path(
                level,
                size >> (8 * u32::from(level) + 8),
                Width::partial_at(size, level).expect("partial"),
            )
        };
        assert_eq!(partial(0), "tile/0/x039/062.p/128");
        assert_eq!(partial(1), "tile/1/152.p/150");
        assert_eq!(partial(2), "tile/2/000.p/152");
        assert_eq!(partial_width(size, 3), 0);
    }

    #[test]
    fn partial_widths_follow_the_spec_examples() {
        // Size 70,000: 273 full level-0 tiles and a partial of width 112,
        // one full level-1 tile and a partial of 17, a level-2 partial of 1.
        assert_eq!(70_000 / 256, 273);
        assert_eq!(partial_width(70_000, 0), 112);
        assert_eq!(partial_width(70_000, 1), 17);
        assert_eq!(partial_width(70_000, 2), 1);
        assert_eq!(partial_width(70_000, 3), 0);
        // Size 256: one full level-0 tile, a level-1 partial of width 1.
        assert_eq!(partial_width(256, 0), 0);
        assert_eq!(partial_width(256, 1), 1);
        assert_eq!(Width::partial_at(256, 0), None);
        assert_eq!(Width::partial_at(256, 1), Some(Width::Partial(1)));
        // No level past 7 is ever partial, even for the largest tree.
        assert_eq!(partial_width(u64::MAX, 7), 255);
        assert_eq!(partial_width(u64::MAX, 8), 0);
        assert_eq!(partial_width(u64::MAX, 63), 0);
        assert_eq!(partial_width(0, 0), 0);
    }

    #[test]
    fn parse_reads_the_canonical_paths() {
        assert_eq!(parse("checkpoint"), Some(Resource::Checkpoint));
        assert_eq!(
            parse("tile/0/x001/x234/067.p/3"),
            Some(Resource::Tile {
                level: 0,
                index: 1_234_067,
                width: Width::Partial(3)
            })
        );
        assert_eq!(
            parse("tile/0/x001/002"),
            Some(Resource::Tile {
                level: 0,
                index: 1002,
                width: Width::Full
            })
        );
        assert_eq!(
            parse("tile/entries/x018/x446/x744/x073/x709/x551/615"),
            Some(Resource::Bundle {
                index: u64::MAX,
                width: Width::Full
            })
        );
        assert_eq!(
            parse("tile/63/000.p/255"),
            Some(Resource::Tile {
                level: 63,
                index: 0,
                width: Width::Partial(255)
            })
        );
    }

    #[test]
    fn parse_refuses_every_other_spelling() {
        for bad in [
            "",
            "/checkpoint",
            "checkpoint/",
            "tile",
            "tile/",
            "tile/0",
            "tile/0/",
            "tile/0/x001/x234/067.p/",
            "tile/0/x001/x234/067.p",
            "tile/0/x001/x234/",
            "tile/0/x001/x234",
            "tile/0/x001/",
            "tile/0/x001",
            "tile/1/x001/.p/abc",
            "tile/1/x001/.p/1",
            "tile/64/x001/002",
            "tile/-1/x001/002",
            "tile/abc/x001/002",
            "tile/+1/000",
            "tile/8/001/002",
            "tile/8/x001/0002",
            "tile/8/x001/-002",
            "tile/8/x001/+02",
            "tile/8/x001/002.p/256",
            "tile/0/000.p/0",
            "tile/0/000.p/07",
            "tile/0/000.p/+7",
            "tile/0/000.p/7/",
            "tile/0/000.p/7/1",
            "tile/0/000.p/1.p/1",
            "tile/0/.p/0",
            "tile/0/.p/256",
            "tile/1/01",
            "tile/1/0001",
            "tile/01/000",
            "tile/00/000",
            "tile/0/000/",
            "tile/0//000",
            "/tile/0/000",
            "tile/0/x000/001",
            "tile/0/x001/x234/067x",
            "tile/0/X001/000",
            "tile/0/x01/000",
            "tile/0/x0001/000",
            // One more than u64::MAX, and a group too many.
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tile/0/x001/x018/x446/x744/x073/x709/x551/615",
            "tile/63/x999/x999/x999/x999/x999/x999/999.p/255",
            "tile/entries/",
            "tile/entries/000/",
            "tile/entries/x000/000",
            "tile/entries/000.p/256",
            "tile/entries/000.p/00",
            "tile/entry/000",
            "tile/0/\u{0661}\u{0662}\u{0663}",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    fn width() -> impl Strategy<Value = Width> {
        prop_oneof![Just(Width::Full), (1u8..=255).prop_map(Width::Partial)]
    }

    fn index() -> impl Strategy<Value = u64> {
        // Every magnitude, from one group to seven.
        prop_oneof![0u64..1000, 0u64..10_000_000, any::<u64>()]
    }

    proptest! {
        #[test]
        fn parse_inverts_the_builders(
            level in 0u8..=MAX_LEVEL,
            index in index(),
            width in width(),
        ) {
            let tile = Resource::Tile { level, index, width };
            prop_assert_eq!(parse(&tile.path()), Some(tile));
            let bundle = Resource::Bundle { index, width };
            prop_assert_eq!(parse(&bundle.path()), Some(bundle));
        }

        #[test]
        fn parse_never_accepts_a_second_spelling(s in "tile/[0-9a-z./]{0,24}") {
            if let Some(r) = parse(&s) {
                prop_assert_eq!(r.path(), s);
            }
        }
    }
}
