//! `xgate certs ...`: create a development federation PKI and revoke agency
//! and gateway certificates. The work is in [`xgate_server::pki`]; this
//! parses flags and reports.
//!
//! ```text
//! xgate certs init --dir DIR --agency ID[@GATEWAY] [--agency ...] [--auditor ID[@GATEWAY] ...]
//!                  [--gateway ID=URL ...] [--signing-alg ES256|EdDSA] [--force]
//! xgate certs revoke --dir DIR (--agency ID | --gateway ID)
//! xgate certs crl --dir DIR
//! ```
//!
//! With `--gateway`, the PKI is a federation's: each gateway gets its
//! files under `gateways/<id>/` and a `[[gateway]]` in the registry, and
//! every agency names the gateway that serves it (`--agency state@hub`).
//! Without it, one gateway serves every agency, and none may name one.
//! `--signing-alg EdDSA` issues Ed25519 envelope signing keys (the gateway
//! checks their signatures in batches) instead of P-256 ones (`ES256`,
//! the default).
//! A value that does not parse (an id, a URL) exits 2; agencies and
//! gateways that do not fit together (a name given twice, an unlisted
//! gateway, `@` without `--gateway`) exit 1, before anything is written.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::error::Error;
use xgate_server::pki::{self, GatewayPlan, Member, Revoked, SigningAlg};
use xgate_server::registry::{AgencyId, GatewayId};

/// The `xgate certs` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a federation CA, CRL, gateway and agency certificates, agency
    /// JOSE keys and the registry in a new directory; with --gateway, each
    /// gateway's certificate, log key and witness key too.
    Init(InitArgs),
    /// Put an agency's or a gateway's TLS certificate on the CRL; a running
    /// gateway picks the new CRL up by itself.
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
    /// An agency to issue keys for (repeat for each); with --gateway,
    /// written ID@GATEWAY, naming the gateway that serves it.
    #[arg(long = "agency", value_name = "ID[@GATEWAY]", required = true, value_parser = agency_at)]
    pub agencies: Vec<AgencyAt>,
    /// An agency that is also given the auditor role, which reads every
    /// asset and reconciliation (repeat for each); ID@GATEWAY as --agency.
    #[arg(long = "auditor", value_name = "ID[@GATEWAY]", value_parser = agency_at)]
    pub auditors: Vec<AgencyAt>,
    /// A gateway of a federation and where its peers reach it,
    /// https://HOST:PORT (repeat for each): its TLS certificate, log key
    /// and witness key go under gateways/ID/.
    #[arg(long = "gateway", value_name = "ID=URL", value_parser = gateway_plan)]
    pub gateways: Vec<GatewayPlan>,
    /// The algorithm of the agencies' envelope signing keys: ES256
    /// (P-256) or EdDSA (Ed25519, checked in batches by the gateway).
    #[arg(long, value_enum, default_value_t = SigningAlgArg::Es256)]
    pub signing_alg: SigningAlgArg,
    /// Replace DIR if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `--signing-alg`'s values, exactly as JWS spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SigningAlgArg {
    /// ECDSA P-256 with SHA-256.
    #[value(name = "ES256")]
    Es256,
    /// Ed25519.
    #[value(name = "EdDSA")]
    EdDsa,
}

impl From<SigningAlgArg> for SigningAlg {
    fn from(arg: SigningAlgArg) -> SigningAlg {
        match arg {
            SigningAlgArg::Es256 => SigningAlg::Es256,
            SigningAlgArg::EdDsa => SigningAlg::EdDsa,
        }
    }
}

/// An agency as `--agency` and `--auditor` name it: `ID` or
/// `ID@GATEWAY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgencyAt {
    /// The agency.
    pub id: AgencyId,
    /// The gateway that serves it, if named.
    pub gateway: Option<GatewayId>,
}

/// Parses `ID` or `ID@GATEWAY`.
fn agency_at(text: &str) -> Result<AgencyAt, String> {
    let (id, gateway) = match text.split_once('@') {
        Some((id, gateway)) => (id, Some(gateway)),
        None => (text, None),
    };
    Ok(AgencyAt {
        id: id
            .parse()
            .map_err(|e: xgate_server::registry::InvalidAgencyId| e.to_string())?,
        gateway: gateway.map(gateway_id).transpose()?,
    })
}

/// Parses a gateway id.
fn gateway_id(text: &str) -> Result<GatewayId, String> {
    text.parse().map_err(|_| {
        "invalid gateway id: use 1-63 lowercase letters, digits and inner hyphens".into()
    })
}

/// Parses `ID=URL`.
fn gateway_plan(text: &str) -> Result<GatewayPlan, String> {
    let (id, url) = text
        .split_once('=')
        .ok_or_else(|| "write a gateway as ID=URL (https://HOST:PORT)".to_owned())?;
    GatewayPlan::new(gateway_id(id)?, url).map_err(|e| e.to_string())
}

/// Arguments of `xgate certs revoke`: one of `--agency` and `--gateway`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("holder").required(true).args(["agency", "gateway"])))]
pub struct RevokeArgs {
    /// The PKI directory.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The agency whose TLS certificate is revoked.
    #[arg(long, value_name = "ID")]
    pub agency: Option<AgencyId>,
    /// The gateway (of a federation) whose TLS certificate is revoked.
    #[arg(long, value_name = "ID", value_parser = gateway_id)]
    pub gateway: Option<GatewayId>,
}

impl CertsCommand {
    /// Runs the subcommand, reporting on `stdout`.
    ///
    /// # Errors
    /// [`Error::Pki`] naming the file or agency at fault.
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        match self {
            CertsCommand::Init(args) => {
                let member = |auditor: bool| {
                    move |a: AgencyAt| Member {
                        id: a.id,
                        auditor,
                        gateway: a.gateway,
                    }
                };
                let members: Vec<Member> = args
                    .agencies
                    .into_iter()
                    .map(member(false))
                    .chain(args.auditors.into_iter().map(member(true)))
                    .collect();
                let registry = pki::init_federation_with(
                    &args.dir,
                    &members,
                    &args.gateways,
                    args.signing_alg.into(),
                    args.force,
                )?;
                let ids: Vec<&str> = registry.agencies().map(|a| a.id.as_str()).collect();
                let mut line = format!(
                    "created a development PKI in {} for {} agencies: {}",
                    args.dir.display(),
                    ids.len(),
                    ids.join(", ")
                );
                if args.signing_alg == SigningAlgArg::EdDsa {
                    line.push_str("; envelopes signed with EdDSA (Ed25519)");
                }
                if registry.is_federated() {
                    let gateways: Vec<&str> = registry.gateways().map(|g| g.id.as_str()).collect();
                    line.push_str(&format!(
                        "; {} gateways: {}",
                        gateways.len(),
                        gateways.join(", ")
                    ));
                }
                writeln!(stdout, "{line}").map_err(Error::Stdout)
            }
            CertsCommand::Revoke(args) => {
                let (whose, revoked) = match (&args.agency, &args.gateway) {
                    (Some(agency), _) => (agency.to_string(), pki::revoke(&args.dir, agency)?),
                    (None, Some(gateway)) => (
                        format!("gateway {gateway}"),
                        pki::revoke_gateway(&args.dir, gateway)?,
                    ),
                    // clap requires one of the two.
                    (None, None) => {
                        return Err(Error::Usage(
                            "name --agency ID or --gateway ID (see 'xgate certs revoke --help')"
                                .into(),
                        ));
                    }
                };
                let line = match revoked {
                    Revoked::Added { serial, crl_number } => format!(
                        "revoked the TLS certificate of {whose} (serial {serial}); CRL number {crl_number}"
                    ),
                    Revoked::AlreadyRevoked { serial } => format!(
                        "the TLS certificate of {whose} (serial {serial}) was already revoked; nothing changed"
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
