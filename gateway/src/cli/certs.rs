//! `xgate certs ...`: create a development federation PKI and revoke agency
//! certificates. The work is in [`xgate_server::pki`]; this parses flags and
//! reports.
//!
//! ```text
//! xgate certs init --dir DIR --agency ID [--agency ID ...] [--auditor ID ...] [--force]
//! xgate certs revoke --dir DIR --agency ID
//! xgate certs crl --dir DIR
//! ```

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::error::Error;
use xgate_server::pki::{self, Revoked};
use xgate_server::registry::AgencyId;

/// The `xgate certs` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a federation CA, CRL, gateway and agency certificates, agency
    /// JOSE keys and the registry in a new directory.
    Init(InitArgs),
    /// Put an agency's TLS certificate on the CRL; a running gateway picks
    /// the new CRL up by itself.
    Revoke(RevokeArgs),
    /// Re-issue the CRL with a fresh nextUpdate (same revocations, next
    /// CRL number), before the one in force goes stale.
    Crl(CrlArgs),
}

/// Arguments of `xgate certs crl`.
#[derive(Debug, Args)]
pub struct CrlArgs {
    /// The PKI directory.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

/// Arguments of `xgate certs init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to create.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// An agency to issue keys for (repeat for each).
    #[arg(long = "agency", value_name = "ID", required = true)]
    pub agencies: Vec<AgencyId>,
    /// An agency that is also given the auditor role, which reads every
    /// asset and reconciliation (repeat for each).
    #[arg(long = "auditor", value_name = "ID")]
    pub auditors: Vec<AgencyId>,
    /// Replace DIR if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `xgate certs revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The PKI directory.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The agency whose TLS certificate is revoked.
    #[arg(long, value_name = "ID")]
    pub agency: AgencyId,
}

impl CertsCommand {
    /// Runs the subcommand, reporting on `stdout`.
    ///
    /// # Errors
    /// [`Error::Pki`] naming the file or agency at fault.
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        match self {
            CertsCommand::Init(args) => {
                let registry = pki::init(&args.dir, &args.agencies, &args.auditors, args.force)?;
                let ids: Vec<&str> = registry.agencies().map(|a| a.id.as_str()).collect();
                let line = format!(
                    "created a development PKI in {} for {} agencies: {}",
                    args.dir.display(),
                    ids.len(),
                    ids.join(", ")
                );
                writeln!(stdout, "{line}").map_err(Error::Stdout)
            }
            CertsCommand::Revoke(args) => {
                let line = match pki::revoke(&args.dir, &args.agency)? {
                    Revoked::Added { serial, crl_number } => format!(
                        "revoked the TLS certificate of {} (serial {serial}); CRL number {crl_number}",
                        args.agency
                    ),
                    Revoked::AlreadyRevoked { serial } => format!(
                        "the TLS certificate of {} (serial {serial}) was already revoked; nothing changed",
                        args.agency
                    ),
                };
                writeln!(stdout, "{line}").map_err(Error::Stdout)
            }
            CertsCommand::Crl(args) => {
                let number = pki::reissue_crl(&args.dir)?;
                writeln!(
                    stdout,
                    "issued CRL number {number} in {}; a running gateway picks it up by itself",
                    args.dir.display()
                )
                .map_err(Error::Stdout)
            }
        }
    }
}
