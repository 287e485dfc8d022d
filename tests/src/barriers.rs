//! Is every acknowledgement durable? A check of a gateway's system calls,
//! traced with strace, against the requests it acknowledged.
//!
//! The promise (docs/reliability.md, "What an acknowledgement promises"):
//! a success response is sent only after an `fdatasync` or `fsync` (or an
//! `O_DSYNC` write) of everything it depends on has returned, and after an
//! `fsync` of the directory of every file it depends on that was created or
//! renamed; never on `sync_file_range`, which flushes neither the drive's
//! cache nor the file's metadata.
//!
//! What the trace can show, [`check()`] checks: for each acknowledged
//! request, given when the client sent it and when it had the response,
//!
//! - a barrier on a file under the data directory that started after the
//!   request was sent, returned (0) before the response was received,
//!   started after every write to that file that began before it had
//!   returned, and follows a write to that file begun after the request
//!   was sent ([`Missing`] otherwise, with the nearest sync and why it
//!   does not count);
//! - for that file's name and its directories under the data directory,
//!   if created during the trace, an `fsync` of the parent directory after
//!   the creation and before the response ([`Unsynced`] otherwise);
//! - and, for the whole trace, no `sync_file_range` or `syncfs` on the data
//!   directory, no `msync` and no `io_uring` at all ([`Forbidden`]).
//!
//! This is necessary, not sufficient: a trace shows which files were
//! synced when, not which bytes a request's answer depends on, so a
//! barrier of another batch that happens to fall in the window counts.
//! The crash and fault tests cover the rest.
//!
//! ```no_run
//! use xgate_tests::barriers::{Request, Scope, check, parse};
//!
//! let text = std::fs::read_to_string("trace.txt").expect("trace");
//! let calls = parse(&text).expect("a readable trace");
//! let requests = [Request { label: "record.send ab12".into(), sent: 1, received: 2 }];
//! let verdict = check(&calls, &Scope::new("/var/lib/xgate"), &requests).expect("checked");
//! assert!(verdict.passed(), "{verdict}");
//! ```

mod call;
mod check;
mod files;
mod parse;
mod strace;

pub use call::{AT_FDCWD, Arg, Call, Micros, Outcome};
pub use check::{
    CheckError, Missing, Nearest, Request, Scope, Stats, Unsynced, Verdict, Why, check,
};
pub use files::{CallError, Forbidden, Sync};
pub use parse::{ParseError, Problem, parse};
pub use strace::{TRACED, strace_args, strace_available};
