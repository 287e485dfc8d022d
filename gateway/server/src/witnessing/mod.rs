//! Gathering witnesses' cosignatures for the log's checkpoints (C2SP
//! tlog-witness, from the log's side), and serving a checkpoint once a
//! quorum of them cosigned it.
//!
//! Every `witness_interval_ms` the newest published checkpoint (its tiles,
//! partial ones included, are on disk) goes to every configured witness
//! with a consistency proof from the size that witness last cosigned. A
//! witness that answers 409 names the size it has; the request is made
//! again from there at once. A witness that cannot be reached, or refuses,
//! is asked again after a pause that doubles up to a minute. Each cosignature is checked with the
//! witness's own key from the configuration, never one a witness sends.
//! Once `witness_quorum` witnesses cosigned one checkpoint, it is written,
//! with every cosignature gathered, as the tlog-tiles `checkpoint` file
//! ([`Log::publish_cosigned`]): what anyone reading the log is shown.
//!
//! Receipts do not wait for any of this: they carry the log-signed
//! checkpoint of their commit, and an auditor later proves it consistent
//! with a cosigned one.
//!
//! With `witness_quorum = 0` and witnesses listed, checkpoints are still
//! submitted (each witness keeps the log to one history and keeps evidence
//! of a fork) but the log serves its own checkpoints without waiting.

mod add_checkpoint;
mod witness;

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use xgate_ledger::cosign::CosignerVerifier;
use xgate_ledger::{DiskStore, Log, SignedCheckpoint};

use crate::config::WitnessSpec;
use crate::outbound::Peer;
use crate::pipeline::Gateway;
use witness::{NoCosignature, Witness};

/// How long one witness gets to answer one request.
const DEADLINE: Duration = Duration::from_secs(10);

/// Why the witness configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessConfigError {
    /// A vkey does not parse as a cosigner key.
    #[error("witness {index}: bad vkey: {reason}")]
    Key {
        /// Its position in `[[witnesses]]`, from 1.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A URL is not usable.
    #[error("witness {index}: {reason}")]
    Url {
        /// Its position in `[[witnesses]]`, from 1.
        index: usize,
        /// Why.
        reason: String,
    },
    /// Two witnesses have the same key.
    #[error("witness {0}: the same vkey as an earlier witness")]
    Duplicate(usize),
    /// The quorum asks for more witnesses than are listed.
    #[error("witness_quorum is {quorum} but {listed} witnesses are listed")]
    Quorum {
        /// `witness_quorum`.
        quorum: usize,
        /// How many are listed.
        listed: usize,
    },
}

/// The witnesses, the quorum and the pace: built from the configuration,
/// then run with [`Witnessing::run`].
#[derive(Debug)]
pub struct Witnessing {
    witnesses: Vec<Arc<Witness>>,
    quorum: usize,
    interval: Duration,
}

impl Witnessing {
    /// Checks the configuration: every key parses, no key twice, every URL
    /// is `http://` or `https://` (with `tls`, whose roots decide which
    /// witness servers are believed), and `quorum` at most the witnesses
    /// listed.
    ///
    /// # Errors
    /// [`WitnessConfigError`] naming the witness at fault.
    pub fn new(
        specs: &[WitnessSpec],
        quorum: usize,
        interval: Duration,
        tls: Option<Arc<ClientConfig>>,
    ) -> Result<Witnessing, WitnessConfigError> {
        if quorum > specs.len() {
            return Err(WitnessConfigError::Quorum {
                quorum,
                listed: specs.len(),
            });
        }
        let mut witnesses: Vec<Arc<Witness>> = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let index = i + 1;
            let key = CosignerVerifier::parse(&spec.vkey).map_err(|e| WitnessConfigError::Key {
                index,
                reason: e.to_string(),
            })?;
            if witnesses.iter().any(|w| w.key == key) {
                return Err(WitnessConfigError::Duplicate(index));
            }
            let peer = Peer::new(&spec.url, tls.clone(), DEADLINE).map_err(|e| {
                WitnessConfigError::Url {
                    index,
                    reason: e.to_string(),
                }
            })?;
            witnesses.push(Arc::new(Witness::new(key, peer)));
        }
        Ok(Witnessing {
            witnesses,
            quorum,
            interval: interval.max(Duration::from_millis(10)),
        })
    }

    /// Whether the log serves only checkpoints that reached the quorum.
    pub fn gates(&self) -> bool {
        self.quorum > 0
    }

    /// Whether there is anything to do.
    pub fn is_empty(&self) -> bool {
        self.witnesses.is_empty()
    }

    /// Gathers cosignatures every interval until the task is dropped.
    pub async fn run(self, gateway: Arc<Gateway>) {
        let (log, metrics) = (&gateway.log, &gateway.metrics);
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut served = 0u64;
        loop {
            tick.tick().await;
            let Some(newest) = log.published_checkpoint() else {
                continue;
            };
            if newest.checkpoint.size <= served && served > 0 {
                continue;
            }
            let lines = self.gather(log, &newest, metrics).await;
            if !self.gates() || lines.len() < self.quorum {
                continue;
            }
            let mut note = newest.note.clone();
            for line in &lines {
                note.push_str(line);
            }
            let log = Arc::clone(log);
            match tokio::task::spawn_blocking(move || log.publish_cosigned(&note)).await {
                Ok(Ok(size)) => {
                    served = size;
                    metrics.cosigned(size, lines.len());
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "serving a cosigned checkpoint failed"),
                Err(e) => tracing::warn!(error = %e, "serving a cosigned checkpoint panicked"),
            }
        }
    }

    /// Asks every witness at once; returns the cosignature lines that
    /// verified, one per witness that gave one.
    async fn gather(
        &self,
        log: &Arc<Log<DiskStore>>,
        newest: &SignedCheckpoint,
        metrics: &crate::metrics::Metrics,
    ) -> Vec<String> {
        let mut asks = tokio::task::JoinSet::new();
        for (i, witness) in self.witnesses.iter().enumerate() {
            let (witness, log, newest) = (Arc::clone(witness), Arc::clone(log), newest.clone());
            asks.spawn(async move { (i, witness.cosign(&log, &newest).await) });
        }
        let mut answers = Vec::with_capacity(self.witnesses.len());
        while let Some(joined) = asks.join_next().await {
            // A task that panicked (a bug) is a witness that did not answer.
            if let Ok(answer) = joined {
                answers.push(answer);
            }
        }
        answers.sort_by_key(|(i, _)| *i);
        let mut lines = Vec::new();
        for (i, answer) in answers {
            let witness = &self.witnesses[i];
            match answer {
                Ok(line) => {
                    metrics.witness(witness.key.name(), "cosigned");
                    lines.push(line);
                }
                Err(NoCosignature::Waiting) => {}
                Err(e) => {
                    metrics.witness(witness.key.name(), e.outcome());
                    tracing::warn!(witness = witness.key.name(), error = %e, "no cosignature");
                }
            }
        }
        lines
    }
}
