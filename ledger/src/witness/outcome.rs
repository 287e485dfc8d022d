//! What `add-checkpoint` answers, typed: the HTTP layer maps each outcome
//! to the status code and body tlog-witness prescribes.

use std::path::PathBuf;

use super::request::BodyError;
use crate::checkpoint::Checkpoint;

/// Why the checkpoint's signature was not trusted (403 Forbidden).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Untrusted {
    /// No signature line from a key trusted for the origin.
    #[error("no signature from a key trusted for this origin")]
    NoTrustedSignature,
    /// A line with a trusted key's name and id whose signature fails.
    #[error("the signature from trusted key {0} does not verify")]
    BadSignature(String),
}

/// Why a checkpoint is not consistent with what the witness cosigned (422
/// Unprocessable Entity).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Inconsistency {
    /// A checkpoint of size 0 with another root than the empty tree's.
    #[error("a checkpoint of size 0 must have the empty tree's root")]
    EmptyTreeRoot,
    /// A proof sent with old size 0.
    #[error("old size 0 takes no consistency proof")]
    ProofFromZero,
    /// The same size as the latest cosigned checkpoint, another root: a fork.
    #[error("size {0} was cosigned with another root hash")]
    RootMismatch(u64),
    /// The consistency proof does not lead from the cosigned root to the
    /// checkpoint's.
    #[error("the consistency proof from size {old} to {new} does not verify")]
    BadProof {
        /// The cosigned size.
        old: u64,
        /// The checkpoint's size.
        new: u64,
    },
}

/// The outcome of one `add-checkpoint` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Checked, persisted durably and cosigned (200): `lines` are the
    /// cosignature lines, each ending in a newline.
    Cosigned {
        /// The response body.
        lines: String,
        /// The checkpoint now recorded as the latest cosigned.
        checkpoint: Checkpoint,
    },
    /// The origin is not a log this witness witnesses (404).
    UnknownOrigin,
    /// The log's signature is missing or bad (403).
    Untrusted(Untrusted),
    /// The body is malformed, or the old size is above the checkpoint's
    /// size (400).
    BadRequest(BodyError),
    /// The old size is not the size of the latest cosigned checkpoint
    /// (409): the client retries from `latest_size`.
    Conflict {
        /// The size of the latest checkpoint cosigned (0 if none).
        latest_size: u64,
        /// Where evidence was written, if the refused checkpoint proves a
        /// fork by itself (the cosigned size with another root).
        evidence: Option<PathBuf>,
    },
    /// Not consistent with the latest cosigned checkpoint (422).
    Inconsistent {
        /// Why.
        reason: Inconsistency,
        /// Where evidence was written (a log-signed checkpoint the witness
        /// refused beside the one it cosigned), if any.
        evidence: Option<PathBuf>,
    },
}

/// The `Content-Type` of a 409 answer (tlog-witness).
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
/// The `Content-Type` of every other answer.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

impl Outcome {
    /// The HTTP status code tlog-witness prescribes.
    pub fn status(&self) -> u16 {
        match self {
            Outcome::Cosigned { .. } => 200,
            Outcome::UnknownOrigin => 404,
            Outcome::Untrusted(_) => 403,
            Outcome::BadRequest(_) => 400,
            Outcome::Conflict { .. } => 409,
            Outcome::Inconsistent { .. } => 422,
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(&self) -> &'static str {
        match self {
            Outcome::Conflict { .. } => SIZE_CONTENT_TYPE,
            _ => TEXT_CONTENT_TYPE,
        }
    }

    /// The response body: the cosignature lines (200), the latest size and
    /// a newline (409), or one line saying why.
    pub fn body(&self) -> String {
        match self {
            Outcome::Cosigned { lines, .. } => lines.clone(),
            Outcome::UnknownOrigin => "unknown log origin\n".into(),
            Outcome::Untrusted(why) => format!("{why}\n"),
            Outcome::BadRequest(why) => format!("{why}\n"),
            Outcome::Conflict { latest_size, .. } => format!("{latest_size}\n"),
            Outcome::Inconsistent { reason, .. } => format!("{reason}\n"),
        }
    }
}
