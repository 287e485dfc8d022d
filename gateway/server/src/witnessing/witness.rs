//! One witness, as the log sees it: its key, the connection to it, and the
//! size it last cosigned.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::Mutex;
use xgate_ledger::cosign::CosignerVerifier;
use xgate_ledger::{Ledger, SignedCheckpoint};

use super::add_checkpoint::{Answer, answer};
use crate::outbound::{OutboundError, Peer};

/// Why a witness gave no cosignature this time.
#[derive(Debug, thiserror::Error)]
pub enum NoCosignature {
    /// The witness could not be reached, or did not answer in time.
    #[error("{0}")]
    Unreachable(#[from] OutboundError),
    /// It refused the checkpoint.
    #[error("refused with {status}: {body}")]
    Refused {
        /// The status.
        status: http::StatusCode,
        /// The start of its body.
        body: String,
    },
    /// It cosigned a larger tree than the log has published: a fork, a
    /// rolled-back log, or another log under this key.
    #[error("it cosigned size {0}, beyond this log's newest checkpoint")]
    Ahead(u64),
    /// It answered 409 twice in a row.
    #[error("it keeps answering 409")]
    Conflicts,
    /// No line of its answer is a valid cosignature by its key.
    #[error("no valid cosignature from its key in its answer")]
    Invalid,
    /// The log could not make the consistency proof.
    #[error("consistency proof: {0}")]
    Proof(String),
    /// It failed recently and is left alone until its back-off ends.
    #[error("waiting after a failure")]
    Waiting,
}

impl NoCosignature {
    /// The outcome label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            NoCosignature::Unreachable(_) => "unreachable",
            NoCosignature::Refused { .. } => "refused",
            NoCosignature::Ahead(_) => "ahead",
            NoCosignature::Conflicts => "conflict",
            NoCosignature::Invalid => "invalid",
            NoCosignature::Proof(_) => "proof_failed",
            NoCosignature::Waiting => "waiting",
        }
    }
}

/// The first pause after a failure; it doubles with each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest pause: a witness that comes back is asked within a minute.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the log knows of one witness.
#[derive(Debug, Default)]
struct Known {
    /// The size it last cosigned (0 until it says otherwise).
    size: u64,
    /// Its cosignature for that size, kept to serve again.
    line: Option<String>,
    /// Failures in a row, and when it may be asked again: a witness that
    /// is down, or refuses (a fork it will keep refusing), is not asked
    /// at every interval.
    failures: u32,
    retry_at: Option<Instant>,
}

/// What the log last heard from a witness: public (the auditor's page
/// shows it), so it holds outcomes, never error text naming hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// The size the witness last cosigned, or says it has (0: none yet).
    pub cosigned_size: u64,
    /// The last answer: `cosigned`, a [`NoCosignature::outcome`], or
    /// `not_asked_yet`.
    pub outcome: &'static str,
    /// Failures in a row.
    pub failures: u32,
    /// When it was last asked, in seconds since the epoch.
    pub last_asked: Option<u64>,
}

/// One configured witness.
#[derive(Debug)]
pub struct Witness {
    /// Its verifier key, from the configuration.
    pub key: CosignerVerifier,
    peer: Peer,
    known: Mutex<Known>,
    /// A copy of what [`Known`] says, readable while a request is in
    /// flight (which holds `known` up to its deadline).
    status: std::sync::Mutex<Status>,
}

impl Witness {
    /// A witness with `key` at `peer`.
    pub fn new(key: CosignerVerifier, peer: Peer) -> Witness {
        Witness {
            key,
            peer,
            known: Mutex::new(Known::default()),
            status: std::sync::Mutex::new(Status {
                cosigned_size: 0,
                outcome: "not_asked_yet",
                failures: 0,
                last_asked: None,
            }),
        }
    }

    /// What the log last heard from it.
    pub fn status(&self) -> Status {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This witness's cosignature line for `newest`: the one it gave
    /// before if it already cosigned that size, else a new one.
    pub async fn cosign(
        &self,
        log: &Arc<dyn Ledger>,
        newest: &SignedCheckpoint,
    ) -> Result<String, NoCosignature> {
        let size = newest.checkpoint.size;
        let mut known = self.known.lock().await;
        if known.size == size
            && let Some(line) = &known.line
        {
            return Ok(line.clone());
        }
        if known.retry_at.is_some_and(|at| Instant::now() < at) {
            return Err(NoCosignature::Waiting);
        }
        let result = self.ask(&mut known, log, newest).await;
        match &result {
            Ok(_) => {
                known.failures = 0;
                known.retry_at = None;
            }
            Err(_) => {
                let pause = FIRST_BACKOFF
                    .saturating_mul(1 << known.failures.min(6))
                    .min(MAX_BACKOFF);
                known.failures = known.failures.saturating_add(1);
                known.retry_at = Some(Instant::now() + pause);
            }
        }
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = Status {
            cosigned_size: known.size,
            outcome: result
                .as_ref()
                .map_or_else(NoCosignature::outcome, |_| "cosigned"),
            failures: known.failures,
            last_asked: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs()),
        };
        result
    }

    /// Submits `newest`, following at most one 409.
    async fn ask(
        &self,
        known: &mut Known,
        log: &Arc<dyn Ledger>,
        newest: &SignedCheckpoint,
    ) -> Result<String, NoCosignature> {
        let size = newest.checkpoint.size;
        // At most one 409 is followed: the second request starts from the
        // size the witness named.
        for _ in 0..2 {
            let old = known.size;
            if old > size {
                return Err(NoCosignature::Ahead(old));
            }
            let proof = proof(log, old, size).await?;
            let request = xgate_ledger::witness::format_body(old, &proof, &newest.note);
            let response = self
                .peer
                .post(
                    "/add-checkpoint",
                    "text/plain; charset=utf-8",
                    Bytes::from(request),
                )
                .await?;
            match answer(&response) {
                Answer::Cosigned(lines) => {
                    let body = newest.checkpoint.body();
                    let line = lines
                        .into_iter()
                        .find(|l| self.key.verify_line(&body, l).is_ok())
                        .ok_or(NoCosignature::Invalid)?;
                    known.size = size;
                    known.line = Some(line.clone());
                    return Ok(line);
                }
                Answer::Conflict(theirs) => {
                    known.size = theirs;
                    known.line = None;
                }
                Answer::Refused(status, body) => {
                    return Err(NoCosignature::Refused { status, body });
                }
            }
        }
        Err(NoCosignature::Conflicts)
    }
}

/// The consistency proof from `old` to `new`: empty from 0 or to the same
/// size, as the spec wants.
async fn proof(
    log: &Arc<dyn Ledger>,
    old: u64,
    new: u64,
) -> Result<Vec<xgate_ledger::Hash>, NoCosignature> {
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let log = Arc::clone(log);
    tokio::task::spawn_blocking(move || log.consistency(old, new))
        .await
        .map_err(|e| NoCosignature::Proof(e.to_string()))?
        .map(|p| p.hashes)
        .map_err(|e| NoCosignature::Proof(e.to_string()))
}
