//! `xgate audit verify-receipt`: a receipt checked against the log's key
//! and, when asked, against a checkpoint cosigned by a quorum of
//! witnesses, with consistency and inclusion recomputed from the log's
//! tiles.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use xgate_ledger::cosign::Cosigned;
use xgate_ledger::{Checkpoint, Hash, InclusionProof, verify_inclusion};
use xgate_server::receipt::Receipt;

use super::super::error::Error;
use super::super::session::runtime;
use super::trust::Trust;
use crate::tiles::{Fetcher, LogClient};

/// Arguments of `xgate audit verify-receipt`.
#[derive(Debug, Args)]
pub struct VerifyReceiptArgs {
    /// The receipt, as `xgate send`, `xgate asset` or `xgate inventory`
    /// printed it (or as `--upgrade` wrote it).
    #[arg(long, value_name = "FILE")]
    pub receipt: PathBuf,
    /// The log's verifier key, `name+hexid+base64key`.
    #[arg(long, value_name = "VKEY")]
    pub key: String,
    /// A witness's cosigner key (repeatable); the checkpoint used must be
    /// cosigned by `--quorum` of them.
    #[arg(long = "witness", value_name = "VKEY")]
    pub witnesses: Vec<String>,
    /// How many of the witnesses must have cosigned; default all listed.
    #[arg(long, value_name = "K")]
    pub quorum: Option<usize>,
    /// The log's public tlog-tiles prefix (`https://host:port`): its
    /// `/checkpoint` is the cosigned checkpoint to check against, its
    /// tiles give the proofs.
    #[arg(long, value_name = "URL")]
    pub log: Option<String>,
    /// A cosigned checkpoint in a file, instead of the log's current one.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// The CA to trust for the log's HTTPS certificate.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Write the receipt upgraded to the cosigned checkpoint (its proof
    /// for that size) to this file.
    #[arg(long, value_name = "OUT")]
    pub upgrade: Option<PathBuf>,
}

impl VerifyReceiptArgs {
    /// Runs the checks and prints the `ok:` lines.
    ///
    /// # Errors
    /// [`Error::Request`] naming the first check that fails.
    pub fn run(&self, stdout: &mut dyn Write) -> Result<(), Error> {
        let text = std::fs::read(&self.receipt)
            .map_err(|e| Error::Request(format!("cannot read {}: {e}", self.receipt.display())))?;
        let receipt = parse_receipt(&text).map_err(|e| {
            Error::Request(format!("{} is not a receipt: {e}", self.receipt.display()))
        })?;
        let plain = self.witnesses.is_empty()
            && self.quorum.is_none()
            && self.log.is_none()
            && self.checkpoint.is_none()
            && self.upgrade.is_none();
        let trust = Trust::from_args(&self.key, &self.witnesses, self.quorum)?;
        let own = receipt
            .verify(&trust.log)
            .map_err(|e| Error::Request(format!("the receipt does not verify: {e}")))?;
        let mut lines = vec![format!(
            "ok: envelope {} is entry {} of {} at tree size {}",
            receipt.id, receipt.log_index, own.origin, own.size
        )];
        if !plain {
            // Nothing is printed unless every check passes.
            lines.extend(runtime()?.block_on(self.against_cosigned(&trust, &receipt, &own))?);
        }
        for line in lines {
            writeln!(stdout, "{line}").map_err(Error::Stdout)?;
        }
        Ok(())
    }

    /// The checks against the cosigned checkpoint; the lines to print.
    async fn against_cosigned(
        &self,
        trust: &Trust,
        receipt: &Receipt,
        own: &Checkpoint,
    ) -> Result<Vec<String>, Error> {
        let mut client = match &self.log {
            Some(url) => Some(LogClient::new(
                Fetcher::new(url, self.ca.as_deref()).map_err(|e| Error::Request(e.to_string()))?,
            )),
            None => None,
        };
        let (note, source) = match (&self.checkpoint, &mut client) {
            (Some(path), _) => (read_note(path)?, path.display().to_string()),
            (None, Some(client)) => {
                let note = client
                    .checkpoint()
                    .await
                    .map_err(|e| Error::Request(format!("cannot get the log's checkpoint: {e}")))?;
                (
                    note,
                    format!("{}/checkpoint", self.log.as_deref().unwrap_or("")),
                )
            }
            // Offline: the receipt's own checkpoint must carry the quorum
            // (a receipt upgraded with --upgrade does).
            (None, None) => (receipt.checkpoint.clone(), "the receipt".to_owned()),
        };
        let Covered {
            cosigned,
            proof,
            how,
        } = prove_in_cosigned(trust, receipt, own, &note, &source, client.as_mut()).await?;
        let covering = &cosigned.checkpoint.checkpoint;
        let mut lines = vec![format!(
            "ok: entry {} is in the checkpoint of tree size {}, {}; {how}",
            receipt.log_index,
            covering.size,
            trust.describe(&cosigned)
        )];
        if let Some(time) = trust.trusted_time(&cosigned) {
            lines.push(format!(
                "trusted time: entry {} was logged by {time}",
                receipt.log_index
            ));
        }
        if let Some(out) = &self.upgrade {
            let upgraded = Receipt {
                tree_size: covering.size,
                inclusion_proof: proof
                    .hashes
                    .iter()
                    .map(|h| B64.encode(h.as_bytes()))
                    .collect(),
                checkpoint: note.clone(),
                ..receipt.clone()
            };
            // What is written must verify as it stands.
            upgraded.verify(&trust.log).map_err(|e| {
                Error::Request(format!("the upgraded receipt does not verify: {e}"))
            })?;
            let mut json = serde_json::to_vec(&upgraded)
                .map_err(|e| Error::Request(format!("cannot encode the receipt: {e}")))?;
            json.push(b'\n');
            xgate_ledger::fsutil::write_atomic(out, &json, 0o600)
                .map_err(|e| Error::Request(format!("cannot write {}: {e}", out.display())))?;
            lines.push(format!(
                "upgraded: {} (tree size {})",
                out.display(),
                covering.size
            ));
        }
        Ok(lines)
    }
}

/// A receipt's entry proven in a checkpoint cosigned by a quorum.
#[derive(Debug)]
pub struct Covered {
    /// The cosigned checkpoint, its signature and quorum checked.
    pub cosigned: Cosigned,
    /// The entry's inclusion proof in it, checked against its root.
    pub proof: InclusionProof,
    /// How the receipt's own checkpoint relates to it, in words.
    pub how: &'static str,
}

/// Proves the entry of `receipt` in the cosigned checkpoint `note` (from
/// `source`, named in errors): `trust` accepts the note (the log's
/// signature and the quorum), it covers the entry, the receipt's own
/// checkpoint `own` (already verified with [`Receipt::verify`]) is
/// consistent with it, and the entry is included in it. When the sizes
/// differ, consistency and inclusion are recomputed from the log's tiles
/// through `client`, never taken from the server; when they are equal the
/// receipt's own proof serves.
///
/// # Errors
/// [`Error::Request`] naming the first check that fails.
pub async fn prove_in_cosigned(
    trust: &Trust,
    receipt: &Receipt,
    own: &Checkpoint,
    note: &str,
    source: &str,
    client: Option<&mut LogClient>,
) -> Result<Covered, Error> {
    let cosigned = trust.verify(note).map_err(|e| {
        Error::Request(format!("the checkpoint from {source} is not accepted: {e}"))
    })?;
    let covering = &cosigned.checkpoint.checkpoint;
    if receipt.log_index >= covering.size {
        return Err(Error::Request(format!(
            "the cosigned checkpoint (tree size {}) does not cover entry {} yet; try again later",
            covering.size, receipt.log_index
        )));
    }
    let leaf = leaf_of(receipt)?;
    let (proof, how) = if covering.size == own.size {
        if covering.root != own.root {
            return Err(Error::Request(format!(
                "the receipt's checkpoint and the cosigned one are both of tree size {} with different roots: the log forked; keep both",
                own.size
            )));
        }
        (receipt_proof(receipt)?, "the same tree as the receipt's")
    } else {
        let Some(client) = client else {
            return Err(Error::Request(format!(
                "the cosigned checkpoint is of tree size {}, the receipt's of {}: give --log URL to prove them consistent from the log's tiles",
                covering.size, own.size
            )));
        };
        client.check_consistent(own, covering).await.map_err(|e| {
            Error::Request(format!(
                "the receipt's checkpoint and the cosigned one: {e}"
            ))
        })?;
        let proof = client
            .inclusion(covering, receipt.log_index)
            .await
            .map_err(|e| Error::Request(format!("the inclusion proof from tiles: {e}")))?;
        (
            proof,
            "consistent with the receipt's (recomputed from the log's tiles)",
        )
    };
    verify_inclusion(&proof, &leaf, &covering.root).map_err(|e| {
        Error::Request(format!(
            "entry {} is not in the cosigned checkpoint: {e}",
            receipt.log_index
        ))
    })?;
    Ok(Covered {
        cosigned,
        proof,
        how,
    })
}

/// A checkpoint note from a file.
fn read_note(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Request(format!("cannot read {}: {e}", path.display())))?;
    String::from_utf8(bytes)
        .map_err(|_| Error::Request(format!("{} is not a UTF-8 note", path.display())))
}

fn leaf_of(receipt: &Receipt) -> Result<Hash, Error> {
    unb64(&receipt.leaf_hash).ok_or_else(|| Error::Request("leaf_hash is not a hash".into()))
}

/// The receipt's own proof (already checked against its checkpoint).
fn receipt_proof(receipt: &Receipt) -> Result<InclusionProof, Error> {
    let hashes = receipt
        .inclusion_proof
        .iter()
        .map(|h| unb64(h).ok_or_else(|| Error::Request("inclusion_proof holds a non-hash".into())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(InclusionProof {
        leaf_index: receipt.log_index,
        tree_size: receipt.tree_size,
        hashes,
    })
}

fn unb64(text: &str) -> Option<Hash> {
    Hash::from_slice(&B64.decode(text).ok()?)
}

/// A receipt as `xgate send` prints it, as the API's 201 carries it (an
/// inventory report's with its `reconciliation_id`), or nested under
/// `receipt` as `xgate asset` and `xgate inventory` print it.
fn parse_receipt(text: &[u8]) -> Result<Receipt, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(text)?;
    if let Some(object) = value.as_object_mut() {
        if let Some(inner) = object
            .remove("receipt")
            .filter(serde_json::Value::is_object)
        {
            return serde_json::from_value(inner);
        }
        object.remove("reconciliation_id");
    }
    serde_json::from_value(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_parse_bare_with_a_reconciliation_id_or_nested() {
        let receipt = serde_json::json!({"id": "ab", "log_index": 3, "tree_size": 4,
            "leaf_hash": "x", "inclusion_proof": [], "checkpoint": "c", "entry": "e30="});
        let bare = parse_receipt(receipt.to_string().as_bytes()).expect("bare");
        let mut api = receipt.clone();
        api["reconciliation_id"] = serde_json::json!("3");
        assert_eq!(
            parse_receipt(api.to_string().as_bytes()).expect("api"),
            bare
        );
        let cli = serde_json::json!({"kind": "inventory.report", "jti": "j",
            "receipt": receipt, "reconciliation_id": "3"});
        assert_eq!(
            parse_receipt(cli.to_string().as_bytes()).expect("cli"),
            bare
        );
        let mut extra = serde_json::json!({"id": "ab"});
        extra["surprise"] = serde_json::json!(1);
        assert!(parse_receipt(extra.to_string().as_bytes()).is_err());
    }
}
