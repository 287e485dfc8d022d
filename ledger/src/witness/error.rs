//! Why a witness could not open, or could not answer a request (a server
//! error, 500: not the client's fault).

use std::path::PathBuf;

use crate::cosign::CosignError;

/// Why a witness failed. Messages name paths and origins, never key
/// material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// A file-system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Another process serves this witness directory.
    #[error("witness directory {} is in use by another process", .0.display())]
    Locked(PathBuf),
    /// `init` found a key already there.
    #[error("{} already holds a witness key; refusing to replace it", .0.display())]
    KeyExists(PathBuf),
    /// No key in the directory.
    #[error("{} holds no witness key (create one with `xgate witness init`)", .0.display())]
    NoKey(PathBuf),
    /// The key file holds no valid key, or signing failed.
    #[error("witness key: {0}")]
    Key(#[from] CosignError),
    /// A state file contradicts itself; the witness refuses to guess (a
    /// reset to nothing would let a log roll back).
    #[error("{}: corrupt witness state: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An earlier write of this log's state failed, so what is on disk is
    /// unknown: the log is refused until the witness restarts and reads it.
    #[error("the state of {0} could not be written earlier; restart the witness")]
    Failed(String),
}

impl WitnessError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> WitnessError {
        let path = path.into();
        move |source| WitnessError::Io { path, source }
    }
}
