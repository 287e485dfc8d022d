//! Why a PKI operation failed, and the small conversions every step of
//! issuing uses to say so. Messages name files, agencies and gateways,
//! never key material.

use std::path::{Path, PathBuf};

use crate::registry::{AgencyId, GatewayId};

/// Why a PKI operation failed. Messages name files, agencies and
/// gateways, never key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// The target directory exists and `--force` was not given.
    #[error("{0} already exists; pass --force to replace it")]
    Exists(PathBuf),
    /// No agency was named, one was named twice, or the agencies and the
    /// gateways named do not fit together.
    #[error("{0}")]
    Agencies(String),
    /// The agency has no certificate in this PKI.
    #[error("no agency {agency} in {dir} ({missing} is missing)")]
    UnknownAgency {
        /// The agency asked for.
        agency: AgencyId,
        /// The PKI directory.
        dir: PathBuf,
        /// The file that would have held its certificate.
        missing: PathBuf,
    },
    /// The gateway has no certificate in this PKI.
    #[error("no gateway {gateway} in {dir} ({missing} is missing)")]
    UnknownGateway {
        /// The gateway asked for.
        gateway: GatewayId,
        /// The PKI directory.
        dir: PathBuf,
        /// The file that would have held its certificate.
        missing: PathBuf,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// A file holds something other than what it should.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Key generation or signing failed.
    #[error("cryptography failed: {0}")]
    Crypto(String),
}

/// [`PkiError::Io`] on `path`, for `map_err`.
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// [`PkiError::Invalid`] on `path`, for `map_err`.
pub(crate) fn invalid<E: std::fmt::Display>(path: &Path) -> impl FnOnce(E) -> PkiError + '_ {
    move |e| PkiError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// [`PkiError::Crypto`], for `map_err`.
pub(crate) fn crypto<E: std::fmt::Display>(e: E) -> PkiError {
    PkiError::Crypto(e.to_string())
}
