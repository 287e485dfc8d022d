//! The demo's gateways: each set up exactly as `xgate serve` sets one up
//! ([`crate::cli::serve::prepare`]), on free loopback ports, all served on
//! one thread and runtime of their own so the story's clients never share
//! their workers, and stopped by a signal the demo sends instead of
//! SIGTERM.
//!
//! Two shapes: one gateway serving every agency, with the agencies'
//! witnesses ([`super::witnesses`]) on the same runtime (`xgate demo`); or
//! a federation of a gateway per agency ([`super::gateways`], `xgate demo
//! --federated`). A witness must know the log's key, and the gateway must
//! know the witnesses' addresses before it starts, so the single gateway's
//! log is created first (and closed), then the witnesses start, then the
//! gateway, configured with them and their quorum.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use tokio::sync::watch;
use xgate_ledger::{Log, NoteVerifier, OpenOptions};

use super::gateways::{self, Started};
use super::policy;
use super::witnesses::{self, Listed, Witnesses};
use crate::cli::error::Error;
use crate::cli::serve::prepare;
use xgate_server::config::Config;
use xgate_server::pki::{CA_CERT, REGISTRY};
use xgate_server::registry::{AgencyId, GatewayId, Registry};

/// The demo's running gateways over one PKI in one directory.
pub(super) struct Federation {
    /// The gateways: one, or one per agency of a federation.
    pub sites: Vec<Site>,
    /// The PKI directory, with every agency's keys.
    pub pki: PathBuf,
    /// The federation's CA certificate, which the listeners' certificates
    /// chain to.
    pub ca: PathBuf,
    /// The agencies' witnesses the single gateway submits its checkpoints
    /// to (none in a federation, for now).
    pub witnesses: Vec<Listed>,
    /// How many of them must cosign a checkpoint before it is served.
    pub quorum: usize,
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<Result<(), Error>>>,
}

/// One running gateway, as the story and the auditor know it.
pub(super) struct Site {
    /// Its id in a federation's registry; `None` for a single gateway.
    pub id: Option<GatewayId>,
    /// The agencies it serves.
    pub serves: Vec<AgencyId>,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The public tlog-tiles listener, `https://127.0.0.1:PORT`.
    pub public_url: String,
    /// The log's origin line.
    pub origin: String,
    /// The log's public key, as `xgate log key` prints it.
    pub verifier: NoteVerifier,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl Site {
    /// Its id, or `the gateway` for a single gateway.
    pub fn name(&self) -> &str {
        self.id.as_ref().map_or("the gateway", GatewayId::as_str)
    }
}

/// What the gateways' thread reports once they listen.
struct Ready {
    sites: Vec<Site>,
    pki: PathBuf,
    witnesses: Vec<Listed>,
}

impl Federation {
    /// Creates the PKI, policies and logs in `dir` and starts serving: one
    /// gateway, or with `federated` a gateway per agency.
    ///
    /// # Errors
    /// Anything that stops a gateway from starting.
    pub fn start(dir: &Path, federated: bool) -> Result<Federation, Error> {
        let dir = dir.to_path_buf();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Ready, Error>>();
        let (stop_tx, stop_rx) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("xgate-demo-gateway".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| Error::Serve(format!("cannot start the runtime: {e}")));
                let runtime = match runtime {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(());
                    }
                };
                runtime.block_on(serve(&dir, federated, ready_tx, stop_rx))
                // The runtime drops here with every task on it, and with
                // them the last handles on the logs: they are closed on
                // return.
            })
            .map_err(|e| Error::Serve(format!("cannot start the gateway thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(ready)) => Ok(Federation {
                sites: ready.sites,
                ca: ready.pki.join(CA_CERT),
                pki: ready.pki,
                witnesses: ready.witnesses,
                quorum: witnesses::QUORUM,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => match thread.join() {
                Ok(Err(e)) => Err(e),
                _ => Err(Error::Serve("the gateway thread ended early".into())),
            },
        }
    }

    /// Whether this is a federation of several gateways.
    pub fn is_federated(&self) -> bool {
        self.sites.len() > 1
    }

    /// The gateway that serves `agency` (the first, if none says so).
    pub fn site_of(&self, agency: &AgencyId) -> &Site {
        self.sites
            .iter()
            .find(|s| s.serves.contains(agency))
            .unwrap_or(&self.sites[0])
    }

    /// The gateway whose log has origin `origin` (the first, if none has).
    pub fn site_by_origin(&self, origin: &str) -> &Site {
        self.sites
            .iter()
            .find(|s| s.origin == origin)
            .unwrap_or(&self.sites[0])
    }

    /// Stops the gateways and waits until they have let go of their logs.
    ///
    /// # Errors
    /// [`Error::Serve`] if a gateway failed while serving.
    pub fn stop(mut self) -> Result<(), Error> {
        self.halt()
    }

    fn halt(&mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::Serve("the gateway thread panicked".into())),
        }
    }
}

impl Drop for Federation {
    fn drop(&mut self) {
        // Whatever went wrong, leave nothing running.
        let _ = self.halt();
    }
}

/// Sets the gateways up (and the single gateway's witnesses), reports
/// them ready (or why they are not) on `ready`, and serves until `stop`
/// says so or is dropped; then stops the witnesses once the gateways have
/// stopped submitting to them.
///
/// # Errors
/// A gateway or witness that failed while serving.
async fn serve(
    dir: &Path,
    federated: bool,
    ready: std::sync::mpsc::Sender<Result<Ready, Error>>,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let started = match federated {
        true => gateways::start(dir).await.map(|g| (g, None)),
        false => start_single(dir).await.map(|(g, w)| (vec![g], Some(w))),
    };
    let (gateways, witnesses) = match started {
        Ok(started) => started,
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(());
        }
    };
    match described(&gateways, witnesses.as_ref()) {
        Ok(described) => {
            let _ = ready.send(Ok(described));
        }
        // Nothing served yet: the gateways and witnesses stop with the
        // runtime.
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(());
        }
    }
    let served = futures_util::future::join_all(gateways.into_iter().map(|g| {
        let mut stop = stop.clone();
        g.prepared.run(async move {
            // A dropped sender stops the gateway too.
            let _ = stop.wait_for(|stop| *stop).await;
        })
    }))
    .await;
    let witnessed = match witnesses {
        Some(w) => w.stop().await,
        None => Ok(()),
    };
    served.into_iter().collect::<Result<(), Error>>()?;
    witnessed
}

/// What the story needs to know of the gateways set up: each one's
/// addresses, log and agencies (from the registry they share).
fn described(gateways: &[Started], witnesses: Option<&Witnesses>) -> Result<Ready, Error> {
    let pki = gateways
        .first()
        .map(|g| g.prepared.pki_dir.clone())
        .ok_or_else(|| Error::Serve("no gateway was set up".into()))?;
    let registry = Registry::load(&pki.join(REGISTRY))?;
    let sites = gateways
        .iter()
        .map(|g| {
            let log = &g.prepared.ctx.gateway.log;
            let id = g.prepared.ctx.gateway.local().cloned();
            // In a federation, the key the registry lists (the gateway
            // refused to start on a log with another).
            let verifier = match id.as_ref().and_then(|id| registry.gateway(id)) {
                Some(gateway) => NoteVerifier::parse(&gateway.log_key).map_err(|e| {
                    Error::Serve(format!("the registry's log_key of {}: {e}", gateway.id))
                })?,
                None => log.verifier(),
            };
            Ok(Site {
                serves: registry
                    .agencies()
                    .filter(|a| registry.serves(id.as_ref(), &a.id))
                    .map(|a| a.id.clone())
                    .collect(),
                id,
                url: format!("https://{}", g.prepared.addr),
                public_url: format!("https://{}", g.prepared.public_addr),
                origin: log.origin().to_owned(),
                verifier,
                data_dir: g.data_dir.clone(),
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(Ready {
        sites,
        pki,
        witnesses: witnesses.map(|w| w.listed.clone()).unwrap_or_default(),
    })
}

/// The single gateway: creates the log (for its key), starts the
/// witnesses of it, then prepares the gateway with them; on failure
/// nothing is left serving.
async fn start_single(dir: &Path) -> Result<(Started, Witnesses), Error> {
    // Before anything is created: every file of this process is private.
    xgate_server::data_dir::restrict_umask();
    xgate_server::data_dir::make_private(dir)
        .map_err(|e| Error::Serve(format!("cannot make {} private: {e}", dir.display())))?;
    // The demo's policy, where `xgate serve` looks for one: the gateway
    // takes it instead of writing the default.
    policy::write(dir)?;
    let options = OpenOptions {
        witnessed: true,
        ..OpenOptions::default()
    };
    // Closed at once (its lock released): the gateway opens it again.
    let key = Log::create_or_open(dir, &options)?.verifier();
    let witnesses = Witnesses::start(dir, &key).await?;
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        public_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.to_path_buf(),
        witnesses: witnesses.listed.iter().map(Listed::spec).collect(),
        witness_quorum: witnesses::QUORUM,
        witness_interval_ms: witnesses::INTERVAL_MS,
        ..Config::default()
    };
    match prepare(&config).await {
        Ok(prepared) => Ok((
            Started {
                prepared,
                data_dir: dir.to_path_buf(),
            },
            witnesses,
        )),
        Err(e) => {
            let _ = witnesses.stop().await;
            Err(e)
        }
    }
}
