//! `xgate witness ...`: run a C2SP tlog-witness that cosigns the logs it
//! is told to watch, so that no log can show one history to some and
//! another to others without the witnesses refusing (and keeping the
//! proof).
//!
//! ```text
//! xgate witness init --dir DIR --name NAME [--alg ed25519|ml-dsa-44]
//! xgate witness serve --dir DIR --listen ADDR --log VKEY [--log VKEY...]
//!                     [--pki DIR --as AGENCY]
//! ```
//!
//! `init` creates DIR (0700) with a new private key (DIR/witness.key,
//! 0600, never printed) and prints the witness's verifier key as the last
//! line of its output; it refuses to replace an existing key. `serve`
//! answers `POST /add-checkpoint` for the logs whose verifier keys are
//! given (each log's origin is its key's name), over plain HTTP, or HTTPS
//! with that agency's certificate from the development PKI. Its first
//! line on stdout is `xgate: witness listening on http(s)://ADDR`; it
//! stops on SIGTERM or SIGINT after the requests in flight.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use xgate_ledger::NoteVerifier;
use xgate_ledger::cosign::CosignatureAlg;
use xgate_ledger::witness::{self, KEY_FILE, Witness};
use xgate_server::pki::{TLS_CERT, TLS_KEY};
use xgate_server::registry::AgencyId;

use super::error::Error;

/// The `xgate witness` subcommands.
#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Create a witness: a directory with a new private key; prints the
    /// witness's verifier key (vkey) last.
    Init(InitArgs),
    /// Serve POST /add-checkpoint (C2SP tlog-witness) for the given logs.
    Serve(ServeArgs),
}

impl WitnessCommand {
    /// Runs the subcommand.
    ///
    /// # Errors
    /// See each subcommand.
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        match self {
            WitnessCommand::Init(args) => args.run(stdout),
            WitnessCommand::Serve(args) => args.run(stdout),
        }
    }
}

/// Arguments of `xgate witness init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The witness directory to create (its key and state live there).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The witness's name, a schema-less URL such as `witness.state.example/w1`
    /// (its key name: no spaces, no '+').
    #[arg(long, value_name = "NAME", value_parser = super::values::origin)]
    pub name: String,
    /// The cosignature type: ml-dsa-44 (post-quantum, type 0x06, which
    /// tlog-witness recommends) or ed25519 (type 0x04).
    #[arg(long, value_name = "ALG", default_value = "ed25519", value_parser = alg)]
    pub alg: CosignatureAlg,
}

fn alg(text: &str) -> Result<CosignatureAlg, String> {
    text.parse()
        .map_err(|_| "must be ed25519 or ml-dsa-44".to_owned())
}

impl InitArgs {
    /// Creates the witness and prints its verifier key last.
    ///
    /// # Errors
    /// [`Error::Witness`]: a key already there, or the directory cannot
    /// be written.
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        xgate_server::data_dir::restrict_umask();
        let cosigner = witness::init(&self.dir, &self.name, self.alg)?;
        let text = format!(
            "created witness {} ({}) in {}; its private key is {} (0600, never printed)\n\
             give its verifier key to the logs it witnesses and to auditors:\n{}\n",
            cosigner.name(),
            self.alg,
            self.dir.display(),
            self.dir.join(KEY_FILE).display(),
            cosigner.verifier(),
        );
        stdout.write_all(text.as_bytes()).map_err(Error::Stdout)
    }
}

/// Arguments of `xgate witness serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The witness directory (`xgate witness init`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// A log to witness, by its verifier key (`xgate log key`); its origin
    /// is the key's name. Repeat for each log (or each key of a log).
    #[arg(long = "log", value_name = "VKEY", required = true, value_parser = log_key)]
    pub logs: Vec<NoteVerifier>,
    /// Serve HTTPS with an agency's certificate from this PKI directory
    /// (`xgate certs init`); needs --as.
    #[arg(long, value_name = "DIR", requires = "agency")]
    pub pki: Option<PathBuf>,
    /// The agency whose certificate and key the witness presents.
    #[arg(long = "as", value_name = "AGENCY", requires = "pki")]
    pub agency: Option<AgencyId>,
}

fn log_key(text: &str) -> Result<NoteVerifier, String> {
    NoteVerifier::parse(text).map_err(|e| format!("not a log verifier key: {e}"))
}

impl ServeArgs {
    /// Serves until SIGTERM or SIGINT.
    ///
    /// # Errors
    /// The directory is locked, holds no key or corrupt state, the TLS
    /// files are unusable, or the address cannot be bound.
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        xgate_server::data_dir::restrict_umask();
        super::serve::init_tracing();
        let tls = match (&self.pki, &self.agency) {
            (Some(pki), Some(agency)) => {
                let home = pki.join(agency.as_str());
                let cert = home.join(TLS_CERT);
                if !cert.is_file() {
                    return Err(Error::Serve(format!(
                        "no agency {agency} in {} ({} is missing)",
                        pki.display(),
                        cert.display()
                    )));
                }
                Some(
                    crate::witness::tls_config(&cert, &home.join(TLS_KEY))
                        .map_err(|e| Error::Serve(e.to_string()))?,
                )
            }
            _ => None,
        };
        let witness = Arc::new(Witness::open(&self.dir, &self.logs)?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Serve(format!("cannot start the runtime: {e}")))?;
        runtime.block_on(async {
            let (listener, addr) = super::serve::listen(self.listen).await?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            let mut greeting = format!(
                "xgate: witness listening on {scheme}://{addr}\nwitness {}\n",
                witness.cosigner().verifier()
            );
            let mut origins: Vec<&str> = witness.origins().collect();
            origins.sort_unstable();
            for origin in origins {
                let size = witness.latest(origin).map_or(0, |l| l.size);
                greeting.push_str(&format!("log {origin}: latest cosigned size {size}\n"));
            }
            stdout
                .write_all(greeting.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(Error::Stdout)?;
            tracing::info!(%addr, name = witness.cosigner().name(), "witness started");
            crate::witness::serve(
                listener,
                Arc::clone(&witness),
                tls,
                super::serve::shutdown_signal(),
            )
            .await
            .map_err(|e| Error::Serve(format!("the listener failed: {e}")))?;
            tracing::info!("witness stopped");
            Ok(())
        })
    }
}
