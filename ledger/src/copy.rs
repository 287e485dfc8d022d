//! What `compact` and `migrate` share: copying what else a data directory
//! holds (a gateway's PKI and policy), and checking that the new directory
//! opens as the same log.

use std::fs;
use std::path::Path;

use crate::error::{Error, io_at};
use crate::hash::Hash;
use crate::{Log, OpenOptions};

/// Copies every entry of `src` whose name is not in `own` into `dst`,
/// durably, keeping file modes.
pub(crate) fn copy_others(src: &Path, dst: &Path, own: &[&str]) -> Result<(), Error> {
    for entry in fs::read_dir(src).map_err(io_at(src))? {
        let entry = entry.map_err(io_at(src))?;
        if !own.iter().any(|o| entry.file_name() == *o) {
            crate::fsutil::copy_tree(&entry.path(), &dst.join(entry.file_name()))
                .map_err(|(path, source)| Error::Io { path, source })?;
        }
    }
    Ok(())
}

/// Opens the copy in `dst` and requires `entries` entries with `root`.
pub(crate) fn check_same_log(
    dst: &Path,
    options: &OpenOptions,
    entries: u64,
    root: Hash,
) -> Result<(), Error> {
    let copy = Log::open_existing(dst, options)?;
    if copy.size() != entries || copy.root_at(entries)? != root {
        return Err(Error::Corrupt(format!(
            "the copy in {} is not the same log",
            dst.display()
        )));
    }
    Ok(())
}
