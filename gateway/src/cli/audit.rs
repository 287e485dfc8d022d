//! `xgate audit ...`: checks an auditor runs offline, trusting nothing but
//! the log's public key.
//!
//! ```text
//! xgate audit verify-receipt --receipt FILE --key VKEY
//! ```
//!
//! `verify-receipt` checks the receipt's checkpoint signature with `VKEY`
//! (the signed-note verifier key `xgate log key` prints) and the inclusion
//! proof against the checkpoint's root. Exit 0 and one line
//! `ok: envelope ID is entry I of ORIGIN at tree size N`, or exit 1 naming
//! the first thing that does not check out.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use xgate_ledger::NoteVerifier;

use super::error::Error;
use crate::receipt::Receipt;

/// The `xgate audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify a receipt offline against the log's verifier key.
    VerifyReceipt(VerifyReceiptArgs),
}

/// Arguments of `xgate audit verify-receipt`.
#[derive(Debug, Args)]
pub struct VerifyReceiptArgs {
    /// The receipt, as `xgate send` printed it.
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
                let receipt: Receipt = serde_json::from_slice(&text).map_err(|e| {
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
        }
    }
}
