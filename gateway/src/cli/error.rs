//! The one error type of the command line, and which exit code each kind of
//! failure gets.
//!
//! Every message is a single sentence fit for `xgate: error: <message>`, and
//! names paths, indices and sizes only, never entry contents.

use std::io;

/// Why an `xgate` command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The command line could not be parsed (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The arguments parse but ask for something the log cannot give, such
    /// as an index past its end.
    #[error("{0}")]
    Request(String),
    /// An envelope could not be signed (a key that cannot sign, no
    /// randomness for a `jti`).
    #[error("{0}")]
    Sign(#[from] crate::client::SignError),
    /// A line of input is longer than a log entry may be; nothing was
    /// appended.
    #[error(
        "line {line} of standard input is {len} bytes, over the {max}-byte entry limit; nothing was appended"
    )]
    LineTooLong {
        /// 1-based line number.
        line: usize,
        /// Length of the line in bytes, without its newline.
        len: usize,
        /// The limit, [`xgate_ledger::MAX_ENTRY_LEN`].
        max: usize,
    },
    /// The log has never signed a checkpoint.
    #[error("the log has no signed checkpoint yet (appending signs one)")]
    NoCheckpoint,
    /// The log refused: missing, locked, corrupt, or a storage failure.
    #[error(transparent)]
    Ledger(#[from] xgate_ledger::Error),
    /// `xgate audit replay` could not run.
    #[error(transparent)]
    Replay(#[from] xgate_server::recompute::ReplayError),
    /// A log view was refused; see [`xgate_server::logview::ViewError`].
    #[error(transparent)]
    View(#[from] xgate_server::logview::ViewError),
    /// The gateway could not start or stopped with an error.
    #[error("{0}")]
    Serve(String),
    /// The gateway refused a request.
    #[error("the gateway refused the request ({status} {code}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The API error code.
        code: String,
        /// The gateway's message.
        message: String,
    },
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] xgate_server::config::ConfigError),
    /// The agency registry is invalid.
    #[error(transparent)]
    Registry(#[from] xgate_server::registry::RegistryError),
    /// The policy is invalid.
    #[error(transparent)]
    Policy(#[from] xgate_server::policy::PolicyError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] xgate_server::tls::TlsError),
    /// A client call failed.
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    /// A PKI operation failed.
    #[error(transparent)]
    Pki(#[from] xgate_server::pki::PkiError),
    /// A witness could not be created, opened or run.
    #[error(transparent)]
    Witness(#[from] xgate_ledger::witness::WitnessError),
    /// Standard input could not be read.
    #[error("cannot read standard input: {0}")]
    Stdin(#[source] io::Error),
    /// Standard output could not be written.
    #[error("cannot write standard output: {0}")]
    Stdout(#[source] io::Error),
}

impl Error {
    /// The process exit code for this error: 2 for a command line that does
    /// not parse, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }
}
