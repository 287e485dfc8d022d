//! The demo's gateway: set up exactly as `xgate serve` sets one up
//! ([`crate::cli::serve::prepare`]), on a free loopback port, served on a
//! thread and runtime of its own so the story's clients never share its
//! workers, and stopped by a signal the demo sends instead of SIGTERM.
//!
//! The agencies' witnesses ([`super::witnesses`]) run on the same runtime.
//! A witness must know the log's key, and the gateway must know the
//! witnesses' addresses before it starts, so the log is created first
//! (and closed), then the witnesses start, then the gateway, configured
//! with them and their quorum.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use tokio::sync::oneshot;
use xgate_ledger::{Log, NoteVerifier, OpenOptions};

use super::witnesses::{self, Listed, Witnesses};
use crate::cli::error::Error;
use crate::cli::serve::{Prepared, prepare};
use xgate_server::config::Config;
use xgate_server::pki::CA_CERT;

/// A running gateway over a development PKI in one directory.
pub(super) struct Federation {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The public tlog-tiles listener, `https://127.0.0.1:PORT`.
    pub public_url: String,
    /// The PKI directory, with every agency's keys.
    pub pki: PathBuf,
    /// The federation's CA certificate, which the listeners' certificates
    /// chain to.
    pub ca: PathBuf,
    /// The agencies' witnesses the gateway submits its checkpoints to.
    pub witnesses: Vec<Listed>,
    /// How many of them must cosign a checkpoint before it is served.
    pub quorum: usize,
    /// The log's origin line.
    pub origin: String,
    /// The log's public key, as `xgate log key` prints it.
    pub verifier: NoteVerifier,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), Error>>>,
}

/// What the gateway thread reports once it listens.
struct Ready {
    addr: SocketAddr,
    public_addr: SocketAddr,
    pki: PathBuf,
    origin: String,
    verifier: NoteVerifier,
    witnesses: Vec<Listed>,
}

impl Federation {
    /// Creates the PKI, policy and log in `dir` and starts serving.
    ///
    /// # Errors
    /// Anything that stops the gateway from starting.
    pub fn start(dir: &Path) -> Result<Federation, Error> {
        let dir = dir.to_path_buf();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Ready, Error>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
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
                runtime.block_on(async move {
                    let (prepared, witnesses) = match start_all(&dir).await {
                        Ok(started) => started,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return Ok(());
                        }
                    };
                    let log = &prepared.ctx.gateway.log;
                    let ready = Ready {
                        addr: prepared.addr,
                        public_addr: prepared.public_addr,
                        pki: prepared.pki_dir.clone(),
                        origin: log.origin().to_owned(),
                        verifier: log.verifier(),
                        witnesses: witnesses.listed.clone(),
                    };
                    let _ = ready_tx.send(Ok(ready));
                    let served = prepared
                        .run(async move {
                            // A dropped sender stops the gateway too.
                            let _ = stop_rx.await;
                        })
                        .await;
                    // The gateway has stopped submitting: the witnesses
                    // may go.
                    let witnessed = witnesses.stop().await;
                    served.and(witnessed)
                })
                // The runtime drops here with every task on it, and with
                // them the last handles on the log: it is closed on return.
            })
            .map_err(|e| Error::Serve(format!("cannot start the gateway thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(ready)) => Ok(Federation {
                url: format!("https://{}", ready.addr),
                public_url: format!("https://{}", ready.public_addr),
                ca: ready.pki.join(CA_CERT),
                pki: ready.pki,
                origin: ready.origin,
                verifier: ready.verifier,
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

    /// Stops the gateway and waits until it has let go of the log.
    ///
    /// # Errors
    /// [`Error::Serve`] if the gateway failed while serving.
    pub fn stop(mut self) -> Result<(), Error> {
        self.halt()
    }

    fn halt(&mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
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

/// Creates the log (for its key), starts the witnesses of it, then
/// prepares the gateway with them; on failure nothing is left serving.
async fn start_all(dir: &Path) -> Result<(Prepared, Witnesses), Error> {
    // Before anything is created: every file of this process is private.
    xgate_server::data_dir::restrict_umask();
    xgate_server::data_dir::make_private(dir)
        .map_err(|e| Error::Serve(format!("cannot make {} private: {e}", dir.display())))?;
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
        Ok(prepared) => Ok((prepared, witnesses)),
        Err(e) => {
            let _ = witnesses.stop().await;
            Err(e)
        }
    }
}
