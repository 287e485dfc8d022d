//! `xgate log ...`: append to, inspect and prove against a log, offline:
//! in a data directory, or in PostgreSQL with its key in a data directory.
//!
//! Output formats are a contract with tools outside this repository:
//!
//! ```text
//! append       {"appended":N,"tree_size":S,"root_hash":"..."}
//! checkpoint   the latest signed checkpoint note, byte for byte
//! key          <name>+<hex key id>+<base64(0x01 || public key)>
//! inclusion    {"leaf_index":I,"tree_size":N,"leaf_hash":"...","root_hash":"...","hashes":[...]}
//! consistency  {"from":M,"to":N,"old_root":"...","new_root":"...","hashes":[...]}
//! entry        {"index":I,"entry":"<base64>","leaf_hash":"..."}
//! verify       ok: <N> entries, <T> tiles, <C> checkpoints, root <base64>
//! compact      {"entries":N,"keys":K,"bytes_before":B,"bytes_after":A}
//! migrate      {"entries":N,"checkpoints":C,"keys":K}             (an old-layout directory)
//!              {"entries":N,"checkpoints":C,"keys":K,"bodies":B}  (across backends)
//! ```
//!
//! JSON is compact, one line, fields in exactly that order; hashes and
//! entries are standard base64 with padding. `--size` and `--to` default to
//! the log's current size. Only `append` may create a log; every other
//! command opens an existing one and changes nothing (`compact` and
//! `migrate` write only their new directory). `key` and `checkpoint`
//! also answer while a gateway holds the log: `key` reads only the key
//! file, and `checkpoint` then prints the copy outside the database, which
//! a running gateway refreshes at least once a second.
//!
//! # The store
//!
//! Every command but `compact` takes `--store STORE`, else `XGATE_STORE`,
//! else `embedded`: the data directory holds the log. With a
//! `postgres://` store the log is in that database and `--data-dir` is a
//! replica's data directory, which holds only the log's key; the commands
//! read it through the same [`Ledger`] code path, with the same output. A
//! command that reads never creates anything there: a directory without
//! `checkpoint.key`, or a database that holds no log, is refused (opening
//! one brings an older schema up to date, as any replica starting does).
//! The URL is never printed: messages name the store as
//! [`Store::redacted`] shows it.
//!
//! - `key` reads the key file alone when the directory has no embedded
//!   database (a replica's), whatever the store: it needs no database.
//! - `checkpoint` on PostgreSQL prints the newest checkpoint any replica
//!   signed; every one is published (its tiles commit with it).
//! - `append` on PostgreSQL is allowed, also while replicas run: each batch
//!   takes the log's lock in the database exactly as a replica's batch
//!   does, so its entries get the next indices, the tiles and checkpoint
//!   stay one tree, and the replicas see the new size on their next batch
//!   or read. As on disk, it creates the log (and the key in the data
//!   directory) if the database holds none, and its lines are not
//!   envelopes: `xgate audit replay` reports them.
//! - `migrate` moves a log between the backends (issue 23), stopped:
//!   `--data-dir DIR --into postgres://...` copies the log on disk in DIR
//!   into an empty database (DIR keeps its key and then serves as the
//!   replicas' data directory; the log on disk in it is left as it was and
//!   must not be served again), and `--store postgres://... --data-dir DIR
//!   --into NEWDIR` copies the database's log into a new data directory
//!   with DIR's key and what else DIR holds (PKI, policy). Every entry,
//!   every published checkpoint (signed again: the same notes, byte for
//!   byte), the owner's state and every body are copied and checked
//!   ([`xgate_ledger::transfer`]); the line then adds `"bodies":B` (new in
//!   issue 23; the old-layout conversion prints the line without it). A
//!   target that is not empty is refused. Stop every replica first: a copy
//!   that sees the log grow fails, but state changed without an entry
//!   (an inbox acknowledged) would not be noticed. A copy into a database
//!   that fails or is killed leaves it partly written: drop and create the
//!   database again, then run again. A copy into a directory is built in a
//!   hidden `.NEWDIR.partial-*` beside it and renamed when whole: a failure
//!   removes it, a kill leaves it to delete.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;
use xgate_ledger::pg::PgLog;
use xgate_ledger::{KEY_FILE, Ledger, Log, MAX_ENTRY_LEN, NoteSigner, NoteVerifier, OpenOptions};
use xgate_server::store_setting::Store;

use super::error::Error;
use super::values;
use xgate_server::logview::{self, b64};

/// Entries per append: large enough to amortise the flush or the round
/// trips, small enough that one batch stays a modest amount of memory in
/// sled or one modest transaction in PostgreSQL.
const APPEND_BATCH: usize = 10_000;
/// Bytes of entries per append at most.
const APPEND_BYTES: usize = 8 << 20;
/// The variable naming the store when `--store` is not given.
const STORE_VAR: &str = "XGATE_STORE";

/// The `xgate log` subcommands.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Append each line of stdin as one entry and sign a checkpoint; creates
    /// the log if needed.
    Append(AppendArgs),
    /// Print the latest signed checkpoint note.
    Checkpoint(LogAt),
    /// Print the checkpoint verifier key.
    Key(LogAt),
    /// Print an inclusion proof for one entry.
    Inclusion(InclusionArgs),
    /// Print a consistency proof between two tree sizes.
    Consistency(ConsistencyArgs),
    /// Print one entry and its leaf hash.
    Entry(EntryArgs),
    /// Recompute the whole log from its entries and check every stored hash
    /// and checkpoint.
    Verify(LogAt),
    /// Copy a stopped gateway's data directory into a new one whose
    /// database holds only the live records (sled keeps deleted ones on
    /// disk); the source is left as it was.
    Compact(CompactArgs),
    /// Convert a stopped gateway's data directory of the layout before the
    /// journal (everything in one sled database) into a new directory of
    /// the current layout, or move a stopped gateway's log between a data
    /// directory and PostgreSQL; the source is left as it was.
    Migrate(MigrateArgs),
}

/// The data directory `compact` works on.
#[derive(Debug, Args)]
pub struct DataDir {
    /// The log's data directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
}

/// Where the log of a command is: a data directory, and the store.
#[derive(Debug, Args)]
pub struct LogAt {
    /// The log's data directory (with PostgreSQL, the one holding its key).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Where the log is kept: `embedded` (the data directory) or a
    /// `postgres://` URL [default: XGATE_STORE, else embedded].
    #[arg(long, value_name = "STORE")]
    pub store: Option<String>,
}

/// Arguments of `xgate log append`.
#[derive(Debug, Args)]
pub struct AppendArgs {
    /// The log's data directory and store.
    #[command(flatten)]
    pub dir: LogAt,
    /// Origin (checkpoint key name) for a new log; must match an existing one.
    #[arg(long, value_parser = values::origin)]
    pub origin: Option<String>,
}

/// Arguments of `xgate log inclusion`.
#[derive(Debug, Args)]
pub struct InclusionArgs {
    /// The log's data directory and store.
    #[command(flatten)]
    pub dir: LogAt,
    /// Index of the entry to prove.
    #[arg(long, value_name = "I", value_parser = values::non_negative, allow_negative_numbers = true)]
    pub index: u64,
    /// Tree size to prove against [default: the log's size].
    #[arg(long, value_name = "N", value_parser = values::non_negative, allow_negative_numbers = true)]
    pub size: Option<u64>,
}

/// Arguments of `xgate log consistency`.
#[derive(Debug, Args)]
pub struct ConsistencyArgs {
    /// The log's data directory and store.
    #[command(flatten)]
    pub dir: LogAt,
    /// The older tree size (at least 1).
    #[arg(long, value_name = "M", value_parser = values::non_negative, allow_negative_numbers = true)]
    pub from: u64,
    /// The newer tree size [default: the log's size].
    #[arg(long, value_name = "N", value_parser = values::non_negative, allow_negative_numbers = true)]
    pub to: Option<u64>,
}

/// Arguments of `xgate log compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The data directory to copy.
    #[command(flatten)]
    pub dir: DataDir,
    /// The new data directory; must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub into: PathBuf,
}

/// Arguments of `xgate log migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The data directory to copy (with a PostgreSQL store, the one holding
    /// the log's key).
    #[command(flatten)]
    pub dir: LogAt,
    /// The new data directory (must not exist or be empty), or an empty
    /// PostgreSQL database (`postgres://...`) to move a data directory's
    /// log into.
    #[arg(long, value_name = "DIR|URL")]
    pub into: PathBuf,
}

/// Arguments of `xgate log entry`.
#[derive(Debug, Args)]
pub struct EntryArgs {
    /// The log's data directory and store.
    #[command(flatten)]
    pub dir: LogAt,
    /// Index of the entry.
    #[arg(long, value_name = "I", value_parser = values::non_negative, allow_negative_numbers = true)]
    pub index: u64,
}

impl LogCommand {
    /// Runs the command.
    ///
    /// # Errors
    /// [`Error::Ledger`] when the log cannot be opened or read,
    /// [`Error::Request`] for indices and sizes the log cannot answer or a
    /// database that cannot be used, [`Error::Usage`] for a `--store` that
    /// is not one, [`Error::LineTooLong`], [`Error::NoCheckpoint`], or an
    /// I/O error on stdin or stdout.
    pub fn run(self, stdin: &mut dyn Read, stdout: &mut dyn Write) -> Result<(), Error> {
        match self {
            LogCommand::Append(args) => append(&args, stdin, stdout),
            LogCommand::Checkpoint(at) => checkpoint(&at, stdout),
            LogCommand::Key(at) => {
                let verifier = key(&at)?;
                emit(stdout, format!("{verifier}\n").as_bytes())
            }
            LogCommand::Inclusion(args) => inclusion(&args, stdout),
            LogCommand::Consistency(args) => consistency(&args, stdout),
            LogCommand::Entry(args) => entry(&args, stdout),
            LogCommand::Compact(args) => compact(&args, stdout),
            LogCommand::Migrate(args) => migrate(&args, stdout),
            LogCommand::Verify(at) => {
                let report =
                    open_existing(&at.data_dir, &store_setting(at.store.as_deref())?)?.verify()?;
                let line = format!(
                    "ok: {} entries, {} tiles, {} checkpoints, root {}\n",
                    report.size,
                    report.tiles,
                    report.checkpoints,
                    b64(&report.root)
                );
                emit(stdout, line.as_bytes())
            }
        }
    }
}

/// The store a command names: `--store`, else `XGATE_STORE`, else
/// embedded. Neither value is ever repeated in a message: it may hold a
/// password.
///
/// # Errors
/// [`Error::Usage`] for a `--store` that is not a store,
/// [`Error::Request`] for such an `XGATE_STORE`.
pub(crate) fn store_setting(flag: Option<&str>) -> Result<Store, Error> {
    if let Some(value) = flag {
        return value
            .parse()
            .map_err(|e| Error::Usage(format!("--store: {e}")));
    }
    match std::env::var_os(STORE_VAR) {
        None => Ok(Store::Embedded),
        Some(value) if value.is_empty() => Ok(Store::Embedded),
        Some(value) => value.to_str().and_then(|v| v.parse().ok()).ok_or_else(|| {
            Error::Request(format!(
                "{STORE_VAR}: {}",
                xgate_server::store_setting::BadStore
            ))
        }),
    }
}

/// Opens an existing log for reading, in `store` with its key in `dir`:
/// never creates a key or a log.
///
/// # Errors
/// [`Error::Ledger`] for a data directory that holds no log,
/// [`Error::Request`] naming the store (redacted) for a database that
/// cannot be reached or holds no log.
pub(crate) fn open_existing(dir: &Path, store: &Store) -> Result<Box<dyn Ledger>, Error> {
    let options = OpenOptions::default();
    Ok(match store {
        Store::Embedded => Box::new(Log::open_existing(dir, &options)?),
        Store::Postgres(url) => {
            Box::new(PgLog::open_existing(url, dir, &options).map_err(|e| in_store(store, e))?)
        }
    })
}

/// `e`, which happened on the log in `store`, naming the store as it may
/// be shown.
fn in_store(store: &Store, e: xgate_ledger::Error) -> Error {
    match e {
        // A data directory's own failures name it already.
        e @ (xgate_ledger::Error::NotALog { .. } | xgate_ledger::Error::Io { .. }) => {
            Error::Ledger(e)
        }
        e => Error::Request(format!("{e} (store {})", store.redacted())),
    }
}

#[derive(Serialize)]
struct Appended {
    appended: u64,
    tree_size: u64,
    root_hash: String,
}

fn append(args: &AppendArgs, stdin: &mut dyn Read, stdout: &mut dyn Write) -> Result<(), Error> {
    let store = store_setting(args.dir.store.as_deref())?;
    // All of stdin is read and checked before the log is even opened, so a
    // bad line leaves no trace: no entries, and no new data directory.
    let mut input = Vec::new();
    stdin.read_to_end(&mut input).map_err(Error::Stdin)?;
    let entries = split_lines(&input);
    if let Some((line, e)) = entries
        .iter()
        .enumerate()
        .find(|(_, e)| e.len() > MAX_ENTRY_LEN)
    {
        return Err(Error::LineTooLong {
            line: line + 1,
            len: e.len(),
            max: MAX_ENTRY_LEN,
        });
    }

    let options = OpenOptions {
        origin: args.origin.clone(),
        ..OpenOptions::default()
    };
    // Creates a new log; an existing one must open as one (a damaged or
    // rolled-back database is refused, never silently restarted).
    let log: Box<dyn Ledger> = match &store {
        Store::Embedded => Box::new(Log::create_or_open(&args.dir.data_dir, &options)?),
        Store::Postgres(url) => Box::new(
            PgLog::open(url, &args.dir.data_dir, &options).map_err(|e| in_store(&store, e))?,
        ),
    };
    let mut rest = entries.as_slice();
    while !rest.is_empty() {
        let (mut n, mut bytes) = (0, 0);
        while n < rest.len()
            && n < APPEND_BATCH
            && (n == 0 || bytes + rest[n].len() <= APPEND_BYTES)
        {
            bytes += rest[n].len();
            n += 1;
        }
        let (batch, tail) = rest.split_at(n);
        let batch: Vec<Vec<u8>> = batch.iter().map(|e| e.to_vec()).collect();
        log.append_batch_with(
            &batch,
            Box::new(|_: std::ops::Range<u64>| xgate_ledger::WriteBatch::new()),
        )
        .map_err(|e| in_store(&store, e))?;
        rest = tail;
    }
    let signed = log.checkpoint().map_err(|e| in_store(&store, e))?;
    json(
        stdout,
        &Appended {
            appended: entries.len() as u64,
            tree_size: signed.checkpoint.size,
            root_hash: b64(&signed.checkpoint.root),
        },
    )
}

/// The log's verifier key: from the log, or from the key file alone when
/// there is no log to open here (a running gateway holds it, or the
/// directory is a replica's, whose log is in PostgreSQL).
fn key(at: &LogAt) -> Result<NoteVerifier, Error> {
    let store = store_setting(at.store.as_deref())?;
    let has_database = at.data_dir.join(xgate_ledger::DB_DIR).is_dir();
    if matches!(store, Store::Postgres(_)) || !has_database {
        return key_file(&at.data_dir);
    }
    match Log::open_existing(&at.data_dir, &OpenOptions::default()) {
        Ok(log) => Ok(log.verifier()),
        // A running gateway holds the log: read the key file, checked
        // against the checkpoint published beside it.
        Err(xgate_ledger::Error::Locked(_)) => {
            xgate_ledger::published_checkpoint(&at.data_dir)?;
            Ok(xgate_ledger::verifier_of(&at.data_dir)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// The verifier key of the key file in `dir`.
fn key_file(dir: &Path) -> Result<NoteVerifier, Error> {
    let not_a_log = |reason: &str| -> Error {
        xgate_ledger::Error::NotALog {
            path: dir.to_path_buf(),
            reason: reason.to_owned(),
        }
        .into()
    };
    if !dir.exists() {
        return Err(not_a_log("no such directory"));
    }
    if !dir.is_dir() {
        return Err(not_a_log("not a directory"));
    }
    let path = dir.join(KEY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_a_log("no checkpoint.key"));
        }
        Err(source) => return Err(xgate_ledger::Error::Io { path, source }.into()),
    };
    // The message names the file and what is wrong, never the key.
    let signer = NoteSigner::from_private_key(&text)
        .map_err(|e| xgate_ledger::Error::Corrupt(format!("{}: {e}", path.display())))?;
    Ok(signer.verifier())
}

fn checkpoint(at: &LogAt, stdout: &mut dyn Write) -> Result<(), Error> {
    let store = store_setting(at.store.as_deref())?;
    let signed = match open_existing(&at.data_dir, &store) {
        Ok(log) => log.latest_checkpoint(),
        // A running gateway holds the log: print what it last published.
        Err(Error::Ledger(xgate_ledger::Error::Locked(_))) => {
            xgate_ledger::published_checkpoint(&at.data_dir)?
        }
        Err(e) => return Err(e),
    }
    .ok_or(Error::NoCheckpoint)?;
    // The note already ends in a newline; it is printed exactly as stored so
    // that its signature still verifies.
    emit(stdout, signed.note.as_bytes())
}

/// The log of a read-only command.
fn open(at: &LogAt) -> Result<Box<dyn Ledger>, Error> {
    open_existing(&at.data_dir, &store_setting(at.store.as_deref())?)
}

fn inclusion(args: &InclusionArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let log = open(&args.dir)?;
    json(
        stdout,
        &logview::inclusion(log.as_ref(), args.index, args.size, "--")?,
    )
}

fn consistency(args: &ConsistencyArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let log = open(&args.dir)?;
    json(
        stdout,
        &logview::consistency(log.as_ref(), args.from, args.to, "--")?,
    )
}

fn entry(args: &EntryArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let log = open(&args.dir)?;
    json(stdout, &logview::entry(log.as_ref(), args.index, "--")?)
}

#[derive(Serialize)]
struct Compacted {
    entries: u64,
    keys: u64,
    bytes_before: u64,
    bytes_after: u64,
}

/// Compacts the data directory into a new one and reports what it did.
fn compact(args: &CompactArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let done = xgate_ledger::compact(&args.dir.data_dir, &args.into, &OpenOptions::default())?;
    json(
        stdout,
        &Compacted {
            entries: done.entries,
            keys: done.keys,
            bytes_before: done.bytes_before,
            bytes_after: done.bytes_after,
        },
    )
}

#[derive(Serialize)]
struct Migrated {
    entries: u64,
    checkpoints: u64,
    keys: u64,
}

#[derive(Serialize)]
struct Moved {
    entries: u64,
    checkpoints: u64,
    keys: u64,
    bodies: u64,
}

/// Converts an old-layout data directory into a new one, or moves a log
/// between the backends, and reports what it did.
fn migrate(args: &MigrateArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let from = store_setting(args.dir.store.as_deref())?;
    let into = args
        .into
        .to_str()
        .and_then(|s| s.parse::<Store>().ok())
        .filter(|s| matches!(s, Store::Postgres(_)));
    let dir = &args.dir.data_dir;
    let options = OpenOptions::default();
    let done = match (&from, &into) {
        (Store::Postgres(_), Some(_)) => {
            return Err(Error::Usage(
                "both ends of the migration are PostgreSQL: copy the database with pg_dump                  instead (--store, or XGATE_STORE, names the source; --store embedded for a                  data directory)"
                    .into(),
            ));
        }
        (Store::Embedded, Some(to @ Store::Postgres(url))) => {
            let source = Log::open_existing(dir, &options)?;
            let target = PgLog::open(url, dir, &options).map_err(|e| in_store(to, e))?;
            xgate_ledger::transfer(&source, &target).map_err(|e| in_store(to, e))?
        }
        (Store::Postgres(url), None) => {
            let source =
                PgLog::open_existing(url, dir, &options).map_err(|e| in_store(&from, e))?;
            xgate_ledger::transfer_into_dir(&source, dir, &args.into, &options)
                .map_err(|e| in_store(&from, e))?
        }
        _ => return convert_old_layout(dir, &args.into, stdout),
    };
    json(
        stdout,
        &Moved {
            entries: done.entries,
            checkpoints: done.checkpoints,
            keys: done.keys,
            bodies: done.bodies,
        },
    )
}

/// Converts an old-layout data directory into a new one and reports what
/// it did.
fn convert_old_layout(old: &Path, new: &Path, stdout: &mut dyn Write) -> Result<(), Error> {
    let mut convert = |key: &[u8], value: &[u8], batch: &mut xgate_ledger::WriteBatch| {
        xgate_server::inbox::convert_v2(key, value, batch)
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
    };
    let done = xgate_ledger::migrate(old, new, &OpenOptions::default(), &mut convert)?;
    json(
        stdout,
        &Migrated {
            entries: done.entries,
            checkpoints: done.checkpoints,
            keys: done.keys,
        },
    )
}

/// Splits input into entries, one per line: the bytes between newlines,
/// with nothing stripped but the `\n` itself (a `\r` stays). A last line
/// without a newline is still an entry; empty input has none.
fn split_lines(input: &[u8]) -> Vec<&[u8]> {
    if input.is_empty() {
        return Vec::new();
    }
    let body = input.strip_suffix(b"\n").unwrap_or(input);
    body.split(|&b| b == b'\n').collect()
}

/// Writes `value` as one line of compact JSON.
fn json<T: Serialize>(stdout: &mut dyn Write, value: &T) -> Result<(), Error> {
    // Serializing these plain structs cannot fail: no maps, no floats.
    let mut line =
        serde_json::to_vec(value).map_err(|e| Error::Stdout(std::io::Error::other(e)))?;
    line.push(b'\n');
    emit(stdout, &line)
}

fn emit(stdout: &mut dyn Write, bytes: &[u8]) -> Result<(), Error> {
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(Error::Stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_lines_keeps_empty_lines_and_carriage_returns() {
        assert!(split_lines(b"").is_empty());
        assert_eq!(split_lines(b"\n"), [b"" as &[u8]]);
        assert_eq!(split_lines(b"a\r\n\nb"), [b"a\r" as &[u8], b"", b"b"]);
        assert_eq!(split_lines(b"a\n\n"), [b"a" as &[u8], b""]);
    }

    #[test]
    fn split_lines_counts_a_final_line_without_newline() {
        assert_eq!(split_lines(b"a\nb"), [b"a" as &[u8], b"b"]);
        assert_eq!(split_lines(b"a\nb\n"), [b"a" as &[u8], b"b"]);
    }

    #[test]
    fn json_fields_come_out_in_contract_order() {
        let mut out = Vec::new();
        json(
            &mut out,
            &logview::EntryView {
                index: 3,
                entry: "AA==".into(),
                leaf_hash: "h".into(),
            },
        )
        .expect("written");
        assert_eq!(
            out,
            b"{\"index\":3,\"entry\":\"AA==\",\"leaf_hash\":\"h\"}\n"
        );
    }
}
