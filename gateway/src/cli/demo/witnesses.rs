//! The agencies' witnesses: each of state, treasury, gsa and hhs runs a
//! C2SP tlog-witness of the gateway's log, created in the demo's
//! directory (`DIR/witnesses/AGENCY`, as `xgate witness init` makes one)
//! and served as `xgate witness serve` serves it, over plain HTTP on a free
//! loopback port, on the gateway thread's runtime.
//!
//! The gateway publishes a checkpoint once [`QUORUM`] of the four
//! cosigned it. Three of four is a majority: two quorums always share at
//! least two witnesses, so showing one history to some and another to
//! others needs two agencies' witnesses to cosign both, and one witness
//! down (or slow) never stops the log from publishing.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use xgate_ledger::NoteVerifier;
use xgate_ledger::cosign::CosignatureAlg;
use xgate_ledger::witness::{self, Witness};
use xgate_server::config::WitnessSpec;

use crate::cli::error::Error;

/// The agencies that run a witness, and each one's cosignature type:
/// Ed25519 for most, ML-DSA-44 (post-quantum, which tlog-witness
/// recommends for new deployments) for hhs, to show both.
const AGENCIES: [(&str, CosignatureAlg); 4] = [
    ("state", CosignatureAlg::Ed25519),
    ("treasury", CosignatureAlg::Ed25519),
    ("gsa", CosignatureAlg::Ed25519),
    ("hhs", CosignatureAlg::MlDsa44),
];

/// Cosignatures a checkpoint needs before the gateway serves it: a
/// majority of the four (see the module's documentation).
pub(super) const QUORUM: usize = 3;

/// How often the gateway submits its newest checkpoint: short, so the
/// demo's last envelope is cosigned within a fraction of a second.
pub(super) const INTERVAL_MS: u64 = 100;

/// Where the witnesses live in the demo's directory.
const DIR: &str = "witnesses";

/// One agency's witness, as the gateway and the auditor know it.
#[derive(Clone, Debug)]
pub(super) struct Listed {
    /// The agency that runs it.
    pub agency: &'static str,
    /// Its cosignature type.
    pub alg: CosignatureAlg,
    /// Its verifier key (signed-note vkey), which also names it.
    pub vkey: String,
    /// Its submission prefix, `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Listed {
    /// Its `[[witnesses]]` table in the gateway's configuration.
    pub fn spec(&self) -> WitnessSpec {
        WitnessSpec {
            url: self.url.clone(),
            vkey: self.vkey.clone(),
        }
    }
}

/// The witnesses, serving until [`Witnesses::stop`].
pub(super) struct Witnesses {
    /// Each agency's witness, in [`AGENCIES`] order.
    pub listed: Vec<Listed>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
}

impl Witnesses {
    /// Creates each agency's witness of the log whose key is `log` in
    /// `dir`/witnesses and starts serving them; call within a runtime.
    ///
    /// # Errors
    /// A witness that cannot be created or opened, or a port that cannot
    /// be bound.
    pub async fn start(dir: &Path, log: &NoteVerifier) -> Result<Witnesses, Error> {
        let (stop, stopped) = watch::channel(false);
        let mut witnesses = Witnesses {
            listed: Vec::with_capacity(AGENCIES.len()),
            stop,
            tasks: Vec::with_capacity(AGENCIES.len()),
        };
        for (agency, alg) in AGENCIES {
            let home = dir.join(DIR).join(agency);
            let cosigner = witness::init(&home, &format!("witness.{agency}.example"), alg)?;
            let witness = Arc::new(Witness::open(&home, std::slice::from_ref(log))?);
            let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .map_err(|e| Error::Serve(format!("cannot listen for {agency}'s witness: {e}")))?;
            let addr = listener.local_addr().map_err(|e| {
                Error::Serve(format!("cannot read {agency}'s witness's address: {e}"))
            })?;
            let mut stopped = stopped.clone();
            witnesses.tasks.push(tokio::spawn(crate::witness::serve(
                listener,
                witness,
                None,
                async move {
                    // A dropped sender stops the witness too.
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
            )));
            witnesses.listed.push(Listed {
                agency,
                alg,
                vkey: cosigner.verifier().to_string(),
                url: format!("http://{addr}"),
            });
        }
        Ok(witnesses)
    }

    /// Stops every witness after the requests in flight and waits for
    /// them; each lets go of its directory.
    ///
    /// # Errors
    /// [`Error::Serve`] if a witness's listener failed.
    pub async fn stop(self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        let mut failed = None;
        for task in self.tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed = Some(format!("a witness's listener failed: {e}")),
                Err(e) => failed = Some(format!("a witness stopped: {e}")),
            }
        }
        failed.map_or(Ok(()), |e| Err(Error::Serve(e)))
    }
}
