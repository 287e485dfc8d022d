//! What one journal record holds, and its encoding.
//!
//! A commit is durable once its record is: the record carries everything
//! the commit changes (its entries, the caller's small writes, the bodies it
//! keeps and the checkpoint it signed), so that whatever else the commit
//! writes afterwards (the store, the body files, tiles and bundles) can be
//! rebuilt from it after a crash. Reapplying a record is exact: small writes
//! are puts and deletes of whole values, bodies go back to the positions the
//! record names.
//!
//! Encoding, all integers big-endian:
//!
//! ```text
//! record   = kind:u8 (1 = append, 2 = state writes only)
//!            [first:u64 count:u32 count * (len:u32 entry)]      (append only)
//!            nwrites:u32 nwrites * (klen:u32 key present:u8 [vlen:u32 value])
//!            nbodies:u32 nbodies * (class:u8 locator:20 bytes)  (bytes: locator.len)
//!            nlen:u32 checkpoint note (nlen 0: none)
//! ```

use crate::blobs::Locator;
use crate::error::Error;

const APPEND: u8 = 1;
const STATE: u8 = 2;

/// Which body files a body lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyClass {
    /// Until it is dropped.
    Dropped = 1,
    /// For good.
    Kept = 2,
}

/// A body as a record holds it: where it goes and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Body {
    pub class: BodyClass,
    pub at: Locator,
    pub bytes: Vec<u8>,
}

/// One small write: a value, or `None` for a deletion.
pub(crate) type Write = (Vec<u8>, Option<Vec<u8>>);

/// A decoded record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Record {
    /// The entries' first index and the entries, for an append.
    pub entries: Option<(u64, Vec<Vec<u8>>)>,
    /// Store writes, in the order they apply.
    pub writes: Vec<Write>,
    pub bodies: Vec<Body>,
    /// The checkpoint signed with this commit, if any.
    pub checkpoint: Option<String>,
}

/// Encodes a record without copying the caller's parts into a `Record`
/// first: entries, writes, bodies and the note, as the commit has them.
pub(crate) fn encode<E: AsRef<[u8]>>(
    entries: Option<(u64, &[E])>,
    writes: &[Write],
    bodies: &[Body],
    checkpoint: Option<&str>,
) -> Vec<u8> {
    let mut size = 1 + 12 + 4 + 4 + 4;
    if let Some((_, entries)) = entries {
        size += entries.iter().map(|e| 4 + e.as_ref().len()).sum::<usize>();
    }
    size += writes
        .iter()
        .map(|(k, v)| 9 + k.len() + v.as_ref().map_or(0, Vec::len))
        .sum::<usize>();
    size += bodies.iter().map(|b| 21 + b.bytes.len()).sum::<usize>();
    size += checkpoint.map_or(0, str::len);
    let mut out = Vec::with_capacity(size);
    match entries {
        Some((first, entries)) => {
            out.push(APPEND);
            out.extend_from_slice(&first.to_be_bytes());
            put_len(&mut out, entries.len());
            for e in entries {
                put_bytes(&mut out, e.as_ref());
            }
        }
        None => out.push(STATE),
    }
    put_len(&mut out, writes.len());
    for (key, value) in writes {
        put_bytes(&mut out, key);
        match value {
            Some(v) => {
                out.push(1);
                put_bytes(&mut out, v);
            }
            None => out.push(0),
        }
    }
    put_len(&mut out, bodies.len());
    for body in bodies {
        out.push(body.class as u8);
        out.extend_from_slice(&body.at.to_bytes());
        out.extend_from_slice(&body.bytes);
    }
    put_bytes(&mut out, checkpoint.unwrap_or("").as_bytes());
    out
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Every length here is bounded far below 4 GiB: entries by the log's
    // limit, writes and bodies by the batch a committer can hold.
    out.extend_from_slice(&(len as u32).to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Decodes a record. `seq` names it in the error.
pub(crate) fn decode(seq: u64, bytes: &[u8]) -> Result<Record, Error> {
    let bad = || Error::Corrupt(format!("journal record {seq} is malformed"));
    let mut r = Reader { bytes };
    let mut record = Record::default();
    match r.u8().ok_or_else(bad)? {
        APPEND => {
            let first = r.u64().ok_or_else(bad)?;
            let count = r.u32().ok_or_else(bad)?;
            let mut entries = Vec::with_capacity(count.min(1 << 16) as usize);
            for _ in 0..count {
                entries.push(r.bytes().ok_or_else(bad)?.to_vec());
            }
            record.entries = Some((first, entries));
        }
        STATE => {}
        _ => return Err(bad()),
    }
    let writes = r.u32().ok_or_else(bad)?;
    for _ in 0..writes {
        let key = r.bytes().ok_or_else(bad)?.to_vec();
        let value = match r.u8().ok_or_else(bad)? {
            0 => None,
            1 => Some(r.bytes().ok_or_else(bad)?.to_vec()),
            _ => return Err(bad()),
        };
        record.writes.push((key, value));
    }
    let bodies = r.u32().ok_or_else(bad)?;
    for _ in 0..bodies {
        let class = match r.u8().ok_or_else(bad)? {
            1 => BodyClass::Dropped,
            2 => BodyClass::Kept,
            _ => return Err(bad()),
        };
        let at = Locator::from_bytes(r.take(20).ok_or_else(bad)?).ok_or_else(bad)?;
        let bytes = r.take(at.len as usize).ok_or_else(bad)?.to_vec();
        record.bodies.push(Body { class, at, bytes });
    }
    let note = r.bytes().ok_or_else(bad)?;
    if !note.is_empty() {
        record.checkpoint = Some(String::from_utf8(note.to_vec()).map_err(|_| bad())?);
    }
    if !r.bytes.is_empty() {
        return Err(bad());
    }
    Ok(record)
}

/// A cursor over a record's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            entries: Some((41, vec![b"alpha".to_vec(), Vec::new(), vec![7; 300]])),
            writes: vec![
                (b"Ga1".to_vec(), Some(b"value".to_vec())),
                (b"Gb".to_vec(), None),
            ],
            bodies: vec![Body {
                class: BodyClass::Dropped,
                at: Locator {
                    file: 3,
                    offset: 4096,
                    len: 5,
                },
                bytes: b"hello".to_vec(),
            }],
            checkpoint: Some("origin\n44\nroot\n\n— sig\n".into()),
        }
    }

    fn encode_record(r: &Record) -> Vec<u8> {
        let entries = r.entries.as_ref().map(|(f, e)| (*f, e.as_slice()));
        encode(entries, &r.writes, &r.bodies, r.checkpoint.as_deref())
    }

    #[test]
    fn records_round_trip() {
        let r = sample();
        assert_eq!(decode(0, &encode_record(&r)).expect("decode"), r);
        let state = Record {
            entries: None,
            checkpoint: None,
            ..sample()
        };
        assert_eq!(decode(0, &encode_record(&state)).expect("decode"), state);
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_refused() {
        let bytes = encode_record(&sample());
        for cut in 0..bytes.len() {
            assert!(decode(9, &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(9, &longer).is_err());
        let mut kind = bytes;
        kind[0] = 3;
        assert!(decode(9, &kind).is_err());
    }
}
