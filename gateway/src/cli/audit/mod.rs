//! `xgate audit ...`: checks an auditor runs, trusting nothing but the
//! log's public key (and, for a quorum, the witnesses' keys).
//!
//! ```text
//! xgate audit verify-receipt --receipt R --key LOG_VKEY [--witness VKEY]... [--quorum K]
//!                            [--log URL | --checkpoint FILE] [--ca FILE] [--upgrade OUT]
//! xgate audit monitor --log URL --key LOG_VKEY [--witness VKEY... --quorum K] --state FILE
//!                     [--once] [--replay] [--ca FILE]
//! xgate audit replay --data-dir DIR [--store STORE] [--registry FILE]
//! xgate audit replay --log URL [--log URL]... --registry FILE [--ca FILE]
//!                    [--witness VKEY... --quorum K]
//! ```
//!
//! `verify-receipt` checks the receipt's checkpoint signature with the
//! log's key and its inclusion proof, offline: exit 0 and one line `ok:
//! envelope ID is entry I of ORIGIN at tree size N`, or exit 1 naming the
//! first thing that does not check out. With witnesses, a log or a
//! checkpoint file it also checks the entry against a checkpoint cosigned
//! by a quorum ([`verify`]). `monitor` follows a log ([`monitor`]).
//!
//! `replay` recomputes the asset and medical state from the logged
//! envelopes ([`xgate_server::recompute`]) and compares it with the stored
//! state: exit 0 and one `ok:` line, or one line per difference (at most
//! 50, by key, never by value) and exit 1. The gateway must be stopped (the
//! data directory is locked while it runs). Signatures are checked against
//! `--registry`, by default `DIR/pki/registry.toml` when it exists. With
//! `--log` it replays a federation's public logs instead, their keys taken
//! from the registry: every entry of each, every cross-gateway exchange on
//! both sides, and the federation-wide state the entries allow ([`replay`]).
//!
//! In dependency order: `trust` (keys, quorum, times), `entries` (the
//! state entries allow), `state` (the monitor's file and evidence), `logs`
//! (a federation's log fetched whole), `exchanges` (cross-gateway
//! matching), then one file per command.

mod entries;
mod exchanges;
mod logs;
pub mod monitor;
pub mod replay;
mod state;
pub(crate) mod trust;
pub mod verify;

use std::io::Write;

use clap::Subcommand;

use super::error::Error;

/// The `xgate audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify a receipt against the log's verifier key and, with witnesses,
    /// against a checkpoint cosigned by a quorum of them.
    VerifyReceipt(verify::VerifyReceiptArgs),
    /// Follow a log's public tiles: verify every checkpoint, its quorum,
    /// its consistency and its entries; stop with evidence at a fork.
    Monitor(monitor::MonitorArgs),
    /// Recompute the asset state from a stopped gateway's data directory
    /// and compare it with the stored state, or replay a federation's
    /// public logs together; exit 1 on any difference or finding.
    Replay(replay::ReplayArgs),
}

impl AuditCommand {
    /// Runs the check; prints its lines.
    ///
    /// # Errors
    /// [`Error::Request`] naming what does not check out.
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        match self {
            AuditCommand::VerifyReceipt(args) => args.run(stdout),
            AuditCommand::Monitor(args) => args.run(stdout),
            AuditCommand::Replay(args) => args.run(stdout),
        }
    }
}
