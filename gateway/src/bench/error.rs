//! Why a bench run could not start or finish, and why one exchange failed.

use std::fmt;

use crate::client::{ClientError, SignError};
use xgate_server::registry::{AgencyId, RegistryError};

/// Why a bench run could not start or finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The registry of the PKI directory could not be loaded.
    #[error("{0}")]
    Registry(#[from] RegistryError),
    /// An agency's keys or certificates could not be loaded.
    #[error("{0}")]
    Client(#[from] ClientError),
    /// An envelope could not be signed in advance.
    #[error("{0}")]
    Sign(#[from] SignError),
    /// The plan names no sending agency.
    #[error("no sending agency")]
    NoSender,
    /// A medical request needs its sender's registered encryption key as
    /// its reply key.
    #[error("{0} has no registered encryption key")]
    NoEncryptionKey(AgencyId),
    /// The receipts file could not be created or written.
    #[error("cannot write the receipts to {path}: {source}")]
    Receipts {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The timings file could not be created or written.
    #[error("cannot write the timings to {path}: {source}")]
    Timings {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The async runtime could not be started.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// A signing thread or a connection task panicked.
    #[error("a {0} failed")]
    Panicked(&'static str),
}

/// Why one exchange failed, as the report counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The gateway answered with an error: its status and error code.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The `code` of the error body (empty if there was none).
        code: String,
    },
    /// No answer: connecting, the handshake or the exchange failed.
    Transport,
    /// A receipt that is not JSON, so it cannot be kept.
    ReceiptNotJson,
    /// A receipt that could not be written to the receipts file.
    ReceiptFile,
}

/// As the report's `errors` keys it: `"<status> <code>"`, `transport`,
/// `receipt not JSON` or `receipt file` (a contract of `bench --json`).
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused { status, code } => write!(f, "{status} {code}"),
            Failure::Transport => f.write_str("transport"),
            Failure::ReceiptNotJson => f.write_str("receipt not JSON"),
            Failure::ReceiptFile => f.write_str("receipt file"),
        }
    }
}
