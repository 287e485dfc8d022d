//! `xgate demo`: a whole federation on loopback, end to end, in one command.
//!
//! It starts a gateway in this process (the way `xgate serve` does, on a
//! free loopback port, with a development PKI for state, treasury, gsa, hhs
//! and the auditor gao) and a witness for each of state, treasury, gsa and
//! hhs (the way `xgate witness serve` does), the gateway publishing a
//! checkpoint once 3 of the 4 cosigned it. Then it tells a story through
//! the real client stack, one numbered step at a time: asset custody and a
//! two-party transfer, an inventory count whose discrepancy arrives live on
//! the reconciliation feed, an emergency medical request answered
//! encrypted and opened, contracts of the demo's policy acting (an offer
//! between treasury's offices accepted on the recipient's behalf, and the
//! two-person rule holding the offer of a hardware security module until
//! a second person approves it), the cosigned checkpoint anyone can read
//! from the public tlog-tiles listener, and an auditor checking every
//! receipt against it with the witnesses' quorum and the log's
//! consistency. It ends with the auditor's offline replay (every contract
//! act recomputed with the policy) and a summary table, stops the gateway
//! and the witnesses and, unless `--dir` was given, removes everything it
//! wrote.
//!
//! With `--federated` the same story is told across a federation of a
//! gateway per agency (state, treasury, gsa and hhs, the auditor gao on
//! hhs's): a federation PKI, four gateways each with its own data
//! directory and log, every envelope to another gateway's agency
//! followed to its delivery receipt, and the auditor replaying all four
//! public logs together as `xgate audit replay --log URL...` does.
//!
//! The pieces: `federation` runs the gateways on their own thread and
//! runtime; `gateways` sets up the federated demo's four; `policy` is the
//! policy file each gateway is given (the default rules and the demo's
//! contracts); `witnesses` runs the single gateway's agencies' witnesses
//! on that runtime; `story` drives the agencies; `events` reads the
//! Server-Sent Events feed; `summary` prints the table. Every name in the
//! story (tags, people, `jti`s) is fixed and synthetic, so two runs print
//! the same lines but for the elapsed time and the line starting `trusted
//! time:` (the witnesses' clocks). The gateway's own tracing is not
//! installed: nothing but the story reaches the terminal.

mod events;
mod federation;
mod gateways;
mod out;
mod policy;
mod story;
mod summary;
mod witnesses;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use super::error::Error;
use federation::Federation;
use out::Out;
use xgate_server::pki::REGISTRY;

/// Arguments of `xgate demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the federation's PKI, policy and log in DIR, which must be new
    /// or empty (default: a temporary directory, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print only the summary table.
    #[arg(long)]
    pub quiet: bool,
    /// Tell the story across a federation: a gateway per agency, each with
    /// its own log, store-and-forward between them.
    #[arg(long)]
    pub federated: bool,
}

impl DemoArgs {
    /// Runs the demo; the gateways are stopped whatever happens.
    ///
    /// # Errors
    /// A directory that cannot be used, a gateway that does not start, or
    /// any step of the story that does not go as told.
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let started = Instant::now();
        let (temp, dir) = match &self.dir {
            Some(dir) => {
                check_fresh(dir)?;
                (None, dir.clone())
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("xgate-demo-")
                    .tempdir()
                    .map_err(|e| {
                        Error::Request(format!("cannot make a temporary directory: {e}"))
                    })?;
                let dir = temp.path().to_path_buf();
                (Some(temp), dir)
            }
        };
        let mut out = Out::new(stdout, self.quiet);
        out.title(match self.federated {
            true => {
                "xgate demo --federated: a gateway each for the agencies state, treasury, gsa \
                 and hhs, with the auditor gao on hhs's, on loopback"
            }
            false => {
                "xgate demo: a gateway and the agencies state, treasury, gsa and hhs, \
                 with the auditor gao, on loopback"
            }
        })?;
        let federation = Federation::start(&dir, self.federated)?;
        let stores: Vec<(String, PathBuf)> = federation
            .sites
            .iter()
            .map(|s| (s.name().to_owned(), s.data_dir.clone()))
            .collect();
        let registry = federation.pki.join(REGISTRY);
        let told = story::tell(&federation, &mut out);
        // Stop before looking at the outcome: nothing may stay running.
        let stopped = federation.stop();
        let mut tally = told?;
        stopped?;
        story::after_stop(
            &stores,
            &registry,
            self.dir.as_ref().map(|_| dir.as_path()),
            &mut tally,
            &mut out,
        )?;
        tally.elapsed = started.elapsed();
        out.blank()?;
        summary::print(&tally, self.federated, out.stdout)?;
        if let Some(temp) = temp {
            temp.close().map_err(|e| {
                Error::Request(format!("cannot remove the temporary directory: {e}"))
            })?;
        }
        Ok(())
    }
}

/// Refuses a directory holding anything: the demo's fixed `jti`s and tags
/// would collide with an earlier run's.
fn check_fresh(dir: &Path) -> Result<(), Error> {
    match std::fs::read_dir(dir) {
        Ok(entries) => match entries.count() {
            0 => Ok(()),
            _ => Err(Error::Request(format!(
                "{} is not empty; the demo starts a new federation: name a new or empty directory",
                dir.display()
            ))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Request(format!(
            "cannot read {}: {e}",
            dir.display()
        ))),
    }
}
