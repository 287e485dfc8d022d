//! The check itself: every acknowledged request had a barrier inside its
//! window, on a file under the data directory, after the data written to
//! that file, with the directory of every name the file depends on synced
//! before the answer; and nothing flushed the data directory otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use super::call::{Call, Micros, Outcome};
use super::files::{CallError, Files, Forbidden, Sync, Write, files};

/// At most this many findings of each sort are printed.
const SHOWN: usize = 10;

/// What the trace is checked against.
#[derive(Clone, Debug)]
pub struct Scope {
    /// The gateway's data directory, as the canonical path strace prints
    /// (`std::fs::canonicalize` of it, or of its parent if the gateway
    /// makes it).
    pub data_dir: PathBuf,
    /// Paths that existed before the trace started. A name never seen to
    /// exist in the trace and opened with `O_CREAT` is taken as created.
    pub existing: BTreeSet<PathBuf>,
    /// If set, only a barrier on a file under this path counts for a
    /// request: the store's durability point (the journal), so a barrier
    /// some background task happens to make inside a window is not taken
    /// for the request's own.
    pub barrier_under: Option<PathBuf>,
    /// Files under which `sync_file_range` is counted but not forbidden: a
    /// store's own flushing off the acknowledgement path (sled's, of the
    /// small state the journal also holds). Requests still need a real
    /// barrier in their window.
    pub tolerated: Vec<PathBuf>,
}

impl Scope {
    /// The data directory `data_dir`, with nothing in it before the trace.
    pub fn new(data_dir: impl Into<PathBuf>) -> Scope {
        Scope {
            data_dir: data_dir.into(),
            existing: BTreeSet::new(),
            barrier_under: None,
            tolerated: Vec::new(),
        }
    }
}

/// A request the gateway answered with success: its window, as the client
/// saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// What it was, for the report (`record.send <id>`, `inbox.ack`).
    pub label: String,
    /// When the client sent it.
    pub sent: Micros,
    /// When the client had the whole success response.
    pub received: Micros,
}

/// Why the check could not be run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// A traced call that cannot be read as that call.
    #[error(transparent)]
    Call(#[from] CallError),
    /// A request answered before it was sent.
    #[error("request {label}: received at {received} before it was sent at {sent}")]
    Window {
        /// The request.
        label: String,
        /// When it was sent.
        sent: Micros,
        /// When it was answered.
        received: Micros,
    },
}

/// An acknowledged request with no barrier inside its window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// The request.
    pub request: Request,
    /// The sync nearest its window, and why it does not count; `None` if
    /// nothing under the data directory was ever synced.
    pub nearest: Option<Nearest>,
}

/// The sync nearest a request's window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nearest {
    /// The sync.
    pub sync: Sync,
    /// Why it is not the request's barrier.
    pub why: Why,
}

/// Why a sync is not a request's barrier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// It failed (`= -1 EIO`).
    Failed(String),
    /// It never returned in the trace.
    NeverReturned,
    /// It started this many µs before the request was sent.
    StartedBeforeSent(Micros),
    /// It returned this many µs after the response was received.
    ReturnedAfterResponse(Micros),
    /// A write to the same file, on this line, had not returned when it
    /// started, so it need not cover that write.
    WriteInFlight(usize),
    /// A synchronous write: an earlier plain write to the file, on this
    /// line, was not synced before it returned.
    EarlierWriteUnsynced(usize),
    /// No write to its file began between the request being sent and the
    /// sync: it committed nothing of the request's.
    NothingWritten,
}

/// An acknowledged request whose barrier file has a name whose directory
/// was not synced before the response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsynced {
    /// The request.
    pub request: Request,
    /// The barrier (the first in its window).
    pub barrier: Sync,
    /// The name, the barrier's file or one of its directories.
    pub name: PathBuf,
    /// The call that created the name, and its line.
    pub created_by: (String, usize),
}

/// Counts over the whole trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Acknowledged requests checked.
    pub requests: usize,
    /// Of them, those with a barrier in their window (whose file's names
    /// may still not have been durable: [`Verdict::unsynced`]).
    pub with_barrier: usize,
    /// Writes (and size changes) to files under the data directory.
    pub data_writes: usize,
    /// Successful barriers on files under the data directory: `fsync`,
    /// `fdatasync`, and writes through `O_DSYNC`/`O_SYNC` descriptors.
    pub barriers: usize,
    /// `fsync`/`fdatasync` of files there that failed.
    pub failed_barriers: usize,
    /// Successful syncs of directories there.
    pub directory_syncs: usize,
    /// Barriers that followed at least one write to their file since its
    /// previous barrier: the committed batches, as far as the trace shows.
    pub batches: usize,
    /// Distinct barriers that were the first in some request's window.
    pub barriers_used: usize,
    /// `sync_file_range` calls on files under the data directory.
    pub sync_file_range: usize,
    /// Of those, the ones under [`Scope::tolerated`].
    pub sync_file_range_tolerated: usize,
}

/// The outcome of the check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The counts.
    pub stats: Stats,
    /// Requests without a barrier in their window.
    pub missing: Vec<Missing>,
    /// Requests whose barrier's file has a name not made durable in time.
    pub unsynced: Vec<Unsynced>,
    /// Calls never allowed on the data directory.
    pub forbidden: Vec<Forbidden>,
}

impl Verdict {
    /// Whether every promise held.
    pub fn passed(&self) -> bool {
        self.missing.is_empty() && self.unsynced.is_empty() && self.forbidden.is_empty()
    }
}

/// Checks the calls of a trace against the requests the gateway
/// acknowledged while it ran.
///
/// A request's barrier is a sync that returned 0 (or a write through an
/// `O_DSYNC`/`O_SYNC` descriptor) on a file under the data directory that
/// started after the request was sent, returned before its response was
/// received, started after every write to that file that began before it
/// had returned, and follows a write to that file that began after the
/// request was sent (the request's own data can be written no earlier).
/// For the barrier's file, and each of its directories under the data
/// directory, created during the trace (by its name at the response,
/// following renames), an `fsync` (or `fdatasync`) of the parent directory
/// must have started after the creation returned and returned before the
/// response.
///
/// # Errors
/// A call that cannot be read as that call, or a request whose window is
/// reversed.
pub fn check(calls: &[Call], scope: &Scope, requests: &[Request]) -> Result<Verdict, CheckError> {
    for r in requests {
        if r.received < r.sent {
            return Err(CheckError::Window {
                label: r.label.clone(),
                sent: r.sent,
                received: r.received,
            });
        }
    }
    let files = files(calls, &scope.data_dir, &scope.existing)?;
    let index = Index::new(&files, scope.barrier_under.as_deref());
    let (tolerated, forbidden): (Vec<_>, Vec<_>) = files.forbidden.iter().cloned().partition(|f| {
        f.call == "sync_file_range"
            && f.target
                .as_ref()
                .is_some_and(|t| scope.tolerated.iter().any(|p| t.starts_with(p)))
    });
    let mut verdict = Verdict {
        forbidden,
        ..Verdict::default()
    };
    let mut used = BTreeSet::new();
    for request in requests {
        let candidates = index.in_window(request);
        let Some(first) = candidates.first() else {
            verdict.missing.push(Missing {
                request: request.clone(),
                nearest: index.nearest(request),
            });
            continue;
        };
        used.insert(first.line);
        verdict.stats.with_barrier += 1;
        let durable = candidates
            .iter()
            .any(|b| index.names_synced(b, request.received).is_ok());
        if !durable && let Err((name, created_by)) = index.names_synced(first, request.received) {
            verdict.unsynced.push(Unsynced {
                request: request.clone(),
                barrier: (*first).clone(),
                name,
                created_by,
            });
        }
    }
    verdict.stats.requests = requests.len();
    verdict.stats.barriers_used = used.len();
    verdict.stats.data_writes = files.writes.values().map(Vec::len).sum();
    verdict.stats.barriers = index
        .barriers
        .iter()
        .filter(|b| b.outcome.succeeded())
        .count();
    verdict.stats.failed_barriers = index
        .barriers
        .iter()
        .filter(|b| matches!(b.outcome, Outcome::Failed { .. }))
        .count();
    verdict.stats.directory_syncs = index
        .directory_syncs
        .values()
        .flatten()
        .filter(|s| s.outcome.succeeded())
        .count();
    verdict.stats.batches = index.batches();
    verdict.stats.sync_file_range = files
        .forbidden
        .iter()
        .filter(|f| f.call == "sync_file_range")
        .count();
    verdict.stats.sync_file_range_tolerated = tolerated.len();
    Ok(verdict)
}

fn end(sync: &Sync) -> Option<Micros> {
    sync.outcome.end()
}

/// The trace's files arranged for the per-request questions.
struct Index<'f> {
    files: &'f Files,
    /// Syncs of files (not directories), in start order.
    barriers: Vec<Sync>,
    /// Whether each of `barriers` covers the writes before it.
    covers: Vec<bool>,
    /// Syncs of directories, by directory.
    directory_syncs: BTreeMap<&'f Path, Vec<&'f Sync>>,
    /// Per file: its writes' starts, and the latest end among the writes
    /// up to each (`u64::MAX` for one that never returned).
    reach: BTreeMap<&'f Path, (Vec<Micros>, Vec<Micros>)>,
}

impl<'f> Index<'f> {
    fn new(files: &'f Files, barrier_under: Option<&Path>) -> Index<'f> {
        let mut barriers = Vec::new();
        let mut directory_syncs: BTreeMap<&Path, Vec<&Sync>> = BTreeMap::new();
        for sync in &files.syncs {
            if files.directories.contains(&sync.path) {
                directory_syncs.entry(&sync.path).or_default().push(sync);
            } else if barrier_under.is_none_or(|p| sync.path.starts_with(p)) {
                barriers.push(sync.clone());
            }
        }
        barriers.sort_by_key(|b| (b.start, b.line));
        let reach = files
            .writes
            .iter()
            .map(|(path, writes)| {
                let mut sorted: Vec<&Write> = writes.iter().collect();
                sorted.sort_by_key(|w| (w.start, w.line));
                let starts = sorted.iter().map(|w| w.start).collect();
                let ends = sorted
                    .iter()
                    .scan(0, |latest, w| {
                        *latest = (*latest).max(w.end.unwrap_or(u64::MAX));
                        Some(*latest)
                    })
                    .collect();
                (path.as_path(), (starts, ends))
            })
            .collect();
        let mut index = Index {
            files,
            barriers,
            covers: Vec::new(),
            directory_syncs,
            reach,
        };
        index.covers = index
            .barriers
            .iter()
            .map(|b| index.qualifies(b).is_ok())
            .collect();
        index
    }

    /// The barriers that cover their writes and lie inside `request`'s
    /// window, in start order.
    fn in_window(&self, request: &Request) -> Vec<&Sync> {
        let from = self.barriers.partition_point(|b| b.start < request.sent);
        self.barriers[from..]
            .iter()
            .zip(&self.covers[from..])
            .take_while(|(b, _)| b.start <= request.received)
            .filter(|(b, covers)| {
                **covers
                    && end(b).is_some_and(|e| e <= request.received)
                    && self.wrote_for(b, request)
            })
            .map(|(b, _)| b)
            .collect()
    }

    /// Whether a write to `barrier`'s file began after `request` was sent
    /// and before the barrier (or is the barrier, a synchronous write): the
    /// gateway cannot write a request's data before it has it, so a
    /// barrier with nothing written since then commits nothing of it.
    fn wrote_for(&self, barrier: &Sync, request: &Request) -> bool {
        let Some((starts, _)) = self.reach.get(barrier.path.as_path()) else {
            return false;
        };
        let first = starts.partition_point(|&s| s < request.sent);
        starts
            .get(first)
            .is_some_and(|&s| s < barrier.start || (barrier.dsync_write && s == barrier.start))
    }

    /// Whether a file sync covers the writes before it: it returned 0 and
    /// started after every write to its file that began before it had
    /// returned; a synchronous write also needs the file's last plain write
    /// before it synced by then.
    fn qualifies(&self, barrier: &Sync) -> Result<(), Why> {
        match &barrier.outcome {
            Outcome::Failed { errno, .. } => return Err(Why::Failed(errno.clone())),
            Outcome::Unknown => return Err(Why::NeverReturned),
            Outcome::Returned { .. } => {}
        }
        let writes = self.files.writes.get(&barrier.path);
        if let Some((starts, ends)) = self.reach.get(barrier.path.as_path()) {
            let before = starts.partition_point(|&s| s < barrier.start);
            if before > 0 && ends[before - 1] > barrier.start {
                let late = writes
                    .into_iter()
                    .flatten()
                    .filter(|w| w.start < barrier.start && w.end.is_none_or(|e| e > barrier.start))
                    .map(|w| w.line)
                    .min()
                    .unwrap_or_default();
                return Err(Why::WriteInFlight(late));
            }
        }
        if barrier.dsync_write {
            let plain = writes
                .into_iter()
                .flatten()
                .filter(|w| !w.dsync && w.start < barrier.start)
                .max_by_key(|w| (w.start, w.line));
            if let Some(w) = plain {
                let synced = self.barriers.iter().any(|s| {
                    !s.dsync_write
                        && s.path == barrier.path
                        && s.outcome.succeeded()
                        && w.end.is_some_and(|e| s.start >= e)
                        && end(s).is_some_and(|e| Some(e) <= end(barrier))
                });
                if !synced {
                    return Err(Why::EarlierWriteUnsynced(w.line));
                }
            }
        }
        Ok(())
    }

    /// The sync of a file under the data directory nearest `request`'s
    /// window, and why it is not its barrier.
    fn nearest(&self, request: &Request) -> Option<Nearest> {
        let gap = |b: &Sync| {
            let finish = end(b).unwrap_or(u64::MAX);
            if finish < request.sent {
                request.sent - finish
            } else {
                b.start.saturating_sub(request.received)
            }
        };
        let nearest = self.barriers.iter().min_by_key(|b| (gap(b), b.start))?;
        let why = match self.qualifies(nearest) {
            Err(why @ (Why::Failed(_) | Why::NeverReturned)) => why,
            _ if nearest.start < request.sent => {
                Why::StartedBeforeSent(request.sent - nearest.start)
            }
            _ if end(nearest).is_some_and(|e| e > request.received) => {
                Why::ReturnedAfterResponse(end(nearest).unwrap_or_default() - request.received)
            }
            Err(why) => why,
            // Covering, inside the window: only the request's write lacks.
            Ok(()) => Why::NothingWritten,
        };
        Some(Nearest {
            sync: nearest.clone(),
            why,
        })
    }

    /// Whether every name `barrier`'s file depends on at `response` was
    /// made durable by then; else the first name that was not, and the
    /// call that created it.
    fn names_synced(
        &self,
        barrier: &Sync,
        response: Micros,
    ) -> Result<(), (PathBuf, (String, usize))> {
        // The file's name at the response: renames after the barrier move it.
        let mut name = barrier.path.clone();
        for r in &self.files.renames {
            if r.start >= barrier.start
                && r.end <= response
                && let Ok(rest) = name.strip_prefix(&r.from)
            {
                name = if rest.as_os_str().is_empty() {
                    r.to.clone()
                } else {
                    r.to.join(rest)
                };
            }
        }
        for path in name.ancestors() {
            let Some(created) = self
                .files
                .creations
                .get(path)
                .and_then(|c| c.iter().filter(|c| c.end <= response).max_by_key(|c| c.end))
            else {
                continue;
            };
            let Some(parent) = path.parent() else {
                continue;
            };
            let synced = self.directory_syncs.get(parent).is_some_and(|syncs| {
                syncs.iter().any(|s| {
                    s.outcome.succeeded()
                        && s.start >= created.end
                        && end(s).is_some_and(|e| e <= response)
                })
            });
            if !synced {
                return Err((path.to_path_buf(), (created.call.clone(), created.line)));
            }
        }
        Ok(())
    }

    /// Barriers that followed at least one write to their file since its
    /// previous successful barrier.
    fn batches(&self) -> usize {
        let mut previous: BTreeMap<&Path, Micros> = BTreeMap::new();
        let mut batches = 0;
        for b in self.barriers.iter().filter(|b| b.outcome.succeeded()) {
            let since = previous.insert(&b.path, b.start);
            // A synchronous write is its own batch; the writes a sync
            // commits are those since the file's previous barrier.
            let wrote = self
                .files
                .writes
                .get(&b.path)
                .into_iter()
                .flatten()
                .any(|w| w.start <= b.start && since.is_none_or(|s| w.start > s));
            if wrote {
                batches += 1;
            }
        }
        batches
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Failed(errno) => write!(f, "it failed with {errno}"),
            Why::NeverReturned => f.write_str("it never returned"),
            Why::StartedBeforeSent(us) => {
                write!(f, "it started {us} µs before the request was sent")
            }
            Why::ReturnedAfterResponse(us) => {
                write!(f, "it returned {us} µs after the response was received")
            }
            Why::WriteInFlight(line) => {
                write!(
                    f,
                    "the write to the file on line {line} had not returned when it started"
                )
            }
            Why::EarlierWriteUnsynced(line) => {
                write!(
                    f,
                    "the plain write to the file on line {line} was never synced"
                )
            }
            Why::NothingWritten => {
                f.write_str("no write to its file began between the request being sent and it")
            }
        }
    }
}

impl fmt::Display for Sync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}({}) on line {}",
            self.call,
            self.path.display(),
            self.line
        )
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (sent {}, answered {}): no barrier in its window; ",
            self.request.label, self.request.sent, self.request.received
        )?;
        match &self.nearest {
            Some(n) => write!(f, "nearest {}: {}", n.sync, n.why),
            None => f.write_str("nothing under the data directory was ever synced"),
        }
    }
}

impl fmt::Display for Unsynced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (call, line) = &self.created_by;
        write!(
            f,
            "{}: its barrier {} is on a file whose name {} ({call} on line {line}) was not made durable by an fsync of {} before the response",
            self.request.label,
            self.barrier,
            self.name.display(),
            self.name.parent().unwrap_or(Path::new("/")).display()
        )
    }
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Some(t) => write!(f, "{}({}) on line {}", self.call, t.display(), self.line),
            None => write!(f, "{} on line {}", self.call, self.line),
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} acknowledged requests, {} with a barrier in their window",
            self.requests, self.with_barrier
        )?;
        writeln!(
            f,
            "{} writes to files under the data directory; {} barriers ({} failed), {} directory syncs, {} sync_file_range calls ({} tolerated)",
            self.data_writes,
            self.barriers,
            self.failed_barriers,
            self.directory_syncs,
            self.sync_file_range,
            self.sync_file_range_tolerated
        )?;
        let per = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        write!(
            f,
            "{} committed batches ({:.2} barriers per batch); {} barriers were the first in some request's window ({:.1} acknowledged requests per barrier)",
            self.batches,
            per(self.barriers, self.batches),
            self.barriers_used,
            per(self.with_barrier, self.barriers_used)
        )
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.stats)?;
        list(f, "acknowledged without a barrier", &self.missing)?;
        list(f, "acknowledged before a name was durable", &self.unsynced)?;
        list(f, "forbidden calls on the data directory", &self.forbidden)?;
        if self.passed() {
            f.write_str("every acknowledgement rested on a barrier")?;
        }
        Ok(())
    }
}

fn list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, title: &str, items: &[T]) -> fmt::Result {
    if items.is_empty() {
        return Ok(());
    }
    writeln!(f, "{title}: {}", items.len())?;
    for item in items.iter().take(SHOWN) {
        writeln!(f, "  {item}")?;
    }
    if items.len() > SHOWN {
        writeln!(f, "  ... and {} more", items.len() - SHOWN)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barriers::parse::parse;

    /// Second 100 of the epoch plus `us`, as strace prints it.
    fn at(us: u64) -> String {
        format!("100.{us:06}")
    }

    fn micros(us: u64) -> Micros {
        100_000_000 + us
    }

    /// A journal segment made the way the new store makes them: `.tmp`
    /// created, preallocated, synced, renamed, its directory synced.
    fn segment() -> String {
        [
            format!("10 {} mkdirat(AT_FDCWD</>, \"/d/ledger/journal\", 0700) = 0 <0.000010>", at(0)),
            format!("10 {} fsync(4</d/ledger>) = 0 <0.000010>", at(20)),
            format!("10 {} openat(AT_FDCWD</>, \"/d/ledger/journal/1.jnl.tmp\", O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC, 0600) = 5</d/ledger/journal/1.jnl.tmp> <0.000010>", at(40)),
            format!("10 {} fallocate(5</d/ledger/journal/1.jnl.tmp>, 0, 0, 67108864) = 0 <0.000010>", at(60)),
            format!("10 {} fsync(5</d/ledger/journal/1.jnl.tmp>) = 0 <0.000010>", at(80)),
            format!("10 {} renameat(AT_FDCWD</>, \"/d/ledger/journal/1.jnl.tmp\", AT_FDCWD</>, \"/d/ledger/journal/1.jnl\") = 0 <0.000010>", at(100)),
            format!("10 {} fsync(6</d/ledger/journal>) = 0 <0.000010>", at(120)),
        ]
        .join("\n")
    }

    fn run(trace: &str, requests: &[Request]) -> Verdict {
        let calls = parse(trace).expect("parses");
        let mut scope = Scope::new("/d");
        scope.existing.insert("/d/ledger".into());
        check(&calls, &scope, requests).expect("checks")
    }

    fn request(sent: u64, received: u64) -> Request {
        Request {
            label: format!("record.send {sent}"),
            sent: micros(sent),
            received: micros(received),
        }
    }

    #[test]
    fn a_write_then_fdatasync_inside_the_window_passes() {
        let trace = [
            segment(),
            format!(
                "11 {} pwrite64(5</d/ledger/journal/1.jnl>, \"\\x01\\x02\"..., 812, 0) = 812 <0.000010>",
                at(1000)
            ),
            format!(
                "11 {} fdatasync(5</d/ledger/journal/1.jnl>) = 0 <0.000100>",
                at(1020)
            ),
            format!(
                "11 {} pwrite64(5</d/ledger/journal/1.jnl>, \"\\x01\\x02\"..., 812, 812) = 812 <0.000010>",
                at(2000)
            ),
            format!(
                "11 {} fdatasync(5</d/ledger/journal/1.jnl>) = 0 <0.000100>",
                at(2020)
            ),
        ]
        .join("\n");
        let verdict = run(
            &trace,
            &[request(900, 1200), request(950, 1130), request(1900, 2200)],
        );
        assert!(verdict.passed(), "{verdict}");
        assert_eq!(
            verdict.stats,
            Stats {
                requests: 3,
                with_barrier: 3,
                data_writes: 3,
                barriers: 3,
                failed_barriers: 0,
                directory_syncs: 2,
                batches: 3,
                barriers_used: 2,
                sync_file_range: 0,
                sync_file_range_tolerated: 0,
            }
        );
        assert!(
            verdict
                .to_string()
                .contains("every acknowledgement rested on a barrier")
        );
    }

    #[test]
    fn a_request_without_a_barrier_reports_the_nearest_sync() {
        let trace = [
            segment(),
            format!(
                "11 {} pwrite64(5</d/ledger/journal/1.jnl>, \"\\x01\"..., 812, 0) = 812 <0.000010>",
                at(1000)
            ),
            format!(
                "11 {} sync_file_range(5</d/ledger/journal/1.jnl>, 0, 812, SYNC_FILE_RANGE_WAIT_BEFORE|SYNC_FILE_RANGE_WRITE|SYNC_FILE_RANGE_WAIT_AFTER) = 0 <0.000100>",
                at(1020)
            ),
            format!(
                "11 {} fdatasync(5</d/ledger/journal/1.jnl>) = 0 <0.000100>",
                at(5000)
            ),
        ]
        .join("\n");
        let verdict = run(&trace, &[request(900, 1200)]);
        assert!(!verdict.passed());
        assert_eq!(verdict.stats.with_barrier, 0);
        assert_eq!(verdict.stats.sync_file_range, 1);
        assert_eq!(verdict.missing.len(), 1);
        let nearest = verdict.missing[0].nearest.as_ref().expect("a nearest sync");
        // The segment's own fsync ended 1,000 - 90 µs before; the later
        // fdatasync starts 3,800 µs after: the first is nearer.
        assert_eq!(nearest.sync.line, 5);
        assert_eq!(nearest.why, Why::StartedBeforeSent(900 - 80));
        assert_eq!(
            verdict.forbidden,
            [Forbidden {
                line: 9,
                call: "sync_file_range".into(),
                target: Some("/d/ledger/journal/1.jnl".into())
            }]
        );
        let text = verdict.to_string();
        assert!(text.contains("acknowledged without a barrier: 1"), "{text}");
        assert!(
            text.contains("sync_file_range(/d/ledger/journal/1.jnl) on line 9"),
            "{text}"
        );
    }

    #[test]
    fn a_barrier_outside_the_data_directory_or_on_a_file_not_written_does_not_count() {
        let trace = [
            format!(
                "11 {} pwrite64(5</d/db>, \"\\x01\"..., 812, 0) = 812 <0.000010>",
                at(1000)
            ),
            format!("11 {} fdatasync(7</elsewhere/db>) = 0 <0.000100>", at(1020)),
        ]
        .join("\n");
        let verdict = run(&trace, &[request(900, 1200)]);
        assert_eq!(verdict.missing.len(), 1);
        assert_eq!(verdict.missing[0].nearest, None);
        assert!(
            verdict
                .to_string()
                .contains("nothing under the data directory was ever synced")
        );

        let trace = [
            format!(
                "11 {} pwrite64(5</d/db>, \"\\x01\"..., 812, 0) = 812 <0.000010>",
                at(500)
            ),
            format!(
                "11 {} pwrite64(6</d/other>, \"\\x01\"..., 812, 0) = 812 <0.000010>",
                at(1000)
            ),
            format!("11 {} fdatasync(5</d/db>) = 0 <0.000100>", at(1020)),
        ]
        .join("\n");
        let verdict = run(&trace, &[request(900, 1200)]);
        let nearest = verdict.missing[0].nearest.as_ref().expect("nearest");
        assert_eq!((nearest.sync.line, &nearest.why), (3, &Why::NothingWritten));
    }

    #[test]
    fn a_failed_barrier_does_not_count() {
        let trace = [
            format!(
                "11 {} pwrite64(5</d/db>, \"\\x01\"..., 812, 0) = 812 <0.000010>",
                at(1000)
            ),
            format!(
                "11 {} fdatasync(5</d/db>) = -1 EIO (Input/output error) <0.000100>",
                at(1020)
            ),
        ]
        .join("\n");
        let verdict = run(&trace, &[request(900, 1200)]);
        assert_eq!(verdict.stats.failed_barriers, 1);
        assert_eq!(verdict.stats.barriers, 0);
        let nearest = verdict.missing[0].nearest.as_ref().expect("nearest");
        assert_eq!(nearest.why, Why::Failed("EIO".into()));
        assert!(
            verdict
                .to_string()
                .contains("fdatasync(/d/db) on line 2: it failed with EIO")
        );
    }

    #[test]
    fn a_barrier_before_the_write_does_not_count() {
        // Started while the write, by another thread, had not returned.
        let trace = [
            format!(
                "11 {} pwrite64(5</d/db>, \"\\x01\"..., 812, 0 <unfinished ...>",
                at(1000)
            ),
            format!("12 {} fdatasync(5</d/db> <unfinished ...>", at(1010)),
            format!("11 {} <... pwrite64 resumed>) = 812 <0.000030>", at(1030)),
            format!("12 {} <... fdatasync resumed>) = 0 <0.000100>", at(1110)),
        ]
        .join("\n");
        let verdict = run(&trace, &[request(900, 1200)]);
        let nearest = verdict.missing[0].nearest.as_ref().expect("nearest");
        assert_eq!(nearest.why, Why::WriteInFlight(1));
        // Entirely before the write: it committed nothing of the request.
        let trace = [
            format!("12 {} fdatasync(5</d/db>) = 0 <0.000100>", at(1000)),
            format!(
                "11 {} pwrite64(5</d/db>, \"\\x01\"..., 812, 0) = 812 <0.000010>",
                at(1110)
            ),
        ]
        .join("\n");
        let verdict = run(&trace, &[request(900, 1200)]);
        let nearest = verdict.missing[0].nearest.as_ref().expect("nearest");
        assert_eq!(nearest.why, Why::NothingWritten);
        // Returned after the response.
        let trace = [
            format!(
                "11 {} pwrite64(5</d/db>, \"\\x01\"..., 812, 0) = 812 <0.000010>",
                at(1000)
            ),
            format!("12 {} fdatasync(5</d/db>) = 0 <0.000300>", at(1020)),
        ]
        .join("\n");
        let verdict = run(&trace, &[request(900, 1200)]);
        let nearest = verdict.missing[0].nearest.as_ref().expect("nearest");
        assert_eq!(nearest.why, Why::ReturnedAfterResponse(1320 - 1200));
    }

    #[test]
    fn unfinished_and_resumed_calls_across_threads_are_checked_joined() {
        let trace = [
            format!(
                "11 {} pwrite64(5</d/db>, \"\\x01\"..., 812, 0 <unfinished ...>",
                at(1000)
            ),
            format!(
                "13 {} write(9<socket:[7]>, \"HTTP/1.1 201\"..., 400 <unfinished ...>",
                at(1005)
            ),
            format!("11 {} <... pwrite64 resumed>) = 812 <0.000010>", at(1012)),
            format!("12 {} fdatasync(5</d/db> <unfinished ...>", at(1020)),
            format!("13 {} <... write resumed>) = 400 <0.000020>", at(1025)),
            format!("12 {} <... fdatasync resumed>) = 0 <0.000100>", at(1120)),
        ]
        .join("\n");
        let verdict = run(&trace, &[request(900, 1200)]);
        assert!(verdict.passed(), "{verdict}");
        assert_eq!(verdict.stats.data_writes, 1, "the socket write is not data");
        // The same answer received before the sync returned is not durable.
        let verdict = run(&trace, &[request(900, 1100)]);
        assert_eq!(verdict.missing.len(), 1, "{verdict}");
    }

    #[test]
    fn sync_file_range_syncfs_msync_and_io_uring_are_forbidden() {
        let trace = [
            format!("11 {} sync_file_range(5</d/db>, 0, 24, SYNC_FILE_RANGE_WRITE) = 0 <0.000010>", at(1)),
            format!("11 {} sync_file_range(5</elsewhere/db>, 0, 24, SYNC_FILE_RANGE_WRITE) = 0 <0.000010>", at(2)),
            format!("11 {} syncfs(5</d>) = 0 <0.000010>", at(3)),
            format!("11 {} msync(0x7f0000000000, 4096, MS_SYNC) = 0 <0.000010>", at(4)),
            format!("11 {} io_uring_setup(8, {{flags=0}}) = 9<anon_inode:[io_uring]> <0.000010>", at(5)),
            format!("11 {} io_uring_enter(9<anon_inode:[io_uring]>, 1, 0, 0, NULL, 8) = 1 <0.000010>", at(6)),
        ]
        .join("\n");
        let verdict = run(&trace, &[]);
        let calls: Vec<(usize, &str)> = verdict
            .forbidden
            .iter()
            .map(|f| (f.line, f.call.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                (1, "sync_file_range"),
                (3, "syncfs"),
                (4, "msync"),
                (5, "io_uring_setup"),
                (6, "io_uring_enter")
            ]
        );
        assert_eq!(verdict.stats.sync_file_range, 1);
        assert!(!verdict.passed());
    }

    #[test]
    fn a_name_whose_directory_was_not_synced_before_the_response_is_reported() {
        // The segment is renamed into place but its directory synced only
        // after the response.
        let trace = [
            format!("10 {} openat(AT_FDCWD</>, \"/d/ledger/2.tmp\", O_RDWR|O_CREAT|O_EXCL, 0600) = 5</d/ledger/2.tmp> <0.000010>", at(0)),
            format!("10 {} pwrite64(5</d/ledger/2.tmp>, \"\\x01\"..., 812, 0) = 812 <0.000010>", at(1000)),
            format!("10 {} fdatasync(5</d/ledger/2.tmp>) = 0 <0.000010>", at(1020)),
            format!("10 {} renameat2(AT_FDCWD</>, \"/d/ledger/2.tmp\", AT_FDCWD</>, \"/d/ledger/2.jnl\", RENAME_NOREPLACE) = 0 <0.000010>", at(1040)),
            format!("10 {} fsync(6</d/ledger>) = 0 <0.000010>", at(1300)),
        ]
        .join("\n");
        let verdict = run(&trace, &[request(900, 1200), request(900, 1400)]);
        assert_eq!(verdict.stats.with_barrier, 2);
        assert_eq!(verdict.unsynced.len(), 1, "{verdict}");
        let u = &verdict.unsynced[0];
        assert_eq!(u.request.received, micros(1200));
        assert_eq!(u.name, Path::new("/d/ledger/2.jnl"));
        assert_eq!(u.created_by, ("renameat2".to_owned(), 4));
        assert!(
            verdict
                .to_string()
                .contains("was not made durable by an fsync of /d/ledger")
        );
    }

    #[test]
    fn a_write_through_an_o_dsync_descriptor_is_its_own_barrier() {
        let trace = [
            format!("10 {} openat(AT_FDCWD</>, \"/d/ledger/j\", O_WRONLY|O_DSYNC) = 5</d/ledger/j> <0.000010>", at(0)),
            format!("10 {} pwrite64(5</d/ledger/j>, \"\\x01\"..., 812, 0) = 812 <0.000100>", at(1000)),
        ]
        .join("\n");
        let mut scope = Scope::new("/d");
        scope
            .existing
            .extend(["/d/ledger".into(), "/d/ledger/j".into()]);
        let calls = parse(&trace).expect("parses");
        let verdict = check(&calls, &scope, &[request(900, 1200)]).expect("checks");
        assert!(verdict.passed(), "{verdict}");
        assert_eq!((verdict.stats.barriers, verdict.stats.batches), (1, 1));
    }

    #[test]
    fn a_reversed_window_is_an_error() {
        let calls = parse("").expect("parses");
        assert!(matches!(
            check(&calls, &Scope::new("/d"), &[request(10, 5)]),
            Err(CheckError::Window { .. })
        ));
    }
}
