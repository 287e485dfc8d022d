//! The file-system steps of issuing a PKI: private files created
//! exclusively and fsynced, a staging directory renamed into place, and
//! the fsyncs of the directories that hold them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::error::{PkiError, io};

/// Creates `path` (and its directory, mode 0700) with `mode`; never
/// follows or reuses an existing file or symlink (`O_EXCL`), so a key is
/// never written into a file others can read.
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    if let Some(parent) = path.parent() {
        xgate_ledger::fsutil::create_private_dir(parent).map_err(io(parent))?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// The text of `path`.
pub(crate) fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io(path))
}

/// A new, empty directory beside `dir` (mode 0700, a unique name, created
/// exclusively), removed when dropped.
pub(crate) fn staging_dir(dir: &Path) -> Result<tempfile::TempDir, PkiError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pki".into());
    let parent = parent_of(dir);
    fs::create_dir_all(&parent).map_err(io(&parent))?;
    tempfile::Builder::new()
        .prefix(&format!(".{name}.new-"))
        .tempdir_in(&parent)
        .map_err(io(&parent))
}

/// The directory holding `dir` (`.` for a bare name).
pub(crate) fn parent_of(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Fsyncs `dir` and every directory under it, so the names of the files
/// written there are durable before the PKI is renamed into place.
pub(crate) fn sync_dirs(dir: &Path) -> Result<(), PkiError> {
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if fs::symlink_metadata(&path).map_err(io(&path))?.is_dir() {
            sync_dirs(&path)?;
        }
    }
    sync_dir(dir)
}

/// Fsyncs one directory.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), PkiError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}
