//! Receipts: what an agency gets back for an accepted envelope, and can
//! check offline, years later, with nothing but the log's public key.
//!
//! ```json
//! {"id":"<envelope sha256 hex>","log_index":7,"tree_size":9,"leaf_hash":"<b64>",
//!  "inclusion_proof":["<b64>",...],"checkpoint":"<signed note>","entry":"<b64>"}
//! ```
//!
//! The proof is for `tree_size`, the size in the checkpoint, so checking a
//! receipt is: verify the checkpoint's signature, then that `entry` hashes
//! to `leaf_hash` and logs the envelope `id` (without it a proof would hold
//! for any id), then the inclusion of `leaf_hash` at `log_index` against
//! the checkpoint's root (RFC 9162 section 2.1.3.2). Hashes are standard base64 with padding, as in every
//! `xgate log` output.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use xgate_ledger::{
    Checkpoint, Hash, InclusionProof, Ledger, NoteVerifier, SignedCheckpoint, verify_checkpoint,
    verify_inclusion,
};

/// A receipt, exactly as the API returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The envelope id (lowercase hex SHA-256 of the compact JWS).
    pub id: String,
    /// Where its entry is in the log.
    pub log_index: u64,
    /// The tree size the proof and checkpoint are for.
    pub tree_size: u64,
    /// The entry's leaf hash.
    pub leaf_hash: String,
    /// The audit path, leaf to root.
    pub inclusion_proof: Vec<String>,
    /// The signed checkpoint note for `tree_size`.
    pub checkpoint: String,
    /// The log entry itself, base64: its leaf hash is `leaf_hash`, and its
    /// `envelope` is `id`, which is what binds the id to the proof.
    pub entry: String,
}

/// Why a receipt does not check out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// A hash field is not base64 of 32 bytes.
    #[error("{0} is not a base64 SHA-256 hash")]
    BadHash(&'static str),
    /// The checkpoint is not signed by the given key, or malformed.
    #[error("the checkpoint does not verify: {0}")]
    Checkpoint(String),
    /// `tree_size` is not the checkpoint's size.
    #[error("tree_size {receipt} is not the checkpoint's size {checkpoint}")]
    SizeMismatch {
        /// What the receipt says.
        receipt: u64,
        /// What the checkpoint says.
        checkpoint: u64,
    },
    /// The proof does not lead from the leaf to the checkpoint's root.
    #[error("the inclusion proof does not verify: {0}")]
    Proof(String),
    /// The entry is missing, malformed, not the proven leaf, or logs
    /// another envelope than `id`.
    #[error("{0}")]
    Entry(String),
}

impl Receipt {
    /// Builds the receipt for entry `index` with id `id`, proven against
    /// `checkpoint`, which must cover it.
    ///
    /// # Errors
    /// Whatever the log reports reading the proof.
    pub fn build(
        log: &dyn Ledger,
        id: String,
        index: u64,
        checkpoint: &SignedCheckpoint,
    ) -> Result<Receipt, xgate_ledger::Error> {
        Receipt::build_for(log, id, index, &log.entry(index)?, checkpoint)
    }

    /// As [`Receipt::build`], for a caller that holds the entry's bytes
    /// already (the pipeline, which just appended them): the leaf hash is
    /// computed from them, nothing is read back but the proof.
    ///
    /// # Errors
    /// Whatever the log reports reading the proof.
    pub fn build_for(
        log: &dyn Ledger,
        id: String,
        index: u64,
        entry: &[u8],
        checkpoint: &SignedCheckpoint,
    ) -> Result<Receipt, xgate_ledger::Error> {
        let size = checkpoint.checkpoint.size;
        let proof = log.inclusion(index, size)?;
        Ok(Receipt {
            id,
            log_index: index,
            tree_size: size,
            leaf_hash: b64(&xgate_ledger::leaf_hash(entry)),
            inclusion_proof: proof.hashes.iter().map(b64).collect(),
            checkpoint: checkpoint.note.clone(),
            entry: B64.encode(entry),
        })
    }

    /// Checks the receipt offline against the log's verifier key; returns
    /// the checkpoint it is proven against.
    ///
    /// # Errors
    /// The first [`ReceiptError`] found.
    pub fn verify(&self, key: &NoteVerifier) -> Result<Checkpoint, ReceiptError> {
        let checkpoint = verify_checkpoint(&self.checkpoint, key)
            .map_err(|e| ReceiptError::Checkpoint(e.to_string()))?;
        self.verify_in(&checkpoint)?;
        Ok(checkpoint)
    }

    /// [`Receipt::verify_in`] against the receipt's own checkpoint, whose
    /// signature is not checked: for a holder without the log's key, the
    /// entry, the id, the proof and the checkpoint's root agree (who signed
    /// the checkpoint is left to whoever holds the key).
    ///
    /// # Errors
    /// A checkpoint that does not parse, or the first [`ReceiptError`]
    /// found after it.
    pub fn verify_unsigned(&self) -> Result<Checkpoint, ReceiptError> {
        let body = self
            .checkpoint
            .split_once("\n\n")
            .map(|(body, _)| format!("{body}\n"))
            .ok_or_else(|| ReceiptError::Checkpoint("not a signed note".into()))?;
        let checkpoint =
            Checkpoint::parse_body(&body).map_err(|e| ReceiptError::Checkpoint(e.to_string()))?;
        self.verify_in(&checkpoint)?;
        Ok(checkpoint)
    }

    /// [`Receipt::verify`] against `checkpoint`, the receipt's own
    /// checkpoint already verified (many receipts of one request share
    /// one: its signature is checked once).
    ///
    /// # Errors
    /// The first [`ReceiptError`] found after the signature.
    pub fn verify_in(&self, checkpoint: &Checkpoint) -> Result<(), ReceiptError> {
        if checkpoint.size != self.tree_size {
            return Err(ReceiptError::SizeMismatch {
                receipt: self.tree_size,
                checkpoint: checkpoint.size,
            });
        }
        let leaf = unb64(&self.leaf_hash).ok_or(ReceiptError::BadHash("leaf_hash"))?;
        // The proof covers the leaf; the entry ties the leaf to the id.
        let entry = B64
            .decode(&self.entry)
            .map_err(|_| ReceiptError::Entry("entry is not base64".into()))?;
        if xgate_ledger::leaf_hash(&entry) != leaf {
            return Err(ReceiptError::Entry(
                "entry does not hash to leaf_hash".into(),
            ));
        }
        if bound_id(&entry)? != self.id {
            return Err(ReceiptError::Entry(
                "the entry logs another envelope than id".into(),
            ));
        }
        let hashes = self
            .inclusion_proof
            .iter()
            .map(|h| unb64(h).ok_or(ReceiptError::BadHash("inclusion_proof")))
            .collect::<Result<Vec<Hash>, _>>()?;
        let proof = InclusionProof {
            leaf_index: self.log_index,
            tree_size: self.tree_size,
            hashes,
        };
        verify_inclusion(&proof, &leaf, &checkpoint.root)
            .map_err(|e| ReceiptError::Proof(e.to_string()))
    }
}

/// The id a receipt of `entry` must carry: the envelope an envelope's
/// entry logs, or the SHA-256 of a contract's act (which is its id in an
/// inbox).
fn bound_id(entry: &[u8]) -> Result<String, ReceiptError> {
    if let Ok(logged) = crate::entry::Logged::parse(entry) {
        return Ok(logged.envelope);
    }
    match crate::contracts::act::ActEntry::parse(entry) {
        Ok(_) => Ok(hex::encode(sha2::Sha256::digest(entry))),
        Err(_) => Err(ReceiptError::Entry(
            "entry is not a gateway log entry".into(),
        )),
    }
}

fn b64(hash: &Hash) -> String {
    B64.encode(hash.as_bytes())
}

fn unb64(text: &str) -> Option<Hash> {
    Hash::from_slice(&B64.decode(text).ok()?)
}
