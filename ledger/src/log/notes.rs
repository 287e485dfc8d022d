//! Every checkpoint the log published, oldest first, in one append-only
//! file (`ledger/checkpoints`): for auditors replaying the log's history
//! and for `Log::checkpoints`.
//!
//! Each record is `size:u64 len:u32 note` (big-endian). A record is
//! appended and `fdatasync`ed after the tiles its size needs and before
//! the tlog-tiles `checkpoint` file names it. A torn record at the end (a
//! crash mid-append) is cut off on open: its checkpoint was never handed
//! out from this file, and the journal still holds whatever it covered.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::lock::lock;
use crate::error::{Error, io_at};

/// The published checkpoints file.
pub(super) struct Notes {
    path: PathBuf,
    file: Mutex<File>,
}

impl Notes {
    /// Opens (creating if needed) the file at `path`, cutting off a torn
    /// last record, and returns it with every note it holds.
    pub fn open(path: &Path) -> Result<(Notes, Vec<(u64, String)>), Error> {
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(io_at(path))?;
        if !existed {
            sync_parent(path)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_at(path))?;
        let (notes, good) = parse(&bytes);
        if good < bytes.len() {
            file.set_len(good as u64).map_err(io_at(path))?;
            file.sync_data().map_err(io_at(path))?;
        }
        let notes = notes
            .into_iter()
            .map(|(size, note)| {
                String::from_utf8(note.to_vec())
                    .map(|n| (size, n))
                    .map_err(|_| {
                        Error::Corrupt(format!("published checkpoint {size} is not UTF-8"))
                    })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok((
            Notes {
                path: path.to_path_buf(),
                file: Mutex::new(file),
            },
            notes,
        ))
    }

    /// Appends the note of a checkpoint for `size`, durably.
    pub fn append(&self, size: u64, note: &str) -> Result<(), Error> {
        let mut record = Vec::with_capacity(12 + note.len());
        record.extend_from_slice(&size.to_be_bytes());
        record.extend_from_slice(&(note.len() as u32).to_be_bytes());
        record.extend_from_slice(note.as_bytes());
        let mut file = lock(&self.file);
        file.write_all(&record).map_err(io_at(&self.path))?;
        file.sync_data().map_err(io_at(&self.path))
    }

    /// Every note in the file, oldest first.
    pub fn read_all(&self) -> Result<Vec<(u64, String)>, Error> {
        let bytes = std::fs::read(&self.path).map_err(io_at(&self.path))?;
        parse(&bytes)
            .0
            .into_iter()
            .map(|(size, note)| {
                String::from_utf8(note.to_vec())
                    .map(|n| (size, n))
                    .map_err(|_| {
                        Error::Corrupt(format!("published checkpoint {size} is not UTF-8"))
                    })
            })
            .collect()
    }
}

/// The whole records in `bytes` and where the last one ends.
fn parse(bytes: &[u8]) -> (Vec<(u64, &[u8])>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(head) = bytes.get(at..at + 12) {
        let size = u64::from_be_bytes(head[..8].try_into().unwrap_or_default());
        let len = u32::from_be_bytes(head[8..].try_into().unwrap_or_default()) as usize;
        let Some(note) = bytes.get(at + 12..at + 12 + len) else {
            break;
        };
        out.push((size, note));
        at += 12 + len;
    }
    (out, at)
}

fn sync_parent(path: &Path) -> Result<(), Error> {
    let parent = path.parent().unwrap_or(Path::new("."));
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io_at(parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("checkpoints");
        let (notes, old) = Notes::open(&path).expect("open");
        assert!(old.is_empty());
        notes.append(3, "three").expect("append");
        notes.append(9, "nine").expect("append");
        drop(notes);
        let mut bytes = std::fs::read(&path).expect("read");
        let whole = bytes.len();
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 40, b'x']);
        std::fs::write(&path, &bytes).expect("write");
        let (notes, old) = Notes::open(&path).expect("reopen");
        assert_eq!(old, vec![(3, "three".into()), (9, "nine".into())]);
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), whole as u64);
        assert_eq!(notes.read_all().expect("read_all").len(), 2);
    }
}
