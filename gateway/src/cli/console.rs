//! `xgate console --pki PKI --as AGENCY [--gateway URL] [--listen ADDR]`:
//! the agency console ([`crate::console`]), a page on loopback that acts
//! for one agency with its keys.
//!
//! Prints one line, `xgate: console for AGENCY at http://ADDR/#token=T`,
//! then serves until SIGTERM or SIGINT. The address is loopback unless
//! `--listen` names another, which is refused: the console holds the
//! agency's keys, and its token travels in clear over plain HTTP.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use xgate_server::pki::REGISTRY;
use xgate_server::registry::{AgencyId, Registry};

use super::error::Error;
use crate::console::actions::Identity;
use crate::console::{Console, Runner, new_token};

/// The gateway a single gateway's agencies reach by default (`xgate
/// serve`'s default `listen`).
const DEFAULT_GATEWAY: &str = "https://127.0.0.1:8443";

/// Arguments of `xgate console`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// PKI directory holding the agency's keys (`xgate certs init`).
    #[arg(long, value_name = "DIR")]
    pub pki: PathBuf,
    /// The agency the console acts as.
    #[arg(long = "as", value_name = "AGENCY")]
    pub agency: AgencyId,
    /// The agency's gateway, as https://host:port (default: the gateway
    /// the registry names for the agency, else https://127.0.0.1:8443).
    #[arg(long, value_name = "URL")]
    pub gateway: Option<String>,
    /// The log's verifier key (`xgate log key`) to check receipts with,
    /// for a single gateway's registry, which lists none (a federation's
    /// registry names each gateway's log key, and that one is used).
    #[arg(long, value_name = "VKEY")]
    pub log_key: Option<String>,
    /// Loopback address to serve the page on (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

impl ConsoleArgs {
    /// Serves the console until SIGTERM or SIGINT, running each action
    /// with `runner` (the command line itself).
    ///
    /// # Errors
    /// A registry that cannot be read, an agency it does not list, an
    /// address that is not loopback or cannot be bound.
    pub fn run(self, stdout: &mut dyn Write, runner: Runner) -> Result<(), Error> {
        if !self.listen.ip().is_loopback() {
            return Err(Error::Usage(format!(
                "--listen {} is not a loopback address: the console acts with the agency's keys \
                 and serves plain HTTP, so it listens on 127.0.0.1 or ::1 only",
                self.listen
            )));
        }
        super::serve::init_tracing();
        let registry = Registry::load(&self.pki.join(REGISTRY))?;
        if registry.get(&self.agency).is_none() {
            return Err(Error::Request(format!(
                "the registry in {} lists no agency {}",
                self.pki.display(),
                self.agency
            )));
        }
        let gateway = self.gateway.clone().unwrap_or_else(|| {
            registry
                .gateway_of(&self.agency)
                .map_or_else(|| DEFAULT_GATEWAY.to_owned(), |g| g.url.clone())
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Serve(format!("cannot start the runtime: {e}")))?;
        runtime.block_on(async {
            let (listener, addr) = super::serve::listen(self.listen).await?;
            let console = Arc::new(Console {
                identity: Identity {
                    pki: self.pki.display().to_string(),
                    agency: self.agency.to_string(),
                    gateway,
                },
                pki: self.pki,
                agency: self.agency,
                registry,
                log_key: self.log_key,
                token: new_token()?,
                addr,
                runner,
            });
            let line = format!(
                "xgate: console for {} at {}\n",
                console.agency,
                console.url()
            );
            stdout
                .write_all(line.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(Error::Stdout)?;
            Arc::clone(&console)
                .serve(listener, super::serve::shutdown_signal())
                .await
                .map_err(|e| Error::Serve(format!("the console failed: {e}")))
        })
    }
}
