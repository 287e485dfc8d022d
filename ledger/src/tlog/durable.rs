//! Durable, immutable file creation beside directory descriptors: the
//! system calls under `TileDir`, with no knowledge of tiles.
//!
//! Everything works relative to an open directory (`openat`, `mkdirat`,
//! `renameat2`, ...), never through a symlink: directories are opened
//! `O_NOFOLLOW`, temporary files are created `O_CREAT | O_EXCL` (which
//! refuses any existing name, a symlink included), and a target name that
//! turns out to be a symlink is reported as different contents, never read
//! through.
//!
//! A file is created in four steps: a temporary file with a random name is
//! written, made mode 0444 and `fsync`ed; then it is moved to its name only
//! if that name is free (`RENAME_NOREPLACE`). So a name, once it exists,
//! holds complete contents that never change. Making the *name* durable is
//! the caller's business: an `fsync` of the directory, which `TileDir`
//! batches.

use std::fs::{File, Permissions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

/// Mode of every directory of the tree: it is meant to be served.
pub(super) const DIR_MODE: u32 = 0o755;
/// Mode of every immutable file: readable by anyone, writable by no one.
pub(super) const FILE_MODE: u32 = 0o444;

/// Suffix of every temporary file; with a leading `.` it makes the pattern
/// [`is_temporary`] recognises. `fsutil::write_atomic`'s temporaries (the
/// checkpoint's) follow it too.
const TEMP_SUFFIX: &str = ".tmp";

/// Opens the directory `name` in `parent`, refusing a symlink.
pub(super) fn open_dir(parent: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory `name` in `parent`, creating it if missing. A new
/// directory gets mode 0755 whatever the umask, and is made durable at once
/// (`fsync` of it and of `parent`, as sunlight's `durable.Mkdir` does), so
/// the files later created in it only need their own directory synced.
/// Returns the directory and whether it was created.
pub(super) fn make_dir(parent: BorrowedFd<'_>, name: &str) -> io::Result<(OwnedFd, bool)> {
    match open_dir(parent, name) {
        Ok(fd) => return Ok((fd, false)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match rfs::mkdirat(parent, name, Mode::from_raw_mode(DIR_MODE)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let fd = open_dir(parent, name)?;
    rfs::fchmod(&fd, Mode::from_raw_mode(DIR_MODE))?;
    rfs::fsync(&fd)?;
    rfs::fsync(parent)?;
    Ok((fd, true))
}

/// What [`create_immutable`] found or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The file is new.
    Created,
    /// A file with exactly these contents was already there.
    Identical,
    /// Something else is there: other contents, another length, a symlink,
    /// a directory. It was left as it is.
    Differs,
}

/// Creates `name` in `dir` with `contents`, mode 0444, never replacing an
/// existing name (see the module doc for the steps). An existing name is
/// compared instead: the same bytes are [`Outcome::Identical`] (a second
/// put after a crash that followed the first), anything else
/// [`Outcome::Differs`]. The caller still has to `fsync(dir)` to make a new
/// name durable.
///
/// # Errors
/// Any I/O failure; the temporary file is removed (best effort; a crash
/// leaves it for [`is_temporary`] to find).
pub(super) fn create_immutable(
    dir: BorrowedFd<'_>,
    name: &str,
    contents: &[u8],
) -> io::Result<Outcome> {
    // Re-puts are the normal case after a crash: compare before writing.
    if let Some(outcome) = compare(dir, name, contents)? {
        return Ok(outcome);
    }
    let (file, temp) = create_temp(dir, name)?;
    let placed = write_and_sync(file, contents)
        .and_then(|()| place(dir, &temp, name, Placement::RenameNoReplace));
    match placed {
        Ok(true) => Ok(Outcome::Created),
        Ok(false) => {
            let _ = rfs::unlinkat(dir, temp.as_str(), AtFlags::empty());
            // The name appeared between the compare and the move.
            compare(dir, name, contents)?.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
        Err(e) => {
            let _ = rfs::unlinkat(dir, temp.as_str(), AtFlags::empty());
            Err(e)
        }
    }
}

fn write_and_sync(mut file: File, contents: &[u8]) -> io::Result<()> {
    file.write_all(contents)?;
    // An explicit chmod: the mode given at creation is cut by the umask.
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    // fsync, not fdatasync: the file is new, so both have to write its
    // inode anyway, and fsync guarantees the mode goes with it.
    file.sync_all()
}

/// Creates a temporary file beside `target` in `dir`, exclusively
/// (`O_CREAT | O_EXCL | O_NOFOLLOW`): an existing name, symlink or not, is
/// never opened. Returns it and its name.
fn create_temp(dir: BorrowedFd<'_>, target: &str) -> io::Result<(File, String)> {
    let mut tries = 0;
    loop {
        let nonce = getrandom::u64().map_err(|e| match e.raw_os_error() {
            Some(errno) => io::Error::from_raw_os_error(errno),
            None => io::Error::other("no system random source"),
        })?;
        let temp = format!(".{target}.{nonce:016x}{TEMP_SUFFIX}");
        match create_exclusive(dir, &temp) {
            Ok(file) => return Ok((file, temp)),
            // A collision of 64 random bits: only a planted name does that.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 4 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Creates `name` in `dir` for writing, failing if the name exists in any
/// form (a symlink is not followed).
pub(super) fn create_exclusive(dir: BorrowedFd<'_>, name: &str) -> io::Result<File> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

/// How [`place`] moves a temporary file to its name without replacing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Placement {
    /// `renameat2(RENAME_NOREPLACE)`: atomic, Linux 3.15+, most file systems.
    RenameNoReplace,
    /// `linkat` (fails on an existing name) then `unlinkat` of the temporary
    /// name: for file systems that refuse `RENAME_NOREPLACE`.
    Link,
    /// A check for the name then a plain `renameat`: for file systems with
    /// neither. Not atomic against another writer, but the tree has one
    /// writer (`TileDir`'s lock, and the data directory's lock above it).
    CheckThenRename,
}

/// Moves `temp` to `name` in `dir` if `name` does not exist, starting with
/// `how` and falling back to the next [`Placement`] when the file system
/// does not support one. Returns whether it moved (`false`: `name` exists
/// and `temp` is still there).
pub(super) fn place(
    dir: BorrowedFd<'_>,
    temp: &str,
    name: &str,
    how: Placement,
) -> io::Result<bool> {
    match how {
        Placement::RenameNoReplace => {
            match rfs::renameat_with(dir, temp, dir, name, RenameFlags::NOREPLACE) {
                Ok(()) => Ok(true),
                Err(Errno::EXIST) => Ok(false),
                Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                    place(dir, temp, name, Placement::Link)
                }
                Err(e) => Err(e.into()),
            }
        }
        Placement::Link => match rfs::linkat(dir, temp, dir, name, AtFlags::empty()) {
            Ok(()) => {
                // The file is in place; a temporary name left behind by a
                // failure here is swept at the next open.
                let _ = rfs::unlinkat(dir, temp, AtFlags::empty());
                Ok(true)
            }
            Err(Errno::EXIST) => Ok(false),
            Err(Errno::PERM | Errno::OPNOTSUPP | Errno::NOSYS) => {
                place(dir, temp, name, Placement::CheckThenRename)
            }
            Err(e) => Err(e.into()),
        },
        Placement::CheckThenRename => match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(false),
            Err(Errno::NOENT) => {
                rfs::renameat(dir, temp, dir, name)?;
                Ok(true)
            }
            Err(e) => Err(e.into()),
        },
    }
}

/// Compares the file `name` in `dir` with `contents`: `None` if there is no
/// such name, else whether it is a regular file with exactly these bytes.
pub(super) fn compare(
    dir: BorrowedFd<'_>,
    name: &str,
    contents: &[u8],
) -> io::Result<Option<Outcome>> {
    let (file, len) = match open_regular(dir, name) {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(Some(Outcome::Differs)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if len != contents.len() as u64 {
        return Ok(Some(Outcome::Differs));
    }
    let mut existing = Vec::with_capacity(contents.len());
    // One byte more than expected tells a file that grew since the stat.
    file.take(contents.len() as u64 + 1)
        .read_to_end(&mut existing)?;
    Ok(Some(if existing == contents {
        Outcome::Identical
    } else {
        Outcome::Differs
    }))
}

/// Opens `path` (relative to `dir`) for reading if it is a regular file,
/// with its length: `Ok(None)` if it is anything else (a symlink at its last
/// component, a directory, a FIFO, which `O_NONBLOCK` keeps from blocking
/// the open).
pub(super) fn open_regular(dir: BorrowedFd<'_>, path: &str) -> io::Result<Option<(File, u64)>> {
    let fd = match rfs::openat(
        dir,
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::LOOP) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // One fstat (std's metadata() may take two system calls).
    let stat = rfs::fstat(&fd)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    Ok(Some((File::from(fd), stat.st_size as u64)))
}

/// Whether `name` looks like a temporary file of this module or of
/// `fsutil::write_atomic`: `.<anything>.tmp`.
pub(super) fn is_temporary(name: &str) -> bool {
    name.len() > 1 + TEMP_SUFFIX.len() && name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

/// An entry of a directory listing.
pub(super) struct Entry {
    /// Its name (names that are not UTF-8 are skipped: none of ours is).
    pub name: String,
    /// Whether it is a directory (not following symlinks).
    pub is_dir: bool,
}

/// The entries of `dir`, without `.` and `..`.
pub(super) fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name == "." || name == ".." {
            continue;
        }
        let kind = match entry.file_type() {
            // Some file systems do not fill in d_type.
            FileType::Unknown => {
                FileType::from_raw_mode(rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?.st_mode)
            }
            kind => kind,
        };
        entries.push(Entry {
            name: name.to_owned(),
            is_dir: kind == FileType::Directory,
        });
    }
    Ok(entries)
}

/// `fsync` of a directory (or file) descriptor.
pub(super) fn sync(fd: impl AsFd) -> io::Result<()> {
    Ok(rfs::fsync(fd)?)
}

/// Removes the file (or symlink) `name` from `dir`.
pub(super) fn remove_file(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    Ok(rfs::unlinkat(dir, name, AtFlags::empty())?)
}

/// Removes the empty directory `name` from `dir`.
pub(super) fn remove_dir(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    Ok(rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;

    fn root(dir: &tempfile::TempDir) -> OwnedFd {
        OwnedFd::from(File::open(dir.path()).expect("open dir"))
    }

    #[test]
    fn a_symlink_at_a_temporary_name_is_never_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fd = root(&dir);
        let victim = dir.path().join("victim");
        fs::write(&victim, b"untouched").expect("write");
        let temp = ".067.0123456789abcdef.tmp";
        std::os::unix::fs::symlink(&victim, dir.path().join(temp)).expect("symlink");
        let err = create_exclusive(fd.as_fd(), temp).expect_err("a planted name is refused");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        // A dangling symlink is no way in either.
        let dangling = ".068.0123456789abcdef.tmp";
        std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join(dangling))
            .expect("symlink");
        assert!(create_exclusive(fd.as_fd(), dangling).is_err());
        assert!(!dir.path().join("nowhere").exists());
        assert_eq!(fs::read(&victim).expect("read"), b"untouched");
    }

    #[test]
    fn every_placement_refuses_to_replace() {
        for how in [
            Placement::RenameNoReplace,
            Placement::Link,
            Placement::CheckThenRename,
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let fd = root(&dir);
            fs::write(dir.path().join(".t1.tmp"), b"new").expect("write");
            assert!(
                place(fd.as_fd(), ".t1.tmp", "name", how).expect("place"),
                "{how:?}"
            );
            assert_eq!(fs::read(dir.path().join("name")).expect("read"), b"new");
            assert!(!dir.path().join(".t1.tmp").exists(), "{how:?}");
            fs::write(dir.path().join(".t2.tmp"), b"other").expect("write");
            assert!(
                !place(fd.as_fd(), ".t2.tmp", "name", how).expect("place"),
                "{how:?}"
            );
            assert_eq!(fs::read(dir.path().join("name")).expect("read"), b"new");
            assert!(dir.path().join(".t2.tmp").exists(), "the caller removes it");
        }
    }

    #[test]
    fn create_immutable_creates_once_then_compares() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fd = root(&dir);
        assert_eq!(
            create_immutable(fd.as_fd(), "f", b"abc").expect("create"),
            Outcome::Created
        );
        let meta = fs::metadata(dir.path().join("f")).expect("meta");
        assert_eq!(meta.mode() & 0o777, FILE_MODE);
        assert_eq!(
            create_immutable(fd.as_fd(), "f", b"abc").expect("again"),
            Outcome::Identical
        );
        assert_eq!(
            create_immutable(fd.as_fd(), "f", b"abd").expect("other"),
            Outcome::Differs
        );
        assert_eq!(
            create_immutable(fd.as_fd(), "f", b"abcd").expect("longer"),
            Outcome::Differs
        );
        assert_eq!(fs::read(dir.path().join("f")).expect("read"), b"abc");
        // Nothing left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    #[test]
    fn a_symlink_or_a_directory_at_the_name_differs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fd = root(&dir);
        fs::write(dir.path().join("victim"), b"abc").expect("write");
        std::os::unix::fs::symlink(dir.path().join("victim"), dir.path().join("link"))
            .expect("symlink");
        assert_eq!(
            create_immutable(fd.as_fd(), "link", b"abc").expect("link"),
            Outcome::Differs
        );
        fs::create_dir(dir.path().join("d")).expect("mkdir");
        assert_eq!(
            create_immutable(fd.as_fd(), "d", b"abc").expect("dir"),
            Outcome::Differs
        );
        assert!(
            fs::symlink_metadata(dir.path().join("link"))
                .expect("meta")
                .is_symlink()
        );
    }

    #[test]
    fn make_dir_refuses_a_symlink_and_sets_the_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fd = root(&dir);
        let (_, created) = make_dir(fd.as_fd(), "a").expect("mkdir");
        assert!(created);
        let (_, created) = make_dir(fd.as_fd(), "a").expect("open");
        assert!(!created);
        let meta = fs::metadata(dir.path().join("a")).expect("meta");
        assert_eq!(meta.mode() & 0o777, DIR_MODE);
        let elsewhere = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("b")).expect("symlink");
        assert!(make_dir(fd.as_fd(), "b").is_err());
    }

    #[test]
    fn temporary_names() {
        assert!(is_temporary(".067.0123456789abcdef.tmp"));
        assert!(is_temporary(".checkpoint.Ab12Cd.tmp"));
        for name in [
            "067",
            "067.p",
            ".tmp",
            "..tmp",
            "a.tmp",
            ".067",
            "checkpoint",
        ] {
            assert!(!is_temporary(name), "{name}");
        }
    }
}
