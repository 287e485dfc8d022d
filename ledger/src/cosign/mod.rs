//! C2SP tlog-cosignature: witnesses' timestamped cosignatures over
//! checkpoints, and checking a quorum of them.
//!
//! - `key` ([`CosignerVerifier`]): a cosigner's verifier key (vkey) of type
//!   0x04 (Ed25519 cosignature/v1) or 0x06 (ML-DSA-44, FIPS 204), and
//!   checking one cosignature, which gives its timestamp;
//! - `signer` ([`Cosigner`]): a name and private key that cosigns a
//!   checkpoint at a given POSIX time, giving one note signature line;
//! - `message`: the two signed messages, byte for byte as the spec has
//!   them;
//! - `quorum` ([`verify_quorum`]): the log's signature plus K of N listed
//!   witnesses, with their timestamps for trusted time.
//!
//! The note framing is [`crate::note`]'s; the log's own key is
//! [`crate::checkpoint::NoteVerifier`] (Ed25519, type 0x01).

mod error;
mod key;
mod message;
mod quorum;
mod signer;

pub use error::{CosignError, QuorumError};
pub use key::{
    CosignatureAlg, CosignerVerifier, ML_DSA_44_PUBLIC_KEY_LEN, ML_DSA_44_SIGNATURE_LEN,
    TYPE_ED25519, TYPE_ML_DSA_44,
};
pub use message::MAX_TIMESTAMP;
pub use quorum::{Cosignature, Cosigned, attach, verify_quorum};
pub use signer::Cosigner;

#[cfg(test)]
mod tests;
