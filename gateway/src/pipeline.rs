//! The one place that knows the order of the stages an envelope goes
//! through: identity (from TLS) -> envelope -> kind -> policy -> replay ->
//! ledger append with its inbox and replay records -> receipt.
//!
//! Everything before the append only reads; the committer then checks the
//! `jti` in log order and writes the log entry, the recipient's inbox
//! record and the sender's `jti` in one atomic batch, and the append
//! returns once that batch is durable and covered by a signed checkpoint.
//! So a refused envelope leaves no trace anywhere, and an acknowledged one
//! is logged, deliverable and unreplayable, whatever crashes when.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use xgate_ledger::{Log, SledStore, WriteBatch};

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
pub const SUPPORTED_KINDS: [Kind; 1] = [Kind::RecordSend];

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
}

impl Gateway {
    /// Assembles the gateway over an open log, which it sets to sign a
    /// checkpoint with every commit (receipts need one covering them), and
    /// starts the thread that writes to it.
    ///
    /// # Errors
    /// A message naming an agency whose signing key is unusable.
    pub fn new(
        log: Arc<Log<SledStore>>,
        registry: Arc<Registry>,
        policy: Policy,
        limits: Limits,
    ) -> Result<Gateway, String> {
        log.set_checkpoint_every_commit(true);
        let verifiers = Verifiers::from_registry(&registry)?;
        let metrics = Metrics::new(log.size());
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
        })
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
    pub async fn submit(&self, sender: &AgencyId, jws: &[u8]) -> Result<Receipt, ApiError> {
        let mut kind = None;
        let result = self.run(sender, jws, &mut kind).await;
        let kind = kind.map_or("unknown", Kind::as_str);
        match &result {
            Ok(receipt) => {
                self.metrics.envelope(kind, "accepted");
                tracing::info!(agency = %sender, kind, log_index = receipt.log_index, "envelope accepted");
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
    ) -> Result<Receipt, ApiError> {
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
        if !SUPPORTED_KINDS.contains(&envelope.kind) {
            return Err(ApiError::new(
                Code::UnsupportedKind,
                format!("kind {} is not handled by this gateway yet", envelope.kind),
            ));
        }
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
        self.append(&envelope, &policy.hash_hex(), decision, now)
            .await
    }

    /// Appends the envelope's entry with its inbox and replay records, and
    /// builds the receipt against the commit's checkpoint. Whether the
    /// `jti` was used before is decided by the committer, in log order.
    async fn append(
        &self,
        envelope: &Envelope,
        policy: &str,
        decision: &str,
        now: i64,
    ) -> Result<Receipt, ApiError> {
        let entry = Entry::of(envelope, policy, decision, now).encode();
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
            inbox::put(&stored, index, &mut batch);
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
