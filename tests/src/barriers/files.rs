//! What the traced calls did to the files under the data directory: data
//! written, barriers (`fsync`, `fdatasync`, writes through an `O_DSYNC` or
//! `O_SYNC` descriptor), names created and renamed, and the calls that are
//! never allowed there. Paths are resolved as the kernel would (relative to
//! the directory descriptor, or to the current directory, which `-y` shows
//! behind `AT_FDCWD`), lexically: symbolic links are not followed, so the
//! data directory must be given as the canonical path strace prints.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

use super::call::{AT_FDCWD, Arg, Call, Micros, Outcome};

/// How `-y` marks a descriptor whose file has been unlinked.
const DELETED: &str = " (deleted)";

/// Why a call could not be interpreted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// An argument is missing or not what the call takes.
    #[error("strace output line {line}: {call}: argument {index} is not {expected}")]
    Argument {
        /// The line the call started on.
        line: usize,
        /// The call.
        call: String,
        /// Which argument (0-based).
        index: usize,
        /// What it should have been.
        expected: &'static str,
    },
    /// A relative path before any call showed the current directory.
    #[error(
        "strace output line {line}: {call}: a relative path, and no earlier call showed the current directory"
    )]
    NoCurrentDirectory {
        /// The line the call started on.
        line: usize,
        /// The call.
        call: String,
    },
}

/// A call that must never touch the data directory: a flush that is not a
/// barrier (`sync_file_range`), one that hides which file it is for
/// (`syncfs`), or I/O the trace cannot see into (`msync`, `io_uring_*`;
/// counted wherever they point, as nothing shows where that is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forbidden {
    /// The line it started on.
    pub line: usize,
    /// The call.
    pub call: String,
    /// The file or directory it was for, when the trace shows it.
    pub target: Option<PathBuf>,
}

/// A change to a file's data or size (a write, `ftruncate`, `fallocate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Write {
    pub line: usize,
    pub start: Micros,
    /// `None`: never seen to return.
    pub end: Option<Micros>,
    /// Written through an `O_DSYNC`/`O_SYNC` descriptor.
    pub dsync: bool,
}

/// An `fsync`/`fdatasync` (whatever its outcome), or a write through an
/// `O_DSYNC`/`O_SYNC` descriptor that returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sync {
    /// The line it started on.
    pub line: usize,
    /// `fsync`, `fdatasync`, or the write's name.
    pub call: String,
    /// The file (or directory) it was for.
    pub path: PathBuf,
    /// When it started.
    pub start: Micros,
    /// How it ended.
    pub outcome: Outcome,
    /// A write through an `O_DSYNC`/`O_SYNC` descriptor rather than a sync.
    pub dsync_write: bool,
}

/// A name that came into existence: a file created by `open*` with
/// `O_CREAT`, a directory made, the target of a rename or a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Creation {
    pub line: usize,
    pub call: String,
    pub end: Micros,
}

/// A rename that returned successfully.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rename {
    pub from: PathBuf,
    pub to: PathBuf,
    pub start: Micros,
    pub end: Micros,
}

/// Everything the check needs, in start order.
#[derive(Debug, Default)]
pub(crate) struct Files {
    /// Writes by file.
    pub writes: BTreeMap<PathBuf, Vec<Write>>,
    /// Syncs of anything under the data directory, files and directories.
    pub syncs: Vec<Sync>,
    /// Creations by name (strictly under the data directory).
    pub creations: BTreeMap<PathBuf, Vec<Creation>>,
    pub renames: Vec<Rename>,
    pub forbidden: Vec<Forbidden>,
    /// Paths known to be directories: the data directory, what was made
    /// with mkdir or opened with `O_DIRECTORY`, and every parent of a path
    /// seen.
    pub directories: BTreeSet<PathBuf>,
}

/// Reads what `calls` did under `data_dir`; `existing` are the paths that
/// existed before the trace started (an `O_CREAT` open of one of them
/// creates nothing; without `O_EXCL` strace cannot tell, so any other
/// path not seen to exist in the trace is taken as created).
///
/// # Errors
/// A call whose arguments cannot be read as that call's.
pub(crate) fn files(
    calls: &[Call],
    data_dir: &Path,
    existing: &BTreeSet<PathBuf>,
) -> Result<Files, CallError> {
    let mut order: Vec<&Call> = calls.iter().collect();
    order.sort_by_key(|c| (c.start, c.line));
    let mut reader = Reader {
        data_dir,
        files: Files::default(),
        cwd: None,
        existing: existing.clone(),
        descriptors: BTreeMap::new(),
    };
    reader.files.directories.insert(data_dir.to_path_buf());
    for call in order {
        reader.call(call)?;
    }
    let mut files = reader.files;
    let mut parents = BTreeSet::new();
    for path in files
        .writes
        .keys()
        .chain(files.creations.keys())
        .chain(files.syncs.iter().map(|s| &s.path))
    {
        parents.extend(path.ancestors().skip(1).map(Path::to_path_buf));
    }
    files.directories.extend(parents);
    Ok(files)
}

/// The state of the walk through the calls.
struct Reader<'a> {
    data_dir: &'a Path,
    files: Files,
    /// The current directory, from the last `AT_FDCWD</...>` or chdir.
    cwd: Option<PathBuf>,
    existing: BTreeSet<PathBuf>,
    /// Open descriptors: their path and whether writes through them are
    /// synchronous (`O_DSYNC`/`O_SYNC`). Descriptors are per process; the
    /// gateway is one.
    descriptors: BTreeMap<i64, (PathBuf, bool)>,
}

impl Reader<'_> {
    fn call(&mut self, call: &Call) -> Result<(), CallError> {
        for arg in &call.args {
            if let Arg::Fd {
                number: AT_FDCWD,
                target,
            } = arg
            {
                self.cwd = Some(target.clone());
            }
        }
        match call.name.as_str() {
            "openat" => self.open(call, Some(0), 1, Some(2)),
            "open" => self.open(call, None, 0, Some(1)),
            "creat" => self.open(call, None, 0, None),
            "mkdirat" => self.mkdir(call, Some(0), 1),
            "mkdir" => self.mkdir(call, None, 0),
            "renameat" | "renameat2" => self.rename(call, (Some(0), 1), (Some(2), 3), 4),
            "rename" => self.rename(call, (None, 0), (None, 1), usize::MAX),
            "linkat" => self.link(call, (Some(2), 3)),
            "link" => self.link(call, (None, 1)),
            "unlinkat" => self.unlink(call, Some(0), 1),
            "unlink" | "rmdir" => self.unlink(call, None, 0),
            "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" => self.write(call, true),
            "ftruncate" | "fallocate" => self.write(call, false),
            "fsync" | "fdatasync" => self.sync(call),
            "sync_file_range" | "syncfs" => {
                if let Some((_, target)) = descriptor(call)?
                    && self.under(target)
                {
                    self.forbid(call, Some(target.clone()));
                }
                Ok(())
            }
            "msync" | "io_uring_setup" | "io_uring_enter" | "io_uring_register" => {
                let target = match call.args.first() {
                    Some(Arg::Fd { target, .. }) => Some(target.clone()),
                    _ => None,
                };
                self.forbid(call, target);
                Ok(())
            }
            "chdir" => {
                if call.outcome.succeeded() {
                    self.cwd = Some(self.resolve(call, None, 0)?);
                }
                Ok(())
            }
            "fchdir" => {
                if call.outcome.succeeded() {
                    self.cwd = Some(fd(call, 0)?.1.clone());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Whether `path` is the data directory or under it, and not a file
    /// already unlinked (nothing written to one can be found again).
    fn under(&self, path: &Path) -> bool {
        path.starts_with(self.data_dir)
            && !path.as_os_str().as_bytes().ends_with(DELETED.as_bytes())
    }

    fn forbid(&mut self, call: &Call, target: Option<PathBuf>) {
        self.files.forbidden.push(Forbidden {
            line: call.line,
            call: call.name.clone(),
            target,
        });
    }

    fn created(&mut self, call: &Call, path: &Path) {
        self.existing.insert(path.to_path_buf());
        let Some(end) = call.outcome.end() else {
            return;
        };
        if self.under(path) && path != self.data_dir {
            self.files
                .creations
                .entry(path.to_path_buf())
                .or_default()
                .push(Creation {
                    line: call.line,
                    call: call.name.clone(),
                    end,
                });
        }
    }

    fn open(
        &mut self,
        call: &Call,
        dir: Option<usize>,
        path: usize,
        flags: Option<usize>,
    ) -> Result<(), CallError> {
        let Outcome::Returned {
            value: descriptor,
            target,
            ..
        } = &call.outcome
        else {
            return Ok(());
        };
        let flags: Vec<&str> = match flags {
            Some(i) => arg(call, i, "open flags")?.flags(),
            // creat(path, mode) is open(path, O_CREAT|O_WRONLY|O_TRUNC, mode).
            None => vec!["O_CREAT", "O_WRONLY", "O_TRUNC"],
        };
        let has = |flag: &str| flags.contains(&flag);
        let opened = match target {
            Some(target) => target.clone(),
            None => self.resolve(call, dir, path)?,
        };
        if has("O_DIRECTORY") {
            self.files.directories.insert(opened.clone());
        }
        // O_TMPFILE makes a file without a name: nothing to sync a
        // directory for until it is linked in.
        let creates = has("O_CREAT")
            && !has("O_TMPFILE")
            && (has("O_EXCL") || !self.existing.contains(&opened));
        if creates {
            self.created(call, &opened);
        }
        self.existing.insert(opened.clone());
        let synchronous = has("O_DSYNC") || has("O_SYNC");
        self.descriptors.insert(*descriptor, (opened, synchronous));
        Ok(())
    }

    fn mkdir(&mut self, call: &Call, dir: Option<usize>, path: usize) -> Result<(), CallError> {
        let made = self.resolve(call, dir, path)?;
        match &call.outcome {
            Outcome::Returned { .. } => {
                self.files.directories.insert(made.clone());
                self.created(call, &made);
            }
            Outcome::Failed { errno, .. } if errno == "EEXIST" => {
                self.existing.insert(made);
            }
            _ => {}
        }
        Ok(())
    }

    fn rename(
        &mut self,
        call: &Call,
        from: (Option<usize>, usize),
        to: (Option<usize>, usize),
        flags: usize,
    ) -> Result<(), CallError> {
        let Outcome::Returned { end, .. } = call.outcome else {
            return Ok(());
        };
        let old = self.resolve(call, from.0, from.1)?;
        let new = self.resolve(call, to.0, to.1)?;
        let exchange = call
            .args
            .get(flags)
            .is_some_and(|f| f.flags().contains(&"RENAME_EXCHANGE"));
        if exchange {
            self.created(call, &old);
        } else {
            self.existing.remove(&old);
        }
        self.created(call, &new);
        // Open descriptors follow their file (or their directory).
        for (path, _) in self.descriptors.values_mut() {
            if let Ok(rest) = path.strip_prefix(&old) {
                *path = join(&new, rest);
            }
        }
        self.files.renames.push(Rename {
            from: old,
            to: new,
            start: call.start,
            end,
        });
        Ok(())
    }

    fn link(&mut self, call: &Call, to: (Option<usize>, usize)) -> Result<(), CallError> {
        if call.outcome.succeeded() {
            let new = self.resolve(call, to.0, to.1)?;
            self.created(call, &new);
        }
        Ok(())
    }

    fn unlink(&mut self, call: &Call, dir: Option<usize>, path: usize) -> Result<(), CallError> {
        if call.outcome.succeeded() {
            let gone = self.resolve(call, dir, path)?;
            self.existing.remove(&gone);
        }
        Ok(())
    }

    fn write(&mut self, call: &Call, data: bool) -> Result<(), CallError> {
        let Some((number, target)) = descriptor(call)? else {
            return Ok(());
        };
        if !self.under(target) || matches!(call.outcome, Outcome::Failed { .. }) {
            return Ok(());
        }
        let dsync = data
            && self
                .descriptors
                .get(number)
                .is_some_and(|(path, synchronous)| *synchronous && path == target);
        self.files
            .writes
            .entry(target.clone())
            .or_default()
            .push(Write {
                line: call.line,
                start: call.start,
                end: call.outcome.end(),
                dsync,
            });
        if dsync && call.outcome.succeeded() {
            self.files.syncs.push(Sync {
                line: call.line,
                call: call.name.clone(),
                path: target.clone(),
                start: call.start,
                outcome: call.outcome.clone(),
                dsync_write: true,
            });
        }
        Ok(())
    }

    fn sync(&mut self, call: &Call) -> Result<(), CallError> {
        let Some((_, target)) = descriptor(call)? else {
            return Ok(());
        };
        if self.under(target) {
            self.files.syncs.push(Sync {
                line: call.line,
                call: call.name.clone(),
                path: target.clone(),
                start: call.start,
                outcome: call.outcome.clone(),
                dsync_write: false,
            });
        }
        Ok(())
    }

    /// The path of argument `path`, relative to directory descriptor `dir`
    /// (`None`: the current directory).
    fn resolve(&self, call: &Call, dir: Option<usize>, path: usize) -> Result<PathBuf, CallError> {
        let bytes = match arg(call, path, "a path")? {
            Arg::Str {
                bytes,
                truncated: false,
            } => bytes,
            _ => return Err(argument(call, path, "a path")),
        };
        let name = Path::new(OsStr::from_bytes(bytes));
        if name.is_absolute() {
            return Ok(join(Path::new("/"), name));
        }
        let base = match dir {
            Some(i) => match arg(call, i, "a directory descriptor")? {
                Arg::Fd { target, .. } => target.clone(),
                _ => return Err(argument(call, i, "a directory descriptor with its path")),
            },
            None => self
                .cwd
                .clone()
                .ok_or_else(|| CallError::NoCurrentDirectory {
                    line: call.line,
                    call: call.name.clone(),
                })?,
        };
        Ok(join(&base, name))
    }
}

fn arg<'c>(call: &'c Call, index: usize, expected: &'static str) -> Result<&'c Arg, CallError> {
    call.args
        .get(index)
        .ok_or_else(|| argument(call, index, expected))
}

fn argument(call: &Call, index: usize, expected: &'static str) -> CallError {
    CallError::Argument {
        line: call.line,
        call: call.name.clone(),
        index,
        expected,
    }
}

/// Argument `index` as a descriptor with its `-y` path.
fn fd(call: &Call, index: usize) -> Result<(&i64, &PathBuf), CallError> {
    match arg(call, index, "a file descriptor")? {
        Arg::Fd { number, target } => Ok((number, target)),
        _ => Err(argument(call, index, "a file descriptor with its path")),
    }
}

/// The first argument as a descriptor with its path; `None` for a call
/// that failed on a descriptor strace could not name (`-1 EBADF`): it
/// touched no file.
fn descriptor(call: &Call) -> Result<Option<(&i64, &PathBuf)>, CallError> {
    match (call.args.first(), &call.outcome) {
        (Some(Arg::Int(_)), Outcome::Failed { .. }) => Ok(None),
        _ => fd(call, 0).map(Some),
    }
}

/// `base` joined with `rest`, `.` and `..` resolved lexically.
fn join(base: &Path, rest: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in base.components().chain(rest.components()) {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barriers::parse::parse;

    fn read(trace: &str) -> Files {
        files(
            &parse(trace).expect("parses"),
            Path::new("/d"),
            &BTreeSet::new(),
        )
        .expect("reads")
    }

    #[test]
    fn relative_paths_resolve_against_their_directory_or_the_current_one() {
        let f = read(concat!(
            "1 1.000000 openat(AT_FDCWD</d>, \"j/../j/a.tmp\", O_WRONLY|O_CREAT|O_EXCL, 0600) = 3</d/j/a.tmp> <0.000001>\n",
            "1 1.000010 rename(\"j/a.tmp\", \"./j/a.jnl\") = 0 <0.000001>\n",
            "1 1.000020 renameat2(4</d/j>, \"b.tmp\", 4</d/j>, \"b.jnl\", RENAME_NOREPLACE) = 0 <0.000001>\n",
            "1 1.000030 mkdir(\"/d/x/../k\", 0700) = 0 <0.000001>\n",
        ));
        let created: Vec<&Path> = f.creations.keys().map(PathBuf::as_path).collect();
        assert_eq!(
            created,
            [
                Path::new("/d/j/a.jnl"),
                Path::new("/d/j/a.tmp"),
                Path::new("/d/j/b.jnl"),
                Path::new("/d/k")
            ]
        );
        assert!(f.directories.contains(Path::new("/d/k")));
        assert!(f.directories.contains(Path::new("/d/j")));
    }

    #[test]
    fn a_relative_path_before_the_current_directory_is_known_is_an_error() {
        let calls = parse("1 1.000000 mkdir(\"k\", 0700) = 0 <0.000001>").expect("parses");
        assert_eq!(
            files(&calls, Path::new("/d"), &BTreeSet::new()).expect_err("error"),
            CallError::NoCurrentDirectory {
                line: 1,
                call: "mkdir".into()
            }
        );
        let calls = parse("1 1.000000 fsync(3) = 0 <0.000001>").expect("parses");
        assert!(matches!(
            files(&calls, Path::new("/d"), &BTreeSet::new()),
            Err(CallError::Argument {
                line: 1,
                index: 0,
                ..
            })
        ));
        // A call that failed on a descriptor strace could not name is none.
        let calls = parse("1 1.000000 fsync(99) = -1 EBADF (Bad file descriptor) <0.000001>")
            .expect("parses");
        let f = files(&calls, Path::new("/d"), &BTreeSet::new()).expect("reads");
        assert!(f.syncs.is_empty());
    }

    #[test]
    fn o_creat_on_a_file_known_to_exist_creates_nothing() {
        let trace = "1 1.000000 openat(AT_FDCWD</>, \"/d/lock\", O_WRONLY|O_CREAT, 0600) = 3</d/lock> <0.000001>";
        let calls = parse(trace).expect("parses");
        let before: BTreeSet<PathBuf> = [PathBuf::from("/d/lock")].into();
        let f = files(&calls, Path::new("/d"), &before).expect("reads");
        assert!(f.creations.is_empty());
        let f = files(&calls, Path::new("/d"), &BTreeSet::new()).expect("reads");
        assert_eq!(f.creations.len(), 1);
    }

    #[test]
    fn only_writes_through_an_o_dsync_descriptor_to_the_same_file_are_barriers() {
        let f = read(concat!(
            "1 1.000000 openat(AT_FDCWD</>, \"/d/a\", O_WRONLY|O_DSYNC) = 3</d/a> <0.000001>\n",
            "1 1.000010 pwrite64(3</d/a>, \"x\", 1, 0) = 1 <0.000001>\n",
            "1 1.000020 openat(AT_FDCWD</>, \"/d/b\", O_WRONLY) = 3</d/b> <0.000001>\n",
            "1 1.000030 pwrite64(3</d/b>, \"x\", 1, 0) = 1 <0.000001>\n",
            "1 1.000040 write(5<socket:[7]>, \"x\", 1) = 1 <0.000001>\n",
            "1 1.000050 write(6</elsewhere/c>, \"x\", 1) = 1 <0.000001>\n",
        ));
        assert_eq!(f.syncs.len(), 1);
        assert_eq!(f.syncs[0].path, Path::new("/d/a"));
        assert!(f.syncs[0].dsync_write);
        assert_eq!(f.writes.len(), 2, "only the files under the data directory");
    }
}
