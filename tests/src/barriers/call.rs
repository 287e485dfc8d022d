//! One system call as strace printed it: who made it, when it started and
//! returned, its arguments and what it returned.

use std::path::PathBuf;

/// Microseconds since the Unix epoch on `CLOCK_REALTIME`: what
/// `strace -ttt` prints, and what the bench's timings file holds.
pub type Micros = u64;

/// `AT_FDCWD`, the directory file descriptor that means "the current
/// directory", as an [`Arg::Fd`] number.
pub const AT_FDCWD: i64 = -100;

/// A system call, its unfinished and resumed halves joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The line of the trace where it started (1-based).
    pub line: usize,
    /// The thread that made it.
    pub pid: u32,
    /// Its name, such as `fdatasync`.
    pub name: String,
    /// Its arguments, in order.
    pub args: Vec<Arg>,
    /// When it started (strace's entry stop).
    pub start: Micros,
    /// How it ended.
    pub outcome: Outcome,
}

/// An argument, or a return value's file descriptor annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A file descriptor with the path strace's `-y` printed behind it
    /// (`5</data/db>`; `AT_FDCWD</cwd>` is number [`AT_FDCWD`]). Not only
    /// files: `socket:[123]`, `pipe:[4]` and `anon_inode:[eventfd]` too.
    Fd {
        /// The descriptor.
        number: i64,
        /// What it refers to, unescaped.
        target: PathBuf,
    },
    /// A plain integer.
    Int(i64),
    /// A string, unescaped.
    Str {
        /// Its bytes (at most strace's `-s` of them for data buffers).
        bytes: Vec<u8>,
        /// Whether strace cut it short (`"..."...`).
        truncated: bool,
    },
    /// Anything else (flags, structures, arrays, `NULL`), as printed.
    Other(String),
}

impl Arg {
    /// The flags of an [`Arg::Other`] such as `O_WRONLY|O_CREAT`, split.
    pub fn flags(&self) -> Vec<&str> {
        match self {
            Arg::Other(text) => text.split('|').map(str::trim).collect(),
            _ => Vec::new(),
        }
    }
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It returned `value` at `end`.
    Returned {
        /// The return value.
        value: i64,
        /// For a returned file descriptor, what it refers to.
        target: Option<PathBuf>,
        /// When it returned: its start plus strace's `-T` duration.
        end: Micros,
    },
    /// It failed with `errno` at `end`.
    Failed {
        /// The error's name, such as `EIO`.
        errno: String,
        /// When it returned.
        end: Micros,
    },
    /// It was never seen to return: the process was killed in it, or the
    /// trace ended first (`= ?`, or an unfinished call never resumed).
    Unknown,
}

impl Outcome {
    /// When the call returned, successfully or not.
    pub fn end(&self) -> Option<Micros> {
        match self {
            Outcome::Returned { end, .. } | Outcome::Failed { end, .. } => Some(*end),
            Outcome::Unknown => None,
        }
    }

    /// Whether the call returned without an error.
    pub fn succeeded(&self) -> bool {
        matches!(self, Outcome::Returned { .. })
    }
}
