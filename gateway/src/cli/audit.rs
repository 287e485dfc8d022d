//! `xgate audit ...`: checks an auditor runs offline, trusting nothing but
//! the log's public key.
//!
//! ```text
//! xgate audit verify-receipt --receipt FILE --key VKEY
//! xgate audit replay --data-dir DIR [--registry FILE]
//! ```
//!
//! `verify-receipt` checks the receipt's checkpoint signature with `VKEY`
//! (the signed-note verifier key `xgate log key` prints) and the inclusion
//! proof against the checkpoint's root. Exit 0 and one line
//! `ok: envelope ID is entry I of ORIGIN at tree size N`, or exit 1 naming
//! the first thing that does not check out.
//!
//! `replay` recomputes the asset and medical state from the logged envelopes
//! ([`xgate_server::recompute`]) and compares it with the stored state: exit
//! 0 and one `ok:` line, or one line per difference (at most 50, by key,
//! never by value) and exit 1. The gateway must be stopped (the data
//! directory is locked while it runs). Signatures are checked against
//! `--registry`, by default `DIR/pki/registry.toml` when it exists.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use xgate_ledger::NoteVerifier;

use super::error::Error;
use xgate_server::receipt::Receipt;
use xgate_server::recompute;
use xgate_server::registry::Registry;

/// The `xgate audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify a receipt offline against the log's verifier key.
    VerifyReceipt(VerifyReceiptArgs),
    /// Recompute the asset state from the log and compare it with the
    /// stored state; exit 1 on any difference.
    Replay(ReplayArgs),
}

/// Arguments of `xgate audit replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The gateway's data directory (stopped).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The agency registry to check signatures with; default
    /// DIR/pki/registry.toml if it exists, else signatures are not checked.
    #[arg(long, value_name = "FILE")]
    pub registry: Option<PathBuf>,
}

/// Arguments of `xgate audit verify-receipt`.
#[derive(Debug, Args)]
pub struct VerifyReceiptArgs {
    /// The receipt, as `xgate send`, `xgate asset` or `xgate inventory`
    /// printed it.
    #[arg(long, value_name = "FILE")]
    pub receipt: PathBuf,
    /// The log's verifier key, `name+hexid+base64key`.
    #[arg(long, value_name = "VKEY")]
    pub key: String,
}

impl AuditCommand {
    /// Runs the check; prints one line.
    ///
    /// # Errors
    /// [`Error::Request`] naming what does not check out.
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        match self {
            AuditCommand::VerifyReceipt(args) => {
                let key = NoteVerifier::parse(args.key.trim())
                    .map_err(|e| Error::Request(format!("--key is not a verifier key: {e}")))?;
                let text = std::fs::read(&args.receipt).map_err(|e| {
                    Error::Request(format!("cannot read {}: {e}", args.receipt.display()))
                })?;
                let receipt = parse_receipt(&text).map_err(|e| {
                    Error::Request(format!("{} is not a receipt: {e}", args.receipt.display()))
                })?;
                let checkpoint = receipt
                    .verify(&key)
                    .map_err(|e| Error::Request(format!("the receipt does not verify: {e}")))?;
                writeln!(
                    stdout,
                    "ok: envelope {} is entry {} of {} at tree size {}",
                    receipt.id, receipt.log_index, checkpoint.origin, checkpoint.size
                )
                .map_err(Error::Stdout)
            }
            AuditCommand::Replay(args) => run_replay(&args, stdout),
        }
    }
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

fn run_replay(args: &ReplayArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let default = args.data_dir.join("pki").join(xgate_server::pki::REGISTRY);
    let registry_path = args
        .registry
        .clone()
        .or_else(|| default.is_file().then_some(default));
    let registry = registry_path
        .as_deref()
        .map(Registry::load)
        .transpose()
        .map_err(|e| Error::Request(e.to_string()))?;
    let log =
        xgate_ledger::Log::open_existing(&args.data_dir, &xgate_ledger::OpenOptions::default())?;
    let outcome = recompute::replay(&log, registry.as_ref())?;
    let signatures = match &registry_path {
        Some(p) => format!("signatures checked against {}", p.display()),
        None => "signatures not checked (no registry)".to_owned(),
    };
    if outcome.is_clean() {
        return writeln!(
            stdout,
            "ok: replayed {} entries ({} asset and medical envelopes, {signatures}); the stored state equals the recomputed state ({} keys)",
            outcome.entries, outcome.applied, outcome.keys
        )
        .map_err(Error::Stdout);
    }
    for d in &outcome.differences {
        writeln!(stdout, "difference: {d}").map_err(Error::Stdout)?;
    }
    Err(Error::Request(format!(
        "the stored state differs from the replay of {} entries in {} places",
        outcome.entries, outcome.difference_count
    )))
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
