//! Crash-safe, private small-file writes for a data directory: the log's
//! key and checkpoint copy, and the gateway's files beside them.

use std::fs::{self, File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Replaces `path` with `contents` atomically and durably, with `mode`: write
/// a temporary file beside it, fsync it, rename it over `path`, fsync the
/// directory. A crash leaves the old file or the new one, never a torn one.
///
/// The temporary file has a random name and is created exclusively
/// (`O_CREAT | O_EXCL`, with mode 0600 until it is complete), so a file or
/// symlink someone planted at a predictable name is never written through,
/// and two writers never share one. A symlink at `path` itself is replaced,
/// not followed.
///
/// # Errors
/// Any I/O failure; then `path` is unchanged.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(parent)?;
    tmp.write_all(contents)?;
    if mode != 0o600 {
        tmp.as_file()
            .set_permissions(Permissions::from_mode(mode))?;
    }
    tmp.as_file().sync_all()?;
    // On failure the temporary file is removed when `e.file` drops.
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(parent)?.sync_all()
}

/// Creates `dir` and any missing parents with mode 0700 (parents that
/// exist are left as they are), durably: `dir` and its parent are fsynced
/// whether or not this call created them, so a name that an earlier
/// process created and never synced (it was killed first) is made durable
/// before anything is written under it.
///
/// # Errors
/// Any I/O failure.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    // A relative name's last ancestor is "", the working directory, which
    // cannot be opened by that name: it is ".".
    let named = |p: &Path| match p.as_os_str().is_empty() {
        true => std::path::PathBuf::from("."),
        false => p.to_path_buf(),
    };
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // Each directory made here, its parent, and `dir` with its parent.
    let mut synced = std::collections::BTreeSet::new();
    for d in missing.iter().copied().chain(std::iter::once(dir)) {
        for p in std::iter::once(named(d)).chain(d.parent().map(named)) {
            if synced.insert(p.clone()) {
                File::open(&p)?.sync_all()?;
            }
        }
    }
    Ok(())
}

/// Creates `dir` durably ([`create_private_dir`]) and opens it locked
/// exclusively for as long as the returned descriptor lives: one owner of
/// the files in it per process and machine. `what` names the owner in the
/// error when another holds the lock.
///
/// # Errors
/// [`std::io::ErrorKind::WouldBlock`] if another descriptor holds the
/// lock; any other I/O failure.
#[cfg(feature = "sled")]
pub fn open_locked_dir(dir: &Path, what: &str) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{FlockOperation, Mode, OFlags};
    create_private_dir(dir)?;
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).map_err(|e| {
        if e == rustix::io::Errno::WOULDBLOCK {
            std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!("the {what} is open elsewhere"),
            )
        } else {
            e.into()
        }
    })?;
    Ok(fd)
}

/// Copies `from` (a file, or a directory and everything in it) to `to`,
/// keeping file modes, new directories private (0700), and makes the copy
/// durable: every file and directory is fsynced.
///
/// # Errors
/// Any I/O failure, with the path it happened on.
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), (std::path::PathBuf, std::io::Error)> {
    let at = |p: &Path| {
        let p = p.to_path_buf();
        move |e| (p, e)
    };
    if !from.is_dir() {
        fs::copy(from, to).map_err(at(from))?;
        return File::open(to).and_then(|f| f.sync_all()).map_err(at(to));
    }
    create_private_dir(to).map_err(at(to))?;
    for entry in fs::read_dir(from).map_err(at(from))? {
        let entry = entry.map_err(at(from))?;
        copy_tree(&entry.path(), &to.join(entry.file_name()))?;
    }
    File::open(to).and_then(|d| d.sync_all()).map_err(at(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn a_symlink_at_the_old_temporary_name_is_never_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        fs::write(&victim, b"untouched").expect("write");
        let path = dir.path().join("checkpoint");
        // Where earlier versions put their temporary file.
        std::os::unix::fs::symlink(&victim, path.with_extension("tmp")).expect("symlink");
        write_atomic(&path, b"new", 0o600).expect("write");
        assert_eq!(fs::read(&victim).expect("read"), b"untouched");
        assert_eq!(fs::read(&path).expect("read"), b"new");
        assert_eq!(mode(&path), 0o600);
        // A symlink at the path itself is replaced by the file.
        fs::remove_file(&path).expect("remove");
        std::os::unix::fs::symlink(&victim, &path).expect("symlink");
        write_atomic(&path, b"newer", 0o644).expect("write");
        assert_eq!(fs::read(&victim).expect("read"), b"untouched");
        assert!(fs::symlink_metadata(&path).expect("meta").is_file());
        assert_eq!(mode(&path), 0o644);
        // Nothing is left behind but the file, the victim and the old link.
        assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 3);
    }
}
