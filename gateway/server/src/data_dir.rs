//! Keeping the data directory private. It holds records waiting in inboxes,
//! medical cases, the person-hash salt, the log's signing key and (for the
//! development federation) every private key of the PKI: nobody but the
//! gateway's own user may read any of it.
//!
//! Three layers, each enough on its own for what it covers:
//!
//! - the directory is created with mode 0700, and an existing one is
//!   narrowed to it, so no other user can even list it, whatever the modes
//!   inside;
//! - `xgate serve` sets its umask to 077 before it creates anything, so
//!   every file and directory any part of it creates (sled's files, whose
//!   modes sled does not let us choose, included) is 0600 or 0700;
//! - the files the gateway and the log write themselves (key, checkpoint
//!   copy, tiles, policy, PKI keys) are written with explicit private
//!   modes, through temporary files with unique names created exclusively
//!   and fsynced before the rename ([`xgate_ledger::fsutil::write_atomic`]).
//!
//! A data directory written by an earlier version, with files readable by
//! others, is narrowed at start ([`narrow`]), and the gateway logs how many
//! entries it changed.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Group and other permission bits: none of them is ever wanted here.
const SHARED_BITS: u32 = 0o077;

/// Sets the process's umask to 077: files it creates from now on are
/// readable by its own user only, whoever creates them.
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(SHARED_BITS));
}

/// Creates `dir` (and missing parents) with mode 0700, or narrows an
/// existing `dir` to 0700, and narrows everything in it ([`narrow`]);
/// returns how many entries had their mode changed.
///
/// # Errors
/// Any I/O failure, naming nothing but what the caller passes on.
pub fn make_private(dir: &Path) -> io::Result<u64> {
    xgate_ledger::fsutil::create_private_dir(dir)?;
    narrow(dir)
}

/// Clears the group and other bits of `path` and, if it is a directory, of
/// everything under it; returns how many entries changed. Symlinks are
/// neither followed nor changed (their own mode means nothing).
///
/// # Errors
/// Any I/O failure.
pub fn narrow(path: &Path) -> io::Result<u64> {
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(0);
    }
    let mode = meta.permissions().mode();
    let mut changed = 0;
    if mode & SHARED_BITS != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode & !SHARED_BITS))?;
        changed += 1;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            changed += narrow(&entry?.path())?;
        }
    }
    Ok(changed)
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
    fn an_existing_directory_is_narrowed_without_following_symlinks() {
        let root = tempfile::tempdir().expect("tempdir");
        let outside = root.path().join("outside");
        fs::write(&outside, b"x").expect("write");
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o644)).expect("chmod");
        let dir = root.path().join("data");
        fs::create_dir_all(dir.join("db")).expect("mkdir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::set_permissions(dir.join("db"), fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::write(dir.join("db/conf"), b"x").expect("write");
        fs::set_permissions(dir.join("db/conf"), fs::Permissions::from_mode(0o644)).expect("chmod");
        std::os::unix::fs::symlink(&outside, dir.join("link")).expect("symlink");
        assert_eq!(make_private(&dir).expect("private"), 3);
        assert_eq!(
            (
                mode(&dir),
                mode(&dir.join("db")),
                mode(&dir.join("db/conf"))
            ),
            (0o700, 0o700, 0o600)
        );
        assert_eq!(mode(&outside), 0o644, "a symlink's target is not touched");
        assert_eq!(make_private(&dir).expect("again"), 0);
        let fresh = root.path().join("a/b");
        make_private(&fresh).expect("create");
        assert_eq!((mode(&root.path().join("a")), mode(&fresh)), (0o700, 0o700));
    }
}
