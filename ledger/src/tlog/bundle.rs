//! The entry bundle format of C2SP tlog-tiles: each entry as a big-endian
//! uint16 length followed by its bytes, back to back, nothing else. So an
//! entry is at most 65,535 bytes, and a bundle is only valid if its last
//! entry ends exactly at its last byte.

/// The longest entry a bundle can hold: the largest uint16.
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;

/// An entry longer than [`MAX_ENTRY_LEN`] was given to [`push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an entry of {len} bytes does not fit an entry bundle (at most {MAX_ENTRY_LEN})")]
pub struct EntryTooLong {
    /// The entry's length.
    pub len: usize,
}

/// Appends `entry` to `bundle`.
///
/// # Errors
/// [`EntryTooLong`] if `entry` is longer than [`MAX_ENTRY_LEN`]; `bundle` is
/// then unchanged.
pub fn push(bundle: &mut Vec<u8>, entry: &[u8]) -> Result<(), EntryTooLong> {
    let len = u16::try_from(entry.len()).map_err(|_| EntryTooLong { len: entry.len() })?;
    bundle.reserve(2 + entry.len());
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(entry);
    Ok(())
}

/// Every entry of `bytes`, in order; `None` if the bundle is malformed (a
/// length prefix cut short, an entry running past the end).
pub fn split(bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let mut entries = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (entry, tail) = next(rest)?;
        entries.push(entry);
        rest = tail;
    }
    Some(entries)
}

/// Entry `n` (from 0) of `bytes`; `None` if the bundle has fewer entries or
/// is malformed before entry `n` ends. Bytes after it are not looked at.
pub fn nth(bytes: &[u8], n: usize) -> Option<&[u8]> {
    let mut rest = bytes;
    for _ in 0..n {
        rest = next(rest)?.1;
    }
    next(rest).map(|(entry, _)| entry)
}

/// How many entries `bytes` holds; `None` if it is malformed.
pub fn count(bytes: &[u8]) -> Option<usize> {
    let mut rest = bytes;
    let mut n = 0;
    while !rest.is_empty() {
        rest = next(rest)?.1;
        n += 1;
    }
    Some(n)
}

/// The first entry of a non-empty `bytes` and what follows it.
fn next(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_format_is_a_big_endian_length_then_the_bytes() {
        let mut b = Vec::new();
        push(&mut b, b"ab").expect("push");
        push(&mut b, b"").expect("push");
        push(&mut b, &[7; 258]).expect("push");
        assert_eq!(&b[..7], &[0, 2, b'a', b'b', 0, 0, 1]);
        assert_eq!(b[7], 2, "258 = 0x0102, big-endian");
        assert_eq!(b.len(), 2 + 2 + 2 + 2 + 258);
        let entries = split(&b).expect("split");
        assert_eq!(entries, vec![&b"ab"[..], b"", &[7; 258]]);
        assert_eq!(nth(&b, 0), Some(&b"ab"[..]));
        assert_eq!(nth(&b, 1), Some(&b""[..]));
        assert_eq!(nth(&b, 2), Some(&[7u8; 258][..]));
        assert_eq!(nth(&b, 3), None);
        assert_eq!(count(&b), Some(3));
        assert_eq!(split(&[]), Some(vec![]));
        assert_eq!(count(&[]), Some(0));
    }

    #[test]
    fn the_longest_entry_fits_and_one_more_byte_does_not() {
        let longest = vec![0xa5; MAX_ENTRY_LEN];
        let mut b = Vec::new();
        push(&mut b, &longest).expect("65,535 bytes fit");
        assert_eq!(&b[..2], &[0xff, 0xff]);
        assert_eq!(split(&b), Some(vec![&longest[..]]));
        let before = b.clone();
        assert_eq!(
            push(&mut b, &vec![0; MAX_ENTRY_LEN + 1]),
            Err(EntryTooLong { len: 65_536 })
        );
        assert_eq!(b, before, "a refused entry leaves the bundle unchanged");
    }

    #[test]
    fn malformed_bundles_are_refused() {
        let mut b = Vec::new();
        push(&mut b, b"abc").expect("push");
        push(&mut b, b"de").expect("push");
        // Cut at every offset but the entry boundaries.
        for cut in 0..b.len() {
            let valid = cut == 0 || cut == 5;
            assert_eq!(split(&b[..cut]).is_some(), valid, "cut at {cut}");
            assert_eq!(count(&b[..cut]).is_some(), valid, "cut at {cut}");
        }
        // A trailing byte: half a length prefix.
        let mut trailing = b.clone();
        trailing.push(0);
        assert_eq!(split(&trailing), None);
        // A length running past the end.
        assert_eq!(split(&[0, 4, 1, 2, 3]), None);
        assert_eq!(nth(&[0, 4, 1, 2, 3], 0), None);
        // nth reads only as far as it needs.
        assert_eq!(nth(&trailing, 1), Some(&b"de"[..]));
        assert_eq!(nth(&trailing, 2), None);
    }

    proptest! {
        #[test]
        fn split_inverts_push(entries in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..40)) {
            let mut b = Vec::new();
            for e in &entries {
                push(&mut b, e).expect("push");
            }
            let got = split(&b).expect("split");
            prop_assert_eq!(got.len(), entries.len());
            for (i, e) in entries.iter().enumerate() {
                prop_assert_eq!(got[i], &e[..]);
                prop_assert_eq!(nth(&b, i), Some(&e[..]));
            }
            prop_assert_eq!(count(&b), Some(entries.len()));
        }
    }
}
