//! Running a program under strace the way [`super::parse()`] reads it.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

/// The calls traced: everything that writes, syncs, creates, renames or
/// removes a file, the flushes that are not barriers, the I/O the trace
/// cannot see into, and what moves the current directory. A `?` makes
/// strace accept a name this architecture lacks (`rename` on arm64).
pub const TRACED: &[&str] = &[
    "openat",
    "?open",
    "?creat",
    "write",
    "writev",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "ftruncate",
    "fallocate",
    "fsync",
    "fdatasync",
    "sync_file_range",
    "syncfs",
    "msync",
    "?rename",
    "renameat",
    "renameat2",
    "?link",
    "linkat",
    "?unlink",
    "unlinkat",
    "?rmdir",
    "?mkdir",
    "mkdirat",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "chdir",
    "fchdir",
];

/// strace's options, writing to `output`: follow every thread (`-f`),
/// wall-clock start times in microseconds (`-ttt`), durations (`-T`), the
/// path behind each descriptor (`-y`), no attach or exit chatter (`-qq`),
/// non-ASCII in hex (`-x`), 32 bytes of each buffer (`-s 32`), no signals.
/// The program and its arguments follow.
pub fn strace_args(output: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-f", "-ttt", "-T", "-y", "-qq", "-x", "-s", "32", "-o"]
        .iter()
        .map(OsString::from)
        .collect();
    args.push(output.into());
    args.extend(["-e", "signal=none", "-e"].map(OsString::from));
    args.push(format!("trace={}", TRACED.join(",")).into());
    args.push("--".into());
    args
}

/// Whether `strace` can be run here.
pub fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
