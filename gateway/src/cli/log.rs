//! `xgate log ...`: append to, inspect and prove against a log data
//! directory, offline.
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
//! migrate      {"entries":N,"checkpoints":C,"keys":K}
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

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;
use xgate_ledger::{DiskStore, Log, MAX_ENTRY_LEN, OpenOptions};

use super::error::Error;
use super::values;
use xgate_server::logview::{self, b64};

/// Entries per `append_batch` call: large enough to amortise the flush,
/// small enough that one batch stays a modest amount of memory in sled.
const APPEND_BATCH: usize = 10_000;

/// The `xgate log` subcommands.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Append each line of stdin as one entry and sign a checkpoint; creates
    /// the log if needed.
    Append(AppendArgs),
    /// Print the latest signed checkpoint note.
    Checkpoint(DataDir),
    /// Print the checkpoint verifier key.
    Key(DataDir),
    /// Print an inclusion proof for one entry.
    Inclusion(InclusionArgs),
    /// Print a consistency proof between two tree sizes.
    Consistency(ConsistencyArgs),
    /// Print one entry and its leaf hash.
    Entry(EntryArgs),
    /// Recompute the whole log from its entries and check every stored hash
    /// and checkpoint.
    Verify(DataDir),
    /// Copy a stopped gateway's data directory into a new one whose
    /// database holds only the live records (sled keeps deleted ones on
    /// disk); the source is left as it was.
    Compact(CompactArgs),
    /// Convert a stopped gateway's data directory of the layout before the
    /// journal (everything in one sled database) into a new directory of
    /// the current layout; the source is left as it was.
    Migrate(CompactArgs),
}

/// The data directory every log command works on.
#[derive(Debug, Args)]
pub struct DataDir {
    /// The log's data directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
}

/// Arguments of `xgate log append`.
#[derive(Debug, Args)]
pub struct AppendArgs {
    /// The log's data directory.
    #[command(flatten)]
    pub dir: DataDir,
    /// Origin (checkpoint key name) for a new log; must match an existing one.
    #[arg(long, value_parser = values::origin)]
    pub origin: Option<String>,
}

/// Arguments of `xgate log inclusion`.
#[derive(Debug, Args)]
pub struct InclusionArgs {
    /// The log's data directory.
    #[command(flatten)]
    pub dir: DataDir,
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
    /// The log's data directory.
    #[command(flatten)]
    pub dir: DataDir,
    /// The older tree size (at least 1).
    #[arg(long, value_name = "M", value_parser = values::non_negative, allow_negative_numbers = true)]
    pub from: u64,
    /// The newer tree size [default: the log's size].
    #[arg(long, value_name = "N", value_parser = values::non_negative, allow_negative_numbers = true)]
    pub to: Option<u64>,
}

/// Arguments of `xgate log compact` and `xgate log migrate`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The data directory to copy.
    #[command(flatten)]
    pub dir: DataDir,
    /// The new data directory; must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub into: PathBuf,
}

/// Arguments of `xgate log entry`.
#[derive(Debug, Args)]
pub struct EntryArgs {
    /// The log's data directory.
    #[command(flatten)]
    pub dir: DataDir,
    /// Index of the entry.
    #[arg(long, value_name = "I", value_parser = values::non_negative, allow_negative_numbers = true)]
    pub index: u64,
}

impl LogCommand {
    /// Runs the command.
    ///
    /// # Errors
    /// [`Error::Ledger`] when the log cannot be opened or read,
    /// [`Error::Request`] for indices and sizes the log cannot answer,
    /// [`Error::LineTooLong`], [`Error::NoCheckpoint`], or an I/O error on
    /// stdin or stdout.
    pub fn run(self, stdin: &mut dyn Read, stdout: &mut dyn Write) -> Result<(), Error> {
        match self {
            LogCommand::Append(args) => append(&args, stdin, stdout),
            LogCommand::Checkpoint(dir) => checkpoint(&dir, stdout),
            LogCommand::Key(dir) => {
                let verifier = match open(&dir) {
                    Ok(log) => log.verifier(),
                    // A running gateway holds the log: read the key file,
                    // checked against the checkpoint published beside it.
                    Err(Error::Ledger(xgate_ledger::Error::Locked(_))) => {
                        xgate_ledger::published_checkpoint(&dir.data_dir)?;
                        xgate_ledger::verifier_of(&dir.data_dir)?
                    }
                    Err(e) => return Err(e),
                };
                emit(stdout, format!("{verifier}\n").as_bytes())
            }
            LogCommand::Inclusion(args) => inclusion(&args, stdout),
            LogCommand::Consistency(args) => consistency(&args, stdout),
            LogCommand::Entry(args) => entry(&args, stdout),
            LogCommand::Compact(args) => compact(&args, stdout),
            LogCommand::Migrate(args) => migrate(&args, stdout),
            LogCommand::Verify(dir) => {
                let report = open(&dir)?.verify()?;
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

#[derive(Serialize)]
struct Appended {
    appended: u64,
    tree_size: u64,
    root_hash: String,
}

fn append(args: &AppendArgs, stdin: &mut dyn Read, stdout: &mut dyn Write) -> Result<(), Error> {
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
    let log = Log::create_or_open(&args.dir.data_dir, &options)?;
    for batch in entries.chunks(APPEND_BATCH) {
        log.append_batch(batch)?;
    }
    let signed = log.checkpoint()?;
    json(
        stdout,
        &Appended {
            appended: entries.len() as u64,
            tree_size: signed.checkpoint.size,
            root_hash: b64(&signed.checkpoint.root),
        },
    )
}

fn checkpoint(dir: &DataDir, stdout: &mut dyn Write) -> Result<(), Error> {
    let signed = match open(dir) {
        Ok(log) => log.latest_checkpoint(),
        // A running gateway holds the log: print what it last published.
        Err(Error::Ledger(xgate_ledger::Error::Locked(_))) => {
            xgate_ledger::published_checkpoint(&dir.data_dir)?
        }
        Err(e) => return Err(e),
    }
    .ok_or(Error::NoCheckpoint)?;
    // The note already ends in a newline; it is printed exactly as stored so
    // that its signature still verifies.
    emit(stdout, signed.note.as_bytes())
}

fn inclusion(args: &InclusionArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let log = open(&args.dir)?;
    json(
        stdout,
        &logview::inclusion(&log, args.index, args.size, "--")?,
    )
}

fn consistency(args: &ConsistencyArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let log = open(&args.dir)?;
    json(
        stdout,
        &logview::consistency(&log, args.from, args.to, "--")?,
    )
}

fn entry(args: &EntryArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let log = open(&args.dir)?;
    json(stdout, &logview::entry(&log, args.index, "--")?)
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

/// Converts an old-layout data directory into a new one and reports what
/// it did.
fn migrate(args: &CompactArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let mut convert = |key: &[u8], value: &[u8], batch: &mut xgate_ledger::WriteBatch| {
        xgate_server::inbox::convert_v2(key, value, batch)
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
    };
    let done = xgate_ledger::migrate(
        &args.dir.data_dir,
        &args.into,
        &OpenOptions::default(),
        &mut convert,
    )?;
    json(
        stdout,
        &Migrated {
            entries: done.entries,
            checkpoints: done.checkpoints,
            keys: done.keys,
        },
    )
}

/// Opens an existing log for reading: never creates one.
fn open(dir: &DataDir) -> Result<Log<DiskStore>, Error> {
    Ok(Log::open_existing(&dir.data_dir, &OpenOptions::default())?)
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
