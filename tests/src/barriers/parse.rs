//! Reading strace's output, as `strace -f -ttt -T -y -qq -x` writes it
//! with `-o FILE` ([`super::strace_args`]):
//!
//! ```text
//! 25204 1796429204.420190 fsync(21</data/.checkpoint.GySbw2.tmp> <unfinished ...>
//! 25199 1796429204.420244 pwrite64(11</data/db/db>, "\x33\x6f"..., 24, 168) = 24 <0.000075>
//! 25204 1796429204.420808 <... fsync resumed>) = 0 <0.000595>
//! ```
//!
//! Each line is a thread id (padded to five columns), the wall-clock time
//! the call started
//! (seconds and exactly six digits of microseconds), and the call: whole,
//! or its first half (`<unfinished ...>`, when another thread's line came
//! in between) and later its second (`<... NAME resumed>`), which are
//! joined here. `-T`'s `<seconds>` is the time spent in the call, so a
//! call's end is its start plus that. `-y` prints the path behind each
//! file descriptor (`11</data/db/db>`), escaping `<`, `>`, `"` and `\` in
//! it. Exit lines (`+++ exited with 0 +++`) are accepted and end the
//! thread's pending call, if any, as never returned.
//!
//! The parser is strict: a line it cannot read whole is an error naming
//! the line and what was wrong with it, never skipped.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;

use super::call::{AT_FDCWD, Arg, Call, Micros, Outcome};

/// Text that ends the first half of an interrupted call.
const UNFINISHED: &str = " <unfinished ...>";
/// At most this much of a bad line is quoted in an error.
const QUOTED: usize = 200;

/// A line of the trace that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("strace output line {line}: {problem}: {text}")]
pub struct ParseError {
    /// The line (1-based).
    pub line: usize,
    /// What was wrong with it.
    pub problem: Problem,
    /// The line (at most its first 200 characters).
    pub text: String,
}

/// What was wrong with a line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// It is empty.
    #[error("an empty line")]
    Empty,
    /// It does not start with a thread id (`-f`).
    #[error("no thread id at the start (strace -f)")]
    NoPid,
    /// No `seconds.micros` timestamp after the thread id.
    #[error("no seconds.microseconds timestamp (strace -ttt)")]
    NoTimestamp,
    /// Neither a call, a resumption nor an exit.
    #[error("neither a system call, a resumed call nor an exit")]
    NotACall,
    /// A resumption of a call the thread had not started.
    #[error("resumes {0} but that thread has no unfinished call")]
    Orphan(String),
    /// A resumption of another call than the one the thread started.
    #[error("resumes {resumed} but that thread's unfinished call is {unfinished}")]
    Mismatch {
        /// The call resumed.
        resumed: String,
        /// The call left unfinished.
        unfinished: String,
    },
    /// A new call by a thread whose previous call has not resumed.
    #[error("starts a call while the same thread's call of line {0} is unfinished")]
    Overlap(usize),
    /// A bracket, parenthesis or brace left open or closed by the wrong one.
    #[error("unbalanced brackets in the arguments")]
    Unbalanced,
    /// A string without its closing quote, or text right after it.
    #[error("a malformed string")]
    BadString,
    /// An escape strace does not write (`\q`, `\x4`, ...).
    #[error("a malformed escape sequence")]
    BadEscape,
    /// An empty argument (`f(1, , 2)`).
    #[error("an empty argument")]
    EmptyArg,
    /// A `-y` annotation on something that is not a file descriptor.
    #[error("a malformed file descriptor (N<path>)")]
    BadFd,
    /// No ` = ` after the arguments.
    #[error("no return value")]
    NoReturn,
    /// A return value strace does not print.
    #[error("a malformed return value")]
    BadReturn,
    /// No `<seconds>` at the end (strace -T).
    #[error("no <seconds> duration at the end (strace -T)")]
    NoDuration,
}

/// The first half of a call, waiting for its resumption.
struct Pending {
    line: usize,
    start: Micros,
    name: String,
    /// `NAME(ARGS...` without the unfinished marker.
    prefix: String,
}

/// Reads a whole trace into its calls, in the order they started in the
/// file. Calls still unfinished at the end, or when their thread exited,
/// are kept with [`Outcome::Unknown`].
///
/// # Errors
/// The first line that cannot be read.
pub fn parse(text: &str) -> Result<Vec<Call>, ParseError> {
    let mut calls = Vec::new();
    let mut pending: BTreeMap<u32, Pending> = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let fail = |problem| ParseError {
            line,
            problem,
            text: raw.chars().take(QUOTED).collect(),
        };
        if raw.is_empty() {
            return Err(fail(Problem::Empty));
        }
        // strace pads the id to five columns (`%-5d `).
        let (pid, rest) = raw.split_once(' ').ok_or_else(|| fail(Problem::NoPid))?;
        let rest = rest.trim_start_matches(' ');
        let pid: u32 = digits(pid)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| fail(Problem::NoPid))?;
        let (stamp, body) = rest
            .split_once(' ')
            .ok_or_else(|| fail(Problem::NoTimestamp))?;
        let start = seconds(stamp).ok_or_else(|| fail(Problem::NoTimestamp))?;
        if body.starts_with("+++ ") {
            if !is_exit(body) {
                return Err(fail(Problem::NotACall));
            }
            if let Some(p) = pending.remove(&pid) {
                calls.push(never_returned(p, pid).map_err(|problem| ParseError {
                    line,
                    problem,
                    text: raw.chars().take(QUOTED).collect(),
                })?);
            }
        } else if let Some(resumed) = body.strip_prefix("<... ") {
            let (name, after) = resumed
                .split_once(" resumed>")
                .ok_or_else(|| fail(Problem::NotACall))?;
            let first = pending
                .remove(&pid)
                .ok_or_else(|| fail(Problem::Orphan(name.to_owned())))?;
            if first.name != name {
                return Err(fail(Problem::Mismatch {
                    resumed: name.to_owned(),
                    unfinished: first.name,
                }));
            }
            // A thread killed in the call: `<... NAME resumed> <unfinished ...>) = ?`.
            let after = after.strip_prefix(UNFINISHED).unwrap_or(after);
            let joined = format!("{}{after}", first.prefix);
            calls.push(call(&joined, first.line, pid, first.start).map_err(fail)?);
        } else if let Some(prefix) = body.strip_suffix(UNFINISHED) {
            let name = name(prefix).ok_or_else(|| fail(Problem::NotACall))?;
            if let Some(p) = pending.get(&pid) {
                return Err(fail(Problem::Overlap(p.line)));
            }
            pending.insert(
                pid,
                Pending {
                    line,
                    start,
                    name: name.to_owned(),
                    prefix: prefix.to_owned(),
                },
            );
        } else {
            calls.push(call(body, line, pid, start).map_err(fail)?);
        }
    }
    for (pid, p) in pending {
        let line = p.line;
        let text = p.prefix.chars().take(QUOTED).collect();
        calls.push(never_returned(p, pid).map_err(|problem| ParseError {
            line,
            problem,
            text,
        })?);
    }
    calls.sort_by_key(|c| c.line);
    Ok(calls)
}

/// `+++ exited with N +++`, `+++ killed by SIGX +++` (`(core dumped)`).
fn is_exit(body: &str) -> bool {
    let Some(inner) = body
        .strip_prefix("+++ ")
        .and_then(|b| b.strip_suffix(" +++"))
    else {
        return false;
    };
    if let Some(code) = inner.strip_prefix("exited with ") {
        return digits(code).is_some();
    }
    inner
        .strip_prefix("killed by SIG")
        .map(|s| s.strip_suffix(" (core dumped)").unwrap_or(s))
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A call whose first half is all there is.
fn never_returned(p: Pending, pid: u32) -> Result<Call, Problem> {
    // The arguments printed so far, closed: `read(3<pipe:[4]>, ` -> `read(3<pipe:[4]>)`.
    let args = p.prefix.trim_end().trim_end_matches(',');
    call(&format!("{args}) = ?"), p.line, pid, p.start)
}

/// A whole call: `NAME(ARGS) = RETURN <DURATION>`.
fn call(text: &str, line: usize, pid: u32, start: Micros) -> Result<Call, Problem> {
    let name = name(text).ok_or(Problem::NotACall)?;
    let mut scan = Scan {
        text: text.as_bytes(),
        at: name.len() + 1,
    };
    let args = scan.args()?;
    let rest = text
        .get(scan.at..)
        .and_then(|r| r.strip_prefix(" = "))
        .ok_or(Problem::NoReturn)?;
    Ok(Call {
        line,
        pid,
        name: name.to_owned(),
        args,
        start,
        outcome: outcome(rest, start)?,
    })
}

/// The name before the `(` that opens the arguments.
fn name(text: &str) -> Option<&str> {
    let (name, _) = text.split_once('(')?;
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    valid.then_some(name)
}

/// What follows ` = `: `0 <0.000595>`, `9</data> <0.000039>`,
/// `-1 EIO (Input/output error) <0.0001>`, `?`.
fn outcome(rest: &str, start: Micros) -> Result<Outcome, Problem> {
    if rest.starts_with('?') {
        return Ok(Outcome::Unknown);
    }
    let (head, duration) = rest.rsplit_once(" <").ok_or(Problem::NoDuration)?;
    let duration = duration
        .strip_suffix('>')
        .and_then(seconds)
        .ok_or(Problem::NoDuration)?;
    let end = start.saturating_add(duration);
    let negative = head.starts_with('-');
    let unsigned = head.trim_start_matches('-');
    let (value, after) = if let Some(hex) = unsigned.strip_prefix("0x") {
        let len = hex.bytes().take_while(u8::is_ascii_hexdigit).count();
        let v = u64::from_str_radix(&hex[..len], 16).map_err(|_| Problem::BadReturn)?;
        // An address or a mask: the bits as they are.
        (i64::from_ne_bytes(v.to_ne_bytes()), &hex[len..])
    } else {
        let len = unsigned.bytes().take_while(u8::is_ascii_digit).count();
        let v: i64 = unsigned[..len].parse().map_err(|_| Problem::BadReturn)?;
        (v, &unsigned[len..])
    };
    let value = if negative { -value } else { value };
    let (target, after) = match after.strip_prefix('<') {
        Some(annotated) => {
            let close = annotation_end(annotated.as_bytes()).ok_or(Problem::BadFd)?;
            let path = unescape(&annotated.as_bytes()[..close])?;
            (Some(path_of(path)), &annotated[close + 1..])
        }
        None => (None, after),
    };
    if value < 0
        && let Some(errno) = after.strip_prefix(' ')
    {
        let (errno, message) = errno.split_once(' ').unwrap_or((errno, ""));
        let named = errno.starts_with('E')
            && errno
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !named || !(message.is_empty() || is_parenthesized(message)) {
            return Err(Problem::BadReturn);
        }
        return Ok(Outcome::Failed {
            errno: errno.to_owned(),
            end,
        });
    }
    // Some returns are explained: `= 0 (Timeout)`, `= 0x1 (flags O_WRONLY)`.
    if !(after.is_empty() || after.strip_prefix(' ').is_some_and(is_parenthesized)) {
        return Err(Problem::BadReturn);
    }
    Ok(Outcome::Returned { value, target, end })
}

fn is_parenthesized(text: &str) -> bool {
    text.starts_with('(') && text.ends_with(')')
}

/// `123` and nothing else.
fn digits(text: &str) -> Option<&str> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then_some(text)
}

/// `1796429204.420190` (seconds and exactly six digits) in microseconds.
fn seconds(text: &str) -> Option<Micros> {
    let (whole, fraction) = text.split_once('.')?;
    let whole: u64 = digits(whole)?.parse().ok()?;
    if fraction.len() != 6 {
        return None;
    }
    let fraction: u64 = digits(fraction)?.parse().ok()?;
    whole.checked_mul(1_000_000)?.checked_add(fraction)
}

/// The arguments of a call, read from just after its `(`.
struct Scan<'a> {
    text: &'a [u8],
    at: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    /// Every argument up to and including the `)` that closes them.
    fn args(&mut self) -> Result<Vec<Arg>, Problem> {
        let mut args = Vec::new();
        loop {
            while self.peek() == Some(b' ') {
                self.at += 1;
            }
            if args.is_empty() && self.peek() == Some(b')') {
                self.at += 1;
                return Ok(args);
            }
            let from = self.at;
            self.skip_arg()?;
            let raw = std::str::from_utf8(&self.text[from..self.at])
                .map_err(|_| Problem::BadString)?
                .trim();
            if raw.is_empty() {
                return Err(Problem::EmptyArg);
            }
            args.push(arg(raw)?);
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b')') => {
                    self.at += 1;
                    return Ok(args);
                }
                _ => return Err(Problem::Unbalanced),
            }
        }
    }

    /// Moves to the `,` or `)` that ends the argument starting here,
    /// over strings, annotations and nested brackets.
    fn skip_arg(&mut self) -> Result<(), Problem> {
        let mut open: Vec<u8> = Vec::new();
        while let Some(b) = self.peek() {
            match b {
                b',' | b')' if open.is_empty() => return Ok(()),
                b'(' | b'[' | b'{' => open.push(b),
                b')' | b']' | b'}' => {
                    let expected = match open.pop() {
                        Some(b'(') => b')',
                        Some(b'[') => b']',
                        Some(b'{') => b'}',
                        _ => return Err(Problem::Unbalanced),
                    };
                    if b != expected {
                        return Err(Problem::Unbalanced);
                    }
                }
                b'"' => {
                    self.at +=
                        1 + string_end(&self.text[self.at + 1..]).ok_or(Problem::BadString)?;
                }
                b'<' => {
                    self.at +=
                        1 + annotation_end(&self.text[self.at + 1..]).ok_or(Problem::BadFd)?;
                }
                _ => {}
            }
            self.at += 1;
        }
        Err(Problem::Unbalanced)
    }
}

/// Where the closing `"` of a string is, in `text` just after its opening.
fn string_end(text: &[u8]) -> Option<usize> {
    closing(text, b'"')
}

/// Where the `>` closing a `-y` annotation is, in `text` just after its `<`.
fn annotation_end(text: &[u8]) -> Option<usize> {
    closing(text, b'>')
}

/// The first `close` not escaped by a backslash.
fn closing(text: &[u8], close: u8) -> Option<usize> {
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b if b == close => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// One argument, already cut out and trimmed.
fn arg(raw: &str) -> Result<Arg, Problem> {
    let bytes = raw.as_bytes();
    if let Some(inner) = raw.strip_prefix('"') {
        let end = string_end(inner.as_bytes()).ok_or(Problem::BadString)?;
        let truncated = match &inner[end + 1..] {
            "" => false,
            "..." => true,
            _ => return Err(Problem::BadString),
        };
        return Ok(Arg::Str {
            bytes: unescape(&inner.as_bytes()[..end])?,
            truncated,
        });
    }
    // `-y` annotates descriptors inside structures too (`[{fd=3<socket:[1]>,
    // ...}]`): only a bare number or AT_FDCWD before the `<` is one here.
    let fd = bytes.iter().position(|&b| b == b'<').and_then(|open| {
        let head = &raw[..open];
        let number = if head == "AT_FDCWD" {
            Some(AT_FDCWD)
        } else {
            head.parse().ok()
        };
        number.map(|n| (n, open))
    });
    if let Some((number, open)) = fd {
        let inner = &bytes[open + 1..];
        let close = annotation_end(inner).ok_or(Problem::BadFd)?;
        if close + 1 != inner.len() {
            return Err(Problem::BadFd);
        }
        return Ok(Arg::Fd {
            number,
            target: path_of(unescape(&inner[..close])?),
        });
    }
    Ok(match raw.parse() {
        Ok(n) => Arg::Int(n),
        Err(_) => Arg::Other(raw.to_owned()),
    })
}

fn path_of(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(&bytes))
}

/// Undoes strace's escapes: `\xHH`, octal `\N`-`\NNN`, `\n`, `\t`, `\r`,
/// `\v`, `\f`, `\\`, `\"`, `\'`.
fn unescape(text: &[u8]) -> Result<Vec<u8>, Problem> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'\\' {
            out.push(text[i]);
            i += 1;
            continue;
        }
        let escape = *text.get(i + 1).ok_or(Problem::BadEscape)?;
        i += 2;
        match escape {
            b'x' => {
                let hex = text.get(i..i + 2).ok_or(Problem::BadEscape)?;
                let hex = std::str::from_utf8(hex).map_err(|_| Problem::BadEscape)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| Problem::BadEscape)?);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut value = u32::from(escape - b'0');
                let mut taken = 0;
                while taken < 2 && matches!(text.get(i), Some(b'0'..=b'7')) {
                    value = value * 8 + u32::from(text[i] - b'0');
                    i += 1;
                    taken += 1;
                }
                out.push(u8::try_from(value).map_err(|_| Problem::BadEscape)?);
            }
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(0x0b),
            b'f' => out.push(0x0c),
            b'\\' | b'"' | b'\'' => out.push(escape),
            _ => return Err(Problem::BadEscape),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Call {
        let calls = parse(text).expect("parses");
        assert_eq!(calls.len(), 1, "{calls:?}");
        calls.into_iter().next().expect("one call")
    }

    fn problem(text: &str) -> (usize, Problem) {
        let e = parse(text).expect_err("an error");
        (e.line, e.problem)
    }

    #[test]
    fn a_whole_call_gives_its_arguments_return_and_times() {
        let c = one(
            "25199 1796429204.420244 pwrite64(11</d/db/db>, \"\\x33\\x6f\"..., 24, 168) = 24 <0.000075>\n",
        );
        assert_eq!(c.pid, 25199);
        assert_eq!(c.name, "pwrite64");
        assert_eq!(c.start, 1_796_429_204_420_244);
        assert_eq!(
            c.args,
            [
                Arg::Fd {
                    number: 11,
                    target: "/d/db/db".into()
                },
                Arg::Str {
                    bytes: vec![0x33, 0x6f],
                    truncated: true
                },
                Arg::Int(24),
                Arg::Int(168),
            ]
        );
        assert_eq!(
            c.outcome,
            Outcome::Returned {
                value: 24,
                target: None,
                end: 1_796_429_204_420_319
            }
        );
    }

    #[test]
    fn returned_descriptors_flags_and_escaped_paths_are_read() {
        let c = one(concat!(
            "7 1.000000 openat(AT_FDCWD</tmp/sx>, \"we<ird>/a>b(c) d\\\"e,f\", ",
            "O_WRONLY|O_CREAT|O_DSYNC|O_CLOEXEC, 0777) = 3</tmp/sx/we\\74ird\\76/a\\76b(c) d\\\"e,f> <0.000116>"
        ));
        assert_eq!(
            c.args[0],
            Arg::Fd {
                number: AT_FDCWD,
                target: "/tmp/sx".into()
            }
        );
        assert_eq!(
            c.args[1],
            Arg::Str {
                bytes: b"we<ird>/a>b(c) d\"e,f".to_vec(),
                truncated: false
            }
        );
        assert_eq!(
            c.args[2].flags(),
            ["O_WRONLY", "O_CREAT", "O_DSYNC", "O_CLOEXEC"]
        );
        assert_eq!(c.args[3], Arg::Int(777));
        assert_eq!(
            c.outcome,
            Outcome::Returned {
                value: 3,
                target: Some("/tmp/sx/we<ird>/a>b(c) d\"e,f".into()),
                end: 1_000_116
            }
        );
    }

    #[test]
    fn errors_unknown_returns_and_structures_are_read() {
        let c = one("1 2.000001 fdatasync(5</d/j.jnl>) = -1 EIO (Input/output error) <0.000020>");
        assert_eq!(
            c.outcome,
            Outcome::Failed {
                errno: "EIO".into(),
                end: 2_000_021
            }
        );
        let c = one(
            "1 2.000001 writev(9<socket:[415613]>, [{iov_base=\"HTTP/1.1 201 \"..., iov_len=17}, {iov_base=\"{)\", iov_len=2}], 2) = 19 <0.000020>",
        );
        assert_eq!(c.args.len(), 3);
        assert!(
            matches!(&c.args[1], Arg::Other(s) if s.starts_with("[{iov_base=")),
            "{:?}",
            c.args
        );
        let c = one(
            "1 2.000001 io_uring_setup(8, {flags=0, sq_thread_cpu=0}) = 3<anon_inode:[io_uring]> <0.000020>",
        );
        assert_eq!(c.args[0], Arg::Int(8));
        let c = one("1 2.000001 fsync(3</d>) = ?");
        assert_eq!(c.outcome, Outcome::Unknown);
        let c = one("1 2.000001 sched_yield() = 0 <0.000002>");
        assert!(c.args.is_empty());
    }

    #[test]
    fn unfinished_and_resumed_halves_are_joined_per_thread() {
        let calls = parse(concat!(
            "100 10.000000 fdatasync(5</d/j.jnl> <unfinished ...>\n",
            "101 10.000100 pwrite64(6</d/k>, \"ab\", 2, 0 <unfinished ...>\n",
            "102   10.000150 read(3<pipe:[1]>,  <unfinished ...>\n",
            "101 10.000200 <... pwrite64 resumed>) = 2 <0.000100>\n",
            "100 10.000900 <... fdatasync resumed>) = 0 <0.000900>\n",
            "102 10.001000 <... read resumed>\"xy\", 4096) = 2 <0.000850>\n",
            "103 10.002000 fsync(7</d/l> <unfinished ...>\n",
            "103 10.003000 +++ killed by SIGKILL +++\n",
            "104 10.004000 fsync(8</d/m> <unfinished ...>\n",
            "104 10.005000 <... fsync resumed> <unfinished ...>) = ?\n",
            "105 10.006000 fdatasync(9</d/n> <unfinished ...>\n",
        ))
        .expect("parses");
        let summary: Vec<(usize, u32, &str, Micros, Option<Micros>)> = calls
            .iter()
            .map(|c| (c.line, c.pid, c.name.as_str(), c.start, c.outcome.end()))
            .collect();
        assert_eq!(
            summary,
            [
                (1, 100, "fdatasync", 10_000_000, Some(10_000_900)),
                (2, 101, "pwrite64", 10_000_100, Some(10_000_200)),
                (3, 102, "read", 10_000_150, Some(10_001_000)),
                (7, 103, "fsync", 10_002_000, None),
                (9, 104, "fsync", 10_004_000, None),
                (11, 105, "fdatasync", 10_006_000, None),
            ]
        );
        assert_eq!(calls[1].args.len(), 4);
        assert_eq!(
            calls[2].args[1],
            Arg::Str {
                bytes: b"xy".to_vec(),
                truncated: false
            }
        );
        assert_eq!(
            calls[5].args,
            [Arg::Fd {
                number: 9,
                target: "/d/n".into()
            }]
        );
    }

    #[test]
    fn a_bad_line_is_an_error_naming_it() {
        let good = "1 1.000000 fsync(3</d>) = 0 <0.000001>\n";
        assert_eq!(problem(&format!("{good}\n")), (2, Problem::Empty));
        assert_eq!(
            problem("x 1.000000 fsync(3) = 0 <0.000001>"),
            (1, Problem::NoPid)
        );
        assert_eq!(
            problem("1 1.00000 fsync(3) = 0 <0.000001>"),
            (1, Problem::NoTimestamp)
        );
        assert_eq!(
            problem(&format!("{good}1 1.000000 --- SIGCHLD {{}} ---")),
            (2, Problem::NotACall)
        );
        assert_eq!(
            problem("1 1.000000 <... fsync resumed>) = 0 <0.000001>"),
            (1, Problem::Orphan("fsync".into()))
        );
        assert_eq!(
            problem(
                "1 1.000000 fsync(3 <unfinished ...>\n1 1.000001 <... write resumed>) = 0 <0.000001>"
            ),
            (
                2,
                Problem::Mismatch {
                    resumed: "write".into(),
                    unfinished: "fsync".into()
                }
            )
        );
        assert_eq!(
            problem("1 1.000000 fsync(3 <unfinished ...>\n1 1.000001 fsync(4 <unfinished ...>"),
            (2, Problem::Overlap(1))
        );
        assert_eq!(
            problem("1 1.000000 writev(3, [{a=1}}, 1) = 0 <0.000001>"),
            (1, Problem::Unbalanced)
        );
        assert_eq!(
            problem("1 1.000000 write(3, \"ab, 2) = 2 <0.000001>"),
            (1, Problem::BadString)
        );
        assert_eq!(
            problem("1 1.000000 write(3, \"a\\q\", 2) = 2 <0.000001>"),
            (1, Problem::BadEscape)
        );
        assert_eq!(
            problem("1 1.000000 write(3, , 2) = 2 <0.000001>"),
            (1, Problem::EmptyArg)
        );
        assert_eq!(
            problem("1 1.000000 fsync(3</d>x) = 0 <0.000001>"),
            (1, Problem::BadFd)
        );
        assert_eq!(
            problem("1 1.000000 fsync(3</d) = 0 <0.000001>"),
            (1, Problem::Unbalanced)
        );
        assert_eq!(problem("1 1.000000 fsync(3)"), (1, Problem::NoReturn));
        assert_eq!(
            problem("1 1.000000 fsync(3) = zero <0.000001>"),
            (1, Problem::BadReturn)
        );
        assert_eq!(
            problem("1 1.000000 fsync(3) = -1 eio <0.000001>"),
            (1, Problem::BadReturn)
        );
        assert_eq!(problem("1 1.000000 fsync(3) = 0"), (1, Problem::NoDuration));
        let e = parse("1 1.000000 fsync(3) = 0").expect_err("error");
        assert_eq!(
            e.to_string(),
            "strace output line 1: no <seconds> duration at the end (strace -T): 1 1.000000 fsync(3) = 0"
        );
    }

    #[test]
    fn exit_lines_are_accepted_and_nothing_else_with_plus_signs() {
        assert!(parse("1 1.000000 +++ exited with 0 +++\n2 1.000000 +++ killed by SIGTERM +++\n3 1.000000 +++ killed by SIGSEGV (core dumped) +++").expect("exits").is_empty());
        assert_eq!(
            problem("1 1.000000 +++ exited with zero +++"),
            (1, Problem::NotACall)
        );
    }
}
