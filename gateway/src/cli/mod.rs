//! The `xgate` command line: argument parsing, dispatch to one submodule per
//! command group, and the error contract every command shares.
//!
//! The contract, which tools outside this repository rely on:
//!
//! - results go to stdout; on failure, stderr gets exactly one line,
//!   `xgate: error: <message>`, and nothing was changed;
//! - exit code 0 on success (and for `--help` / `--version`), 2 when the
//!   command line cannot be parsed, 1 for every other failure;
//! - messages name paths, indices and sizes, never entry contents.
//!
//! Each command group owns its arguments and output formats in its own
//! module ([`log`], [`certs`], [`serve`], [`agency`], [`audit`], [`demo`], [`witness`]); errors are in [`error`].

pub mod agency;
pub mod asset;
pub mod audit;
pub mod bench;
pub mod certs;
pub mod console;
pub mod contracts;
pub mod db;
pub mod demo;
pub mod error;
pub mod log;
pub mod medical;
pub mod outbox;
pub mod serve;
pub mod session;
mod values;
pub mod witness;

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Parser, Subcommand};

pub use error::Error;

/// `xgate`: the gateway's command line.
#[derive(Debug, Parser)]
#[command(name = "xgate", version, about)]
// Without a subcommand clap would print the whole help on stderr; the
// contract wants one line, so report a missing subcommand as an error.
#[command(arg_required_else_help = false)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect a log data directory and prove against it, offline.
    #[command(arg_required_else_help = false)]
    Log {
        /// What to do with the log.
        #[command(subcommand)]
        command: log::LogCommand,
    },
    /// Create a development federation PKI; revoke agency certificates.
    #[command(arg_required_else_help = false)]
    Certs {
        /// What to do with the PKI.
        #[command(subcommand)]
        command: certs::CertsCommand,
    },
    /// Run the gateway.
    Serve(serve::ServeArgs),
    /// Create or upgrade the PostgreSQL schema gateway replicas share.
    #[command(arg_required_else_help = false)]
    Db {
        /// What to do with the database.
        #[command(subcommand)]
        command: db::DbCommand,
    },
    /// Sign a JSON body into an envelope, submit it and print the receipt.
    Send(agency::SendArgs),
    /// Serve a page on loopback that acts for one agency with its keys:
    /// inbox, assets, offers, inventory, medical requests and reviews, and
    /// the acts contracts took for it.
    Console(console::ConsoleArgs),
    /// Print (and with --ack acknowledge) an agency's undelivered envelopes.
    Inbox(agency::InboxArgs),
    /// Print what became of the agency's envelopes to agencies of other
    /// gateways (delivered with the recipient gateway's receipt, refused
    /// with its code, or queued).
    Outbox(outbox::OutboxArgs),
    /// Register, transfer and look up assets in custody.
    #[command(arg_required_else_help = false)]
    Asset {
        /// What to do with the asset.
        #[command(subcommand)]
        command: asset::AssetCommand,
    },
    /// Submit inventory counts for reconciliation.
    #[command(arg_required_else_help = false)]
    Inventory {
        /// What to submit.
        #[command(subcommand)]
        command: asset::InventoryCommand,
    },
    /// Request, answer, open and review emergency medical data.
    #[command(arg_required_else_help = false)]
    Medical {
        /// What to do.
        #[command(subcommand)]
        command: medical::MedicalCommand,
    },
    /// Drive a running gateway with pre-signed envelopes and report what it
    /// sustained.
    Bench(bench::BenchArgs),
    /// Check and list the contracts of a policy file.
    #[command(arg_required_else_help = false)]
    Contracts {
        /// What to do.
        #[command(subcommand)]
        command: contracts::ContractsCommand,
    },
    /// Start a whole federation on loopback and tell its story end to end.
    Demo(demo::DemoArgs),
    /// Verify receipts offline.
    #[command(arg_required_else_help = false)]
    Audit {
        /// What to check.
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Run a transparency-log witness (C2SP tlog-witness) that cosigns
    /// checkpoints consistent with what it cosigned before.
    #[command(arg_required_else_help = false)]
    Witness {
        /// What to do.
        #[command(subcommand)]
        command: witness::WitnessCommand,
    },
}

impl Cli {
    /// Runs the parsed command, reading input from `stdin` and writing
    /// results to `stdout`.
    ///
    /// # Errors
    /// Whatever the command reports; see [`Error`].
    pub fn run(self, stdin: &mut dyn Read, stdout: &mut dyn Write) -> Result<(), Error> {
        match self.command {
            Command::Log { command } => command.run(stdin, stdout),
            Command::Certs { command } => command.run(stdout),
            Command::Serve(args) => args.run(stdout),
            Command::Db { command } => command.run(stdout),
            Command::Send(args) => args.run(stdout),
            Command::Console(args) => args.run(stdout, run_words),
            Command::Inbox(args) => args.run(stdout),
            Command::Outbox(args) => args.run(stdout),
            Command::Audit { command } => command.run(stdout),
            Command::Asset { command } => command.run(stdout),
            Command::Inventory { command } => command.run(stdin, stdout),
            Command::Medical { command } => command.run(stdout),
            Command::Bench(args) => args.run(stdout),
            Command::Demo(args) => args.run(stdout),
            Command::Contracts { command } => command.run(stdout),
            Command::Witness { command } => command.run(stdout),
        }
    }
}

/// Parses `args` (the program name first), runs the command on the
/// process's stdin and stdout, and reports any failure as one line on
/// stderr. Returns the exit code.
pub fn main<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            // Help and version are answers, not errors: clap's own output.
            return match e.print() {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(1),
            };
        }
        Err(e) => return report(&usage_error(&e)),
    };
    let result = cli.run(&mut io::stdin().lock(), &mut io::stdout().lock());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// Runs one command line (`words`, after the program name) with `stdin`
/// as its input: what it printed, and how it ended. This is how the
/// console acts, so every action is the command an operator would type;
/// only an agency's commands run this way (never `serve`, `certs`, `log`,
/// `contracts check` and the like, whatever the words).
fn run_words(words: &[String], stdin: &[u8]) -> (Vec<u8>, Result<(), Error>) {
    let argv = std::iter::once("xgate").chain(words.iter().map(String::as_str));
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => return (Vec::new(), Err(usage_error(&e))),
    };
    if !matches!(
        cli.command,
        Command::Inbox(_)
            | Command::Outbox(_)
            | Command::Asset { .. }
            | Command::Inventory { .. }
            | Command::Medical { .. }
            | Command::Contracts {
                command: contracts::ContractsCommand::List(_)
                    | contracts::ContractsCommand::Explain(_)
            }
    ) {
        return (
            Vec::new(),
            Err(Error::Usage("not a command the console runs".into())),
        );
    }
    let mut out = Vec::new();
    let result = cli.run(&mut &stdin[..], &mut out);
    (out, result)
}

/// Prints `e` as the one stderr line the contract promises and returns its
/// exit code.
fn report(e: &Error) -> ExitCode {
    // If stderr itself is gone there is nobody left to tell.
    let _ = writeln!(
        io::stderr().lock(),
        "xgate: error: {}",
        one_line(&e.to_string())
    );
    ExitCode::from(e.exit_code())
}

/// Folds a message onto one line: messages from the file system or storage
/// could in principle carry newlines, and the contract is one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Turns clap's multi-line error into one clear line.
///
/// Most clap errors say everything in their first line; the exception is a
/// missing required argument, whose names follow on later lines. The hint
/// points at the help of the (sub)command that was being parsed, which
/// clap names in its usage line.
fn usage_error(e: &clap::Error) -> Error {
    let rendered = e.render().to_string();
    let hint = format!("(see '{} --help')", command_path(&rendered));
    if e.kind() == ErrorKind::MissingRequiredArgument
        && let Some(ContextValue::Strings(args)) = e.get(ContextKind::InvalidArg)
    {
        let plural = if args.len() == 1 { "" } else { "s" };
        let args = args.join(", ");
        return Error::Usage(format!("missing required argument{plural}: {args} {hint}"));
    }
    let first = rendered
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("invalid command line");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    Error::Usage(format!("{first} {hint}"))
}

/// The command path (`xgate log entry`) from the `Usage:` line of a
/// rendered clap error: the words before the first option or placeholder.
fn command_path(rendered: &str) -> String {
    let usage = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .unwrap_or("xgate");
    let words: Vec<&str> = usage
        .split_whitespace()
        .take_while(|w| !w.starts_with(['-', '<', '[']))
        .collect();
    if words.is_empty() {
        "xgate".into()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(args: &[&str]) -> Error {
        match Cli::try_parse_from(args) {
            Ok(cli) => panic!("parsed: {cli:?}"),
            Err(e) => usage_error(&e),
        }
    }

    /// Of `xgate contracts`, the console runs `list` and `explain` (reads
    /// of the gateway), never `check` (a file of this machine).
    #[test]
    fn the_console_runs_contracts_list_and_explain_only() {
        let refused = |words: &[&str]| {
            let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
            matches!(
                run_words(&words, b"").1,
                Err(Error::Usage(ref m)) if m == "not a command the console runs"
            )
        };
        assert!(refused(&["contracts", "check", "/nonexistent/policy.toml"]));
        assert!(refused(&["serve"]));
        let conn = [
            "--pki=/nonexistent",
            "--as=gsa",
            "--gateway=https://127.0.0.1:1",
        ];
        let list = [&["contracts", "list"][..], &conn].concat();
        assert!(!refused(&list));
        let explain = [&["contracts", "explain"][..], &conn, &["--", "3"]].concat();
        assert!(!refused(&explain));
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// A random `jti` starts with `-` one time in 64 (base64url): it is a
    /// value, not a flag, wherever a flag takes one.
    #[test]
    fn a_jti_starting_with_a_hyphen_is_a_value() {
        let common = ["--pki", "p", "--as", "gsa", "--gateway", "https://g"];
        let cases: [&[&str]; 3] = [
            &["xgate", "asset", "reject", "--tag", "T", "--offer", "-cK8"],
            // As a positional argument too (CI drew "-7a041KJjhvHlNBnnsLBIg").
            &["xgate", "medical", "show", "-7a041KJjhvHlNBnnsLBIg"],
            &[
                "xgate",
                "medical",
                "respond",
                "--request",
                "-cK8",
                "--bundle",
                "b",
            ],
        ];
        for case in cases {
            let argv: Vec<&str> = case.iter().chain(common.iter()).copied().collect();
            let cli = Cli::try_parse_from(&argv);
            assert!(cli.is_ok(), "{argv:?}: {:?}", cli.err());
        }
    }

    #[test]
    fn negative_index_is_reported_as_not_a_non_negative_integer() {
        let e = parse_error(&["xgate", "log", "entry", "--data-dir", "d", "--index", "-1"]);
        let msg = e.to_string();
        assert!(msg.contains("invalid value '-1'"), "{msg}");
        assert!(msg.contains("must be a non-negative integer"), "{msg}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn missing_required_argument_names_it_on_one_line() {
        let msg = parse_error(&["xgate", "log", "entry", "--data-dir", "d"]).to_string();
        assert_eq!(
            msg,
            "missing required argument: --index <I> (see 'xgate log entry --help')"
        );
    }

    #[test]
    fn missing_subcommand_is_an_error_not_a_help_page() {
        let msg = parse_error(&["xgate", "log"]).to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.contains("subcommand"), "{msg}");
    }

    #[test]
    fn missing_nested_subcommand_is_one_line_too() {
        let msg = parse_error(&["xgate", "log"]).to_string();
        assert!(msg.contains("'xgate log' requires a subcommand"), "{msg}");
        assert!(msg.ends_with("(see 'xgate log --help')"), "{msg}");
    }

    #[test]
    fn one_line_folds_newlines() {
        assert_eq!(one_line("a\nb\r\n c"), "a b c");
    }
}
