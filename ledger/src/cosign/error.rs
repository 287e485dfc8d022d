//! Why a cosigner key, a cosignature or a quorum was refused.

use crate::checkpoint::CheckpointError;
use crate::note::NoteError;

/// Why a cosigner key could not be read, or a cosignature could not be made
/// or did not verify. Messages name keys by their public name, never
/// private material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CosignError {
    /// The key, note or signature line is not in the signed-note format.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The key is of a signature type other than 0x04 (Ed25519
    /// cosignature/v1) or 0x06 (ML-DSA-44).
    #[error("signature type 0x{0:02x} is not a cosignature type (0x04 or 0x06)")]
    UnsupportedType(u8),
    /// The key material is not a key of its type.
    #[error("malformed cosigner key: {0}")]
    MalformedKey(&'static str),
    /// The key id written in the key is not the one its name and key give.
    #[error("key id does not match the key")]
    KeyIdMismatch,
    /// The text cosigned is not a checkpoint.
    #[error("not a checkpoint: {0}")]
    NotACheckpoint(CheckpointError),
    /// ML-DSA-44 cosignatures do not cover extension lines, so a checkpoint
    /// carrying any is neither cosigned nor accepted as cosigned.
    #[error("ML-DSA-44 cosignatures do not cover checkpoint extension lines")]
    ExtensionLines,
    /// A checkpoint of size zero whose root is not the empty tree's.
    #[error("a tree of size 0 must have the empty tree's root")]
    EmptyTreeRoot,
    /// The cosigner name or the log origin does not fit the ML-DSA-44
    /// message (1 to 255 bytes).
    #[error("{0} must be 1 to 255 bytes for an ML-DSA-44 cosignature")]
    TooLong(&'static str),
    /// A timestamp above 2^63 - 1.
    #[error("cosignature timestamp {0} is above 2^63 - 1")]
    Timestamp(u64),
    /// The signature line is not from this key (another name or key id).
    #[error("the signature line is not from {0}")]
    OtherKey(String),
    /// A signature line from this key that does not verify.
    #[error("cosignature from {0} does not verify")]
    BadSignature(String),
    /// No randomness for a key or a hedged signature.
    #[error("no randomness from the operating system")]
    Randomness,
}

/// Why a checkpoint was not accepted as cosigned by a quorum.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuorumError {
    /// The log's own signature or checkpoint was refused.
    #[error(transparent)]
    Log(#[from] CheckpointError),
    /// A cosignature line from a listed witness (its name and key id) does
    /// not verify: per signed-note, the whole note is refused.
    #[error("witness {witness}: {reason}")]
    BadCosignature {
        /// The witness's key name.
        witness: String,
        /// What failed.
        reason: CosignError,
    },
    /// Fewer listed witnesses cosigned than the quorum needs.
    #[error(
        "{got} of the {needed} cosignatures needed (no valid cosignature from: {})",
        missing.join(", ")
    )]
    TooFew {
        /// The quorum.
        needed: usize,
        /// Distinct listed witnesses whose cosignature verified.
        got: usize,
        /// Listed witnesses with no cosignature in the note.
        missing: Vec<String>,
    },
    /// The quorum is larger than the number of distinct witnesses listed:
    /// no note could ever meet it.
    #[error("a quorum of {quorum} cannot be met by {witnesses} distinct witnesses")]
    Impossible {
        /// The quorum asked for.
        quorum: usize,
        /// Distinct witness keys listed.
        witnesses: usize,
    },
}
