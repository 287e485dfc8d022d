//! The one place that knows the order of the stages an envelope goes
//! through: identity (from TLS) -> envelope -> kind and body -> policy ->
//! replay -> apply -> ledger append with its inbox, replay and state
//! records -> receipt.
//!
//! Everything before the append only reads; the committer then, in log
//! order, checks the `jti`, applies an asset envelope to the asset state
//! (the custody rules and reconciliation, [`crate::assets`]) and writes the
//! log entry, the recipient's inbox record, the sender's `jti` and the state
//! changes in one atomic batch; the append returns once that batch is
//! durable and covered by a signed checkpoint. So a refused envelope leaves
//! no trace anywhere, and an acknowledged one is logged, deliverable,
//! unreplayable and applied, whatever crashes when.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;
use xgate_ledger::{Log, SledStore, WriteBatch};

use crate::assets::apply::{self, Op};
use crate::assets::custody::{self, DEFAULT_OFFER_TTL};
use crate::assets::state as asset_state;
use crate::committer::{Committer, Prepare};

use crate::entry::Entry;
use crate::envelope::{self, Envelope, Limits, Verifiers};
use crate::errors::{ApiError, Code};
use crate::inbox;
use crate::kind::Kind;
use crate::metrics::Metrics;
use crate::policy::{Decision, Policy, Request};
use crate::receipt::Receipt;
use crate::registry::{AgencyId, Registry};
use crate::replay;

/// Kinds this gateway handles end to end; the others are refused with
/// `unsupported_kind` until their issues land.
pub const SUPPORTED_KINDS: [Kind; 6] = [
    Kind::RecordSend,
    Kind::AssetRegister,
    Kind::AssetTransferOffer,
    Kind::AssetTransferAccept,
    Kind::AssetTransferReject,
    Kind::InventoryReport,
];

/// What `POST /v1/envelopes` answers for an accepted envelope: the receipt,
/// and for an inventory report the id of its reconciliation report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// The receipt.
    #[serde(flatten)]
    pub receipt: Receipt,
    /// `GET /v1/reconciliations/{id}` returns the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciliation_id: Option<String>,
}

/// The gateway's state shared by every connection.
pub struct Gateway {
    /// The transparency log, which also holds inboxes and replay ids.
    pub log: Arc<Log<SledStore>>,
    /// The federation's agencies.
    pub registry: Arc<Registry>,
    verifiers: Verifiers,
    committer: Committer,
    policy: RwLock<Arc<Policy>>,
    /// Envelope time limits.
    pub limits: Limits,
    /// Counters and histograms for `/metrics`.
    pub metrics: Metrics,
    /// How long a transfer offer stays open, in seconds.
    offer_ttl: i64,
    /// Salt of the person hashes in log entries.
    salt: [u8; 32],
}

impl Gateway {
    /// Assembles the gateway over an open log, which it sets to sign a
    /// checkpoint with every commit (receipts need one covering them), and
    /// starts the thread that writes to it.
    ///
    /// # Errors
    /// A message naming an agency whose signing key is unusable, or a store
    /// that cannot keep the person-hash salt.
    pub fn new(
        log: Arc<Log<SledStore>>,
        registry: Arc<Registry>,
        policy: Policy,
        limits: Limits,
    ) -> Result<Gateway, String> {
        log.set_checkpoint_every_commit(true);
        let verifiers = Verifiers::from_registry(&registry)?;
        let metrics = Metrics::new(log.size());
        let salt = asset_state::salt(log.store())
            .map_err(|e| format!("cannot keep the person-hash salt: {e}"))?;
        let committer = Committer::start(Arc::clone(&log))
            .map_err(|e| format!("cannot start the commit thread: {e}"))?;
        Ok(Gateway {
            log,
            registry,
            verifiers,
            committer,
            policy: RwLock::new(Arc::new(policy)),
            limits,
            metrics,
            offer_ttl: DEFAULT_OFFER_TTL,
            salt,
        })
    }

    /// The same gateway with transfer offers open for `seconds`.
    #[must_use]
    pub fn with_offer_ttl(mut self, seconds: i64) -> Gateway {
        self.offer_ttl = seconds;
        self
    }

    /// The log's size after each durable commit.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.committer.commits()
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        match self.policy.read() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts `policy` in force for every later envelope.
    pub fn set_policy(&self, policy: Policy) {
        let policy = Arc::new(policy);
        match self.policy.write() {
            Ok(mut p) => *p = policy,
            Err(poisoned) => *poisoned.into_inner() = policy,
        }
    }

    /// Runs one submitted envelope through every stage and returns its
    /// receipt once the append is durable. The checks before the append are
    /// CPU work (one signature verification) and a cached store read.
    ///
    /// # Errors
    /// The first stage's refusal, as an [`ApiError`].
    pub async fn submit(&self, sender: &AgencyId, jws: &[u8]) -> Result<Accepted, ApiError> {
        let mut kind = None;
        let result = self.run(sender, jws, &mut kind).await;
        let kind = kind.map_or("unknown", Kind::as_str);
        match &result {
            Ok(accepted) => {
                self.metrics.envelope(kind, "accepted");
                tracing::info!(agency = %sender, kind, log_index = accepted.receipt.log_index, "envelope accepted");
            }
            Err(e) => {
                self.metrics.envelope(kind, e.code.as_str());
                tracing::info!(agency = %sender, kind, code = e.code.as_str(), "envelope refused");
            }
        }
        result
    }

    async fn run(
        &self,
        sender: &AgencyId,
        jws: &[u8],
        kind: &mut Option<Kind>,
    ) -> Result<Accepted, ApiError> {
        let now = unix_now();
        let envelope = envelope::open(
            jws,
            sender,
            &self.verifiers,
            &self.registry,
            self.limits,
            now,
        )?;
        *kind = Some(envelope.kind);
        let op = self.body(&envelope)?;
        let policy = self.policy();
        let no_attributes = Default::default();
        let decision = policy.evaluate(&Request {
            sender: &envelope.iss,
            recipient: &envelope.aud,
            kind: envelope.kind,
            purpose: None,
            attributes: &no_attributes,
        });
        let decision = match decision {
            Decision::Allow { .. } => "allow",
            Decision::Deny { reason } => return Err(ApiError::new(Code::PolicyDenied, reason)),
            // Only medical requests are break-the-glass, and they are not
            // handled yet; never let one through as a plain allow.
            Decision::BreakGlass { .. } => {
                return Err(ApiError::new(
                    Code::PolicyDenied,
                    "break-the-glass access is not available for this kind",
                ));
            }
        };
        let report = matches!(op, Some(Op::Report(_)));
        let receipt = self
            .append(&envelope, op, &policy.hash_hex(), decision, now)
            .await?;
        Ok(Accepted {
            reconciliation_id: report.then(|| receipt.log_index.to_string()),
            receipt,
        })
    }

    /// The kind's own checks of the envelope: its body, parsed (an asset
    /// kind) or carried as is (`record.send`), and who it may be addressed to.
    fn body(&self, envelope: &Envelope) -> Result<Option<Op>, ApiError> {
        if !SUPPORTED_KINDS.contains(&envelope.kind) {
            return Err(ApiError::new(
                Code::UnsupportedKind,
                format!("kind {} is not handled by this gateway yet", envelope.kind),
            ));
        }
        if envelope.kind == Kind::RecordSend {
            if envelope.aud == envelope.iss {
                return Err(ApiError::new(
                    Code::WrongAudience,
                    "aud is the sender itself; a record is sent to another agency",
                ));
            }
            return Ok(None);
        }
        Op::parse(envelope.kind, &envelope.body).map_err(|m| {
            ApiError::new(
                Code::Malformed,
                format!("the body of {} is not valid: {m}", envelope.kind),
            )
        })
    }

    /// Appends the envelope's entry with its inbox, replay and state
    /// records, and builds the receipt against the commit's checkpoint.
    /// Whether the `jti` was used before and whether the custody rules
    /// allow an asset envelope are decided by the committer, in log order.
    async fn append(
        &self,
        envelope: &Envelope,
        op: Option<Op>,
        policy: &str,
        decision: &str,
        now: i64,
    ) -> Result<Receipt, ApiError> {
        let expires = matches!(op, Some(Op::Offer(_))).then(|| now.saturating_add(self.offer_ttl));
        let person = op
            .as_ref()
            .and_then(Op::person)
            .map(|p| asset_state::person_hash(&self.salt, p));
        let entry = Entry::of(envelope, policy, decision, now)
            .about(op.as_ref().and_then(Op::tag), person, expires)
            .encode();
        let keep_until = u64::try_from(envelope.exp.saturating_add(self.limits.skew)).unwrap_or(0);
        let stored = envelope.clone();
        let started = std::time::Instant::now();
        let prepare: Prepare = Box::new(move |view, index| {
            let used =
                replay::seen(view, &stored.iss, &stored.jti).map_err(xgate_ledger::Error::from)?;
            if used {
                return Err(ApiError::new(
                    Code::Replayed,
                    format!("{} already sent an envelope with this jti", stored.iss),
                ));
            }
            let mut batch = WriteBatch::new();
            if let Some(op) = &op {
                let id = stored.id();
                let ctx = custody::Context {
                    sender: &stored.iss,
                    recipient: &stored.aud,
                    jti: &stored.jti,
                    envelope: &id,
                    time: now,
                    log_index: index,
                };
                apply::apply(op, &ctx, expires, view, &mut batch)?;
                // Kept for `xgate audit replay`, which recomputes the state.
                batch.put(
                    asset_state::envelope_key(index),
                    stored.compact.as_bytes().to_vec(),
                );
            }
            // Addressed to the sender itself (a registration, a count):
            // nothing to deliver.
            if stored.aud != stored.iss {
                inbox::put(&stored, index, &mut batch);
            }
            replay::put(&stored.iss, &stored.jti, keep_until, &mut batch);
            Ok(batch)
        });
        let appended = self.committer.append(entry, prepare).await;
        if matches!(&appended, Err(e) if e.code == Code::Replayed) {
            self.metrics.replay_attempt();
        }
        let (index, checkpoint) = appended?;
        self.metrics.appended(started.elapsed(), self.log.size());
        Ok(Receipt::build(
            &self.log,
            envelope.id(),
            index,
            &checkpoint,
        )?)
    }

    /// Drops replay ids past their keep-until time.
    ///
    /// # Errors
    /// A storage failure.
    pub fn purge_replay(&self) -> Result<usize, xgate_ledger::StoreError> {
        replay::purge(self.log.store(), u64::try_from(unix_now()).unwrap_or(0))
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
