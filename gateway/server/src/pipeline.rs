//! The one place that knows the order of the stages an envelope goes
//! through: identity (from TLS) -> envelope ([`crate::envelope`]) -> kind
//! (the body parsed for its kind, [`Op::parse`]) -> policy
//! ([`crate::policy`]) -> commit (in log order: the `jti`, then
//! [`apply::apply`], then the ledger append with the inbox, replay and
//! state records, `committer`) -> receipt ([`crate::receipt`]).
//!
//! Everything before the commit only reads; the committer then, in log
//! order, checks the `jti`, applies the envelope to the state (the custody
//! rules and reconciliation of an asset kind, the grants, responses and
//! reviews of a medical one) and writes the log entry, the recipient's
//! inbox record, the sender's `jti` and the state changes in one atomic
//! batch; the append returns once that batch is durable and covered by a
//! signed checkpoint. So a refused envelope leaves no trace anywhere, and
//! an acknowledged one is logged, deliverable, unreplayable and applied,
//! whatever crashes when. Each stage refuses with its own error; the
//! pipeline's is [`Refused`], which `http` maps to a status and a code.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;
use xgate_ledger::{Checkpoint, Ledger, NoteVerifier, StoreError, WriteBatch};

use crate::acts::deadlines::{self, Tick};
use crate::acts::{self, Act, Cause, Scope, Setting};
use crate::apply::facts::Terms;
use crate::apply::reads::{Recording, Snapshot};
use crate::apply::state::EncodeError;
use crate::apply::state::StateError;
use crate::apply::state::Stored;
use crate::apply::{self, ApplyError, BodyError, Facts, Op, Survey, asset, medical};
use crate::assets::custody::DEFAULT_OFFER_TTL;
use crate::assets::dossier::Dossier;
use crate::assets::state as asset_state;
use crate::committer::{Ahead, BatchView, Committer, Prepare, Records};
use crate::entry::{EncodeEntryError, Entry, Logged, Stamp, person_hash};
use crate::envelope::{self, Envelope, Limits, Rejection, Signed, Verified, Verifiers};
use crate::forward::order::{Chain, Turn, Turns};
use crate::forward::outbox::{self, OutboxError};
use crate::forward::received;
use crate::forward::status::Peers;
use crate::forward::wire::ForwardItem;
use crate::inbox::{self, EncodeRecordError};
use crate::kind::Kind;
use crate::medical::model::Purpose;
use crate::medical::pending::PendingReviews;
use crate::policy::{Decision, Policy, Request};
use crate::rate::{Limiter, retry_after_secs};
use crate::receipt::Receipt;
use crate::registry::{AgencyId, GatewayId, Registry};
use crate::replay::Replay;
use crate::sealed;
use crate::signatures::{self, BatchConfig, BatchVerifier, CheckError};
use crate::space::DiskGuard;
use crate::store_keys::Prefix;

// What the pipeline's public items carry from the machinery it keeps to
// itself (the committer, the rate limiter, the free-space guard, the
// metrics), so that embedders can name it.
pub use crate::committer::{AheadCounts, CommitError};
pub use crate::metrics::Metrics;
pub use crate::rate::RateLimited;
pub use crate::space::DiskFull;

/// Default lifetime of a grant a holder approves without saying (hours).
pub const DEFAULT_APPROVAL_HOURS: u32 = 24;

/// The gateway's medical time limits, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Medical {
    /// The longest any grant lasts, whatever the policy or an approval says.
    pub max_grant: i64,
    /// How long after a break-the-glass grant its review falls due.
    pub review_due: i64,
}

impl Default for Medical {
    fn default() -> Medical {
        Medical {
            max_grant: 720 * 3600,
            review_due: 72 * 3600,
        }
    }
}

/// What `POST /v1/envelopes` answers for an accepted envelope: the receipt,
/// and for an inventory report the id of its reconciliation report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// The envelope's kind (for metrics and the gateway's log; not part
    /// of the answer).
    #[serde(skip)]
    pub kind: Kind,
    /// The receipt.
    #[serde(flatten)]
    pub receipt: Receipt,
    /// `GET /v1/reconciliations/{id}` returns the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciliation_id: Option<String>,
}

/// A refused envelope: why, and its kind if it got as far as naming one
/// (metrics count refusals by kind). `http` maps the reason to a status
/// and an error code.
#[derive(Debug)]
pub struct Refused {
    /// The envelope's kind, once the envelope stage has read it.
    pub kind: Option<Kind>,
    /// The stage that refused it, and why.
    pub reason: Reason,
}

// As its reason: the kind is for metrics, not for the message.
impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.reason.fmt(f)
    }
}

impl std::error::Error for Refused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.reason)
    }
}

/// Why an envelope was refused, stage by stage.
#[derive(Debug, thiserror::Error)]
pub enum Reason {
    /// The envelope stage: its JWS, header or claims.
    #[error(transparent)]
    Envelope(#[from] Rejection),
    /// The kind stage: the body is not valid for its kind.
    #[error("the body of {kind} is not valid: {why}")]
    Malformed {
        /// The kind.
        kind: Kind,
        /// What is wrong, naming the field at fault.
        why: String,
    },
    /// A record addressed to its own sender.
    #[error("aud is the sender itself; a record is sent to another agency")]
    RecordToSelf,
    /// A kind the gateway does not apply.
    #[error("kind {0} is not handled by this gateway")]
    UnsupportedKind(Kind),
    /// In clear, to a recipient the policy says takes it sealed only.
    #[error(
        "{recipient} takes {kind} only sealed end to end (policy: [encryption] required_for): \
         seal the body to its registered encryption key"
    )]
    EncryptionRequired {
        /// The recipient.
        recipient: AgencyId,
        /// The kind.
        kind: Kind,
    },
    /// A forward from a gateway that does not serve the sender, or for a
    /// recipient this gateway does not serve.
    #[error("{0}")]
    WrongGateway(String),
    /// A forward whose receipt from the forwarding gateway does not prove
    /// that gateway logged this envelope.
    #[error("the forwarding gateway's receipt: {0}")]
    ForwardReceipt(String),
    /// A forwarded offer's asset dossier is missing or does not check out.
    #[error("{0}")]
    Dossier(String),
    /// The policy does not allow it; the policy's reason.
    #[error("{0}")]
    PolicyDenied(String),
    /// The policy would break the glass for a kind that cannot.
    #[error("break-the-glass access is not available for this kind")]
    BreakGlassUnavailable,
    /// The commit stage: declined in log order, or not made durable.
    #[error(transparent)]
    Commit(#[from] CommitError<Declined>),
    /// The log entry could not be encoded (a bug).
    #[error(transparent)]
    Entry(#[from] EncodeEntryError),
    /// The receipt could not be built (its proof could not be read).
    #[error("cannot build the receipt: {0}")]
    Receipt(#[source] xgate_ledger::Error),
}

/// Why the commit step declined an envelope when its turn came, in log
/// order.
#[derive(Debug, thiserror::Error)]
pub enum Declined {
    /// It expired while it waited in the commit queue.
    #[error(
        "the envelope expired while it waited to be committed, {ago} s ago \
         (clock skew allowed: {skew} s)"
    )]
    Expired {
        /// Seconds past its expiry, clock skew included.
        ago: i64,
        /// The clock skew allowed.
        skew: i64,
    },
    /// Its sender used its `jti` before.
    #[error("{0} already sent an envelope with this jti")]
    Replayed(AgencyId),
    /// The rules refuse it, or the state cannot be read or written.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Its inbox record could not be encoded (a bug).
    #[error(transparent)]
    Inbox(#[from] EncodeRecordError),
    /// Its outbox record could not be encoded (a bug).
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// A `clock.tick` found no deadline due when its turn came (another
    /// tick fired them): not logged.
    #[error("no deadline is due")]
    NothingDue,
    /// Forwarded here before, logged at this index: not a refusal, the
    /// answer is the first copy's receipt.
    #[error("this envelope was forwarded here before, as entry {0}")]
    Delivered(u64),
    /// Forwarded: an envelope before it in its forward request was not
    /// logged, so neither is this one (its order would change); it is
    /// sent again after that one.
    #[error("an earlier envelope of this forward was not logged; send this one again after it")]
    NotNow,
    /// The state the check reads could not be read.
    #[error("cannot read the gateway's state: {0}")]
    State(#[from] StoreError),
}

impl Declined {
    /// Whether the envelope may be taken later (a storage failure, or the
    /// order of a forward), rather than refused for good.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Declined::NotNow
                | Declined::State(_)
                | Declined::Apply(
                    ApplyError::Asset(asset::AssetError::Store(_))
                        | ApplyError::Medical(medical::MedicalError::Store(_))
                )
        )
    }
}

/// Why the gateway could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An agency's signing key in the registry is unusable.
    #[error("{0}")]
    SigningKey(String),
    /// The person-hash salt could not be read or created.
    #[error("cannot keep the person-hash salt: {0}")]
    Salt(#[source] xgate_ledger::Error),
    /// The replay ids could not be read.
    #[error("cannot read the replay ids: {0}")]
    ReplayIds(#[source] StoreError),
    /// The review queue could not be read.
    #[error("cannot read the review queue: {0}")]
    ReviewQueue(#[source] StoreError),
    /// The commit thread could not be started.
    #[error("cannot start the commit thread: {0}")]
    CommitThread(#[source] std::io::Error),
    /// The signature checking threads could not be started.
    #[error("cannot start the signature checking threads: {0}")]
    VerifyThreads(#[source] std::io::Error),
}

impl Refused {
    fn new(kind: Option<Kind>, reason: impl Into<Reason>) -> Refused {
        Refused {
            kind,
            reason: reason.into(),
        }
    }
}

/// The gateway's state shared by every connection.
pub struct Gateway {
    /// The transparency log, which also holds inboxes and replay ids.
    pub log: Arc<dyn Ledger>,
    /// The federation's agencies.
    pub registry: Arc<Registry>,
    verifiers: Verifiers,
    /// Checks submitted envelopes' EdDSA signatures in batches; `None`
    /// when no agency signs with EdDSA.
    batches: Option<BatchVerifier>,
    committer: Committer<Declined>,
    /// The senders' ids still in their replay window.
    replay: Arc<Replay>,
    /// The review queue's counts, for `/metrics`.
    reviews: Arc<PendingReviews>,
    /// How long a request may wait for its commit, in seconds: replay ids
    /// are kept this much longer than the envelope could be accepted.
    request_timeout: i64,
    policy: RwLock<Arc<Policy>>,
    /// Envelope time limits.
    pub limits: Limits,
    /// Counters and histograms for `/metrics`.
    pub metrics: Metrics,
    /// How long a transfer offer stays open, in seconds.
    offer_ttl: i64,
    /// Salt of the person hashes in log entries.
    salt: [u8; 32],
    /// Grant and review time limits.
    medical: Medical,
    /// Refuses commits while the disk is nearly full.
    disk: Arc<DiskGuard>,
    /// Each agency's request rate bucket.
    limiter: Limiter,
    /// This gateway's id in a federation (`None`: the only gateway).
    local: Option<GatewayId>,
    /// How forwarding to each peer gateway is going.
    forward_peers: Peers,
}

impl Gateway {
    /// Assembles the gateway over an open log, which it sets to sign a
    /// checkpoint with every commit (receipts need one covering them), and
    /// starts the thread that writes to it.
    ///
    /// # Errors
    /// An agency whose signing key is unusable, a store that cannot keep
    /// the person-hash salt or be read, or no commit thread.
    pub fn new(
        log: Arc<dyn Ledger>,
        registry: Arc<Registry>,
        policy: Policy,
        limits: Limits,
    ) -> Result<Gateway, StartError> {
        log.set_checkpoint_every_commit(true);
        let verifiers = Verifiers::from_registry(&registry)
            .map_err(|e| StartError::SigningKey(e.to_string()))?;
        let metrics = Metrics::new(log.size());
        let batches = verifiers
            .any_ed25519()
            .then(|| BatchVerifier::start(BatchConfig::default(), metrics.signatures().clone()))
            .transpose()
            .map_err(StartError::VerifyThreads)?;
        let salt = crate::entry::salt(&*log).map_err(StartError::Salt)?;
        let disk = Arc::new(DiskGuard::default());
        let replay = Arc::new(Replay::load(&*log).map_err(StartError::ReplayIds)?);
        let reviews = Arc::new(PendingReviews::load(log.store()).map_err(StartError::ReviewQueue)?);
        let committer = Committer::start(
            Arc::clone(&log),
            Arc::clone(&disk),
            Arc::clone(&replay),
            Arc::clone(&reviews),
        )
        .map_err(StartError::CommitThread)?;
        Ok(Gateway {
            log,
            registry,
            verifiers,
            batches,
            committer,
            replay,
            reviews,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            policy: RwLock::new(Arc::new(policy)),
            limits,
            metrics,
            offer_ttl: DEFAULT_OFFER_TTL,
            salt,
            medical: Medical::default(),
            disk,
            limiter: Limiter::default(),
            local: None,
            forward_peers: Peers::default(),
        })
    }

    /// The same gateway as gateway `id` of a federation: it serves the
    /// agencies the registry says it serves, and forwards to the others.
    #[must_use]
    pub fn with_local(mut self, id: Option<GatewayId>) -> Gateway {
        self.local = id;
        self
    }

    /// This gateway's id in a federation; `None` for the only gateway.
    pub fn local(&self) -> Option<&GatewayId> {
        self.local.as_ref()
    }

    /// How forwarding to each peer gateway is going (the forwarder keeps
    /// it; the outbox shows it).
    pub fn forward_peers(&self) -> &Peers {
        &self.forward_peers
    }

    /// Whether this gateway serves `agency`: its agencies submit here,
    /// read their inboxes here and hold their state here.
    pub fn serves(&self, agency: &AgencyId) -> bool {
        self.registry.serves(self.local.as_ref(), agency)
    }

    /// The same gateway with transfer offers open for `seconds`.
    #[must_use]
    pub fn with_offer_ttl(mut self, seconds: i64) -> Gateway {
        self.offer_ttl = seconds;
        self
    }

    /// The same gateway with these grant and review limits.
    #[must_use]
    pub fn with_medical_times(mut self, medical: Medical) -> Gateway {
        self.medical = medical;
        self
    }

    /// The same gateway for requests that may wait `seconds` for their
    /// commit (the server's request timeout).
    #[must_use]
    pub fn with_request_timeout(mut self, seconds: i64) -> Gateway {
        self.request_timeout = seconds.max(0);
        self
    }

    /// The same gateway refusing every commit (`storage_unavailable`)
    /// while `dir`'s file system has less than `bytes` free.
    #[must_use]
    pub fn with_disk_reserve(self, dir: std::path::PathBuf, bytes: u64) -> Gateway {
        self.disk.arm(dir, bytes);
        self
    }

    /// How long after a break-the-glass grant its review falls due.
    pub fn review_due(&self) -> i64 {
        self.medical.review_due
    }

    /// Sets the review-queue gauges for a `/metrics` scrape, from the
    /// counts kept in memory as grants and reviews commit (no store read).
    pub fn refresh_review_metrics(&self) {
        let (pending, overdue) = self.reviews.counts(unix_now(), self.review_due());
        self.metrics.reviews(pending, overdue);
    }

    /// The log's size after each durable commit.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.committer.commits()
    }

    /// Completes if the commit thread dies (a panic): the gateway can
    /// commit nothing more, and the server stops so that the process exits
    /// and is restarted. Never completes otherwise.
    pub async fn commit_failed(&self) {
        self.committer.failed().await;
    }

    /// Whether the commit thread has died.
    pub fn has_commit_failed(&self) -> bool {
        self.committer.has_failed()
    }

    /// How the envelopes surveyed off the commit thread (inventory
    /// reports) have fared at their turn: still current, stale and
    /// surveyed again, or surveyed on the commit thread in the end.
    pub fn ahead_counts(&self) -> AheadCounts {
        self.committer.ahead_counts()
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        match self.policy.read() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Counts one request of `agency` against its rate limit (the policy
    /// in force sets it).
    ///
    /// # Errors
    /// [`RateLimited`] if the agency has used up its requests for now.
    pub fn admit(&self, agency: &AgencyId) -> Result<(), RateLimited> {
        let rate = self.policy().rate(agency);
        self.limiter
            .take(agency, rate, std::time::Instant::now())
            .map_err(|wait| RateLimited {
                rate,
                retry_after: retry_after_secs(wait),
            })
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
    /// CPU work (one signature verification: an ES256 one here, an EdDSA
    /// one in the next batch of the batch verifier) and a cached store
    /// read.
    ///
    /// # Errors
    /// The first stage's refusal.
    pub async fn submit(&self, sender: &AgencyId, jws: &[u8]) -> Result<Accepted, Refused> {
        let now = unix_now();
        let signed = envelope::check(jws, sender, &self.verifiers, &self.registry)
            .map_err(|r| Refused::new(None, r))?;
        let verified = match &self.batches {
            Some(batches) if signed.key().ed25519().is_some() => {
                batches.verify(signed).await.map_err(|e| match e {
                    CheckError::Rejected(r) => Refused::new(None, r),
                    CheckError::Stopped => Refused::new(None, Reason::Commit(CommitError::Stopped)),
                })?
            }
            _ => signed.verify().map_err(|r| Refused::new(None, r))?,
        };
        let envelope = verified
            .open(&self.registry, self.limits, now)
            .map_err(|r| Refused::new(None, r))?;
        let kind = envelope.kind;
        self.accept(&envelope, now)
            .await
            .map_err(|reason| Refused::new(Some(kind), reason))
    }

    /// Takes the envelopes gateway `from` forwards, in their order (that
    /// gateway's log order): each is checked end to end, as if its sender
    /// had submitted it here (its signature against the sender's key in
    /// the registry, never the forwarding gateway's word), and also that
    /// `from` is the gateway the registry names for its sender, that this
    /// gateway serves its recipient, and that `from`'s receipt proves it
    /// logged this very envelope, at a time its lifetime is judged at.
    /// Then this gateway's policy and rules, and its log: once by sender
    /// and `jti` (a copy gets the first one's receipt), and never after an
    /// earlier envelope of the request that was not logged.
    ///
    /// Returns one outcome per envelope, in order.
    pub async fn receive(
        self: &Arc<Self>,
        from: &GatewayId,
        items: Vec<ForwardItem>,
    ) -> Vec<Result<Accepted, Refused>> {
        let now = unix_now();
        let count = items.len();
        let chain = Arc::new(Chain::new(count));
        let turns = Turns::new(count);
        // Signatures, receipts and dossiers are CPU work: all of a
        // request's on a blocking thread, their shared checkpoint verified
        // once, their EdDSA signatures as one batch.
        let checked = {
            let (gateway, from) = (Arc::clone(self), from.clone());
            tokio::task::spawn_blocking(move || {
                let mut verified = HashMap::new();
                let signed = items
                    .iter()
                    .map(|item| gateway.arriving(&from, item, &mut verified))
                    .collect();
                let outcomes = gateway.verify_arrivals(signed);
                items
                    .into_iter()
                    .zip(outcomes)
                    .map(|(item, outcome)| {
                        let arrived =
                            outcome.and_then(|(v, logged)| gateway.arrived(&item, v, logged));
                        (item, arrived)
                    })
                    .collect::<Vec<_>>()
            })
            .await
        };
        let Ok(checked) = checked else {
            return (0..count)
                .map(|_| Err(Refused::new(None, Reason::Commit(CommitError::Stopped))))
                .collect();
        };
        // Each is queued for the committer after the one before it
        // (`Turns`): they share batches and keep their order; `Chain` holds
        // them to it if a batch fails.
        let each = checked
            .into_iter()
            .enumerate()
            .map(|(position, (item, arrived))| {
                let turn = turns.turn(position);
                self.receive_one(item, arrived, now, Arc::clone(&chain), position, turn)
            });
        futures_util::future::join_all(each).await
    }

    /// One envelope of [`Gateway::receive`], checked already (`arrived`).
    async fn receive_one(
        &self,
        item: ForwardItem,
        arrived: Result<(Envelope, Logged), Refused>,
        now: i64,
        chain: Arc<Chain>,
        position: usize,
        turn: Turn,
    ) -> Result<Accepted, Refused> {
        let (envelope, logged) = match arrived {
            Ok(arrived) => arrived,
            Err(refused) => {
                chain.refused(position);
                return Err(refused);
            }
        };
        let arrival = Arrival {
            chain: Arc::clone(&chain),
            position,
            sent: logged.time,
            expires: logged.expires,
            dossier: item.dossier,
            receipt: item.receipt,
            turn: Some(turn),
        };
        let kind = envelope.kind;
        self.accept_arrived(&envelope, now, Some(arrival))
            .await
            .map_err(|reason| {
                // Refused before its turn: for good (its turn would have
                // said otherwise).
                if !matches!(reason, Reason::Commit(_)) {
                    chain.refused(position);
                }
                Refused::new(Some(kind), reason)
            })
    }

    /// The checks of a forwarded envelope before its signature's: who
    /// forwarded it, the forwarding gateway's receipt, and the envelope up
    /// to its signature ([`envelope::check`]).
    fn arriving(
        &self,
        from: &GatewayId,
        item: &ForwardItem,
        verified: &mut HashMap<String, Checkpoint>,
    ) -> Result<(Signed, Logged), Refused> {
        let jws = item.envelope.as_bytes();
        let wrong = |m: String| Refused::new(None, Reason::WrongGateway(m));
        let sender = envelope::claimed_sender(jws).ok_or_else(|| {
            Refused::new(
                None,
                Rejection::Malformed("the envelope names no registered agency as iss".into()),
            )
        })?;
        match self.registry.gateway_of(&sender) {
            Some(g) if &g.id == from => {}
            _ => {
                return Err(wrong(format!(
                    "gateway {from} does not serve {sender}, so it cannot forward its envelopes"
                )));
            }
        }
        let logged = self
            .forwarder_logged(from, item, verified)
            .map_err(|m| Refused::new(None, Reason::ForwardReceipt(m)))?;
        let signed = envelope::check(jws, &sender, &self.verifiers, &self.registry)
            .map_err(|r| Refused::new(None, r))?;
        Ok((signed, logged))
    }

    /// The signatures of a forward request's envelopes that passed
    /// [`Gateway::arriving`], their EdDSA ones as one batch; each outcome
    /// in order.
    fn verify_arrivals(
        &self,
        arriving: Vec<Result<(Signed, Logged), Refused>>,
    ) -> Vec<Result<(Verified, Logged), Refused>> {
        let mut signed = Vec::new();
        let slots: Vec<Result<Logged, Refused>> = arriving
            .into_iter()
            .map(|a| {
                a.map(|(s, logged)| {
                    signed.push(s);
                    logged
                })
            })
            .collect();
        let mut outcomes = signatures::verify_all(signed, self.metrics.signatures()).into_iter();
        slots
            .into_iter()
            .map(|slot| {
                let logged = slot?;
                // One outcome per envelope that passed, in order.
                let outcome = outcomes
                    .next()
                    .unwrap_or_else(|| Err(envelope::bad_signature()));
                outcome
                    .map(|v| (v, logged))
                    .map_err(|r| Refused::new(None, r))
            })
            .collect()
    }

    /// The checks of a forwarded envelope after its signature's, before
    /// the policy's: its claims (at the time the forwarding gateway logged
    /// it), that the entry describes it, its recipient, and its dossier.
    fn arrived(
        &self,
        item: &ForwardItem,
        verified: Verified,
        logged: Logged,
    ) -> Result<(Envelope, Logged), Refused> {
        let wrong = |m: String| Refused::new(None, Reason::WrongGateway(m));
        let envelope = verified
            .open(&self.registry, self.limits, logged.time)
            .map_err(|r| Refused::new(None, r))?;
        if logged.iss != envelope.iss.as_str()
            || logged.aud != envelope.aud.as_str()
            || logged.jti != envelope.jti
            || logged.kind != envelope.kind.as_str()
        {
            return Err(Refused::new(
                Some(envelope.kind),
                Reason::ForwardReceipt("its entry does not describe this envelope".into()),
            ));
        }
        if !self.serves(&envelope.aud) {
            return Err(wrong(format!(
                "{} is not served by this gateway; forward to the gateway that serves it",
                envelope.aud
            )));
        }
        if envelope.kind == Kind::AssetTransferOffer {
            let tag = logged.tag.as_deref().unwrap_or_default();
            let dossier = item.dossier.as_ref().ok_or_else(|| {
                Refused::new(
                    Some(envelope.kind),
                    Reason::Dossier(
                        "an offer forwarded from another gateway carries the asset's dossier"
                            .into(),
                    ),
                )
            })?;
            dossier
                .check(tag, &envelope.iss, &self.registry)
                .map_err(|e| Refused::new(Some(envelope.kind), Reason::Dossier(e.to_string())))?;
        } else if item.dossier.is_some() {
            return Err(Refused::new(
                Some(envelope.kind),
                Reason::Dossier("only an asset.transfer.offer carries a dossier".into()),
            ));
        }
        Ok((envelope, logged))
    }

    /// The entry `from`'s receipt proves: signed by `from`'s log key from
    /// the registry (never a key it sends), logging this very envelope.
    fn forwarder_logged(
        &self,
        from: &GatewayId,
        item: &ForwardItem,
        verified: &mut HashMap<String, Checkpoint>,
    ) -> Result<Logged, String> {
        let note = &item.receipt.checkpoint;
        let checkpoint = match verified.get(note) {
            Some(checkpoint) => checkpoint.clone(),
            None => {
                let gateway = self
                    .registry
                    .gateway(from)
                    .ok_or_else(|| format!("gateway {from} is not in the registry"))?;
                let key = NoteVerifier::parse(&gateway.log_key)
                    .map_err(|e| format!("the registry's log_key of {from}: {e}"))?;
                let checkpoint = xgate_ledger::verify_checkpoint(note, &key)
                    .map_err(|e| format!("the checkpoint does not verify: {e}"))?;
                verified.insert(note.clone(), checkpoint.clone());
                checkpoint
            }
        };
        item.receipt
            .verify_in(&checkpoint)
            .map_err(|e| e.to_string())?;
        let id = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            item.envelope.trim_end_matches(['\r', '\n']).as_bytes(),
        ));
        if item.receipt.id != id {
            return Err("it is for another envelope".into());
        }
        let entry = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            &item.receipt.entry,
        )
        .map_err(|_| "its entry is not base64".to_owned())?;
        Logged::parse(&entry).map_err(|_| "its entry is not a gateway log entry".to_owned())
    }

    /// The stages after the envelope's: kind, policy, commit, receipt.
    async fn accept(&self, envelope: &Envelope, now: i64) -> Result<Accepted, Reason> {
        self.accept_arrived(envelope, now, None).await
    }

    /// [`Gateway::accept`], for an envelope forwarded here with its place
    /// in its forward request (`arrival`), or submitted here (`None`).
    async fn accept_arrived(
        &self,
        envelope: &Envelope,
        now: i64,
        arrival: Option<Arrival>,
    ) -> Result<Accepted, Reason> {
        let mut op = self.op(envelope)?;
        if let (Some(dossier), Op::Asset(asset_op)) =
            (arrival.as_ref().and_then(|a| a.dossier.clone()), op.clone())
        {
            op = Op::Asset(asset_op.with_dossier(dossier));
        }
        let policy = self.policy();
        if op.in_clear() && policy.requires_sealed(&envelope.aud) {
            return Err(Reason::EncryptionRequired {
                recipient: envelope.aud.clone(),
                kind: envelope.kind,
            });
        }
        let no_attributes = Default::default();
        let (purpose, attributes) = match &op {
            Op::Medical(medical::Op::Request(r)) => (Some(r.purpose), r.attributes()),
            _ => (None, no_attributes),
        };
        let decision = policy.evaluate(&Request {
            sender: &envelope.iss,
            recipient: &envelope.aud,
            kind: envelope.kind,
            purpose: purpose.map(Purpose::as_str),
            attributes: &attributes,
        });
        // A forwarded envelope is judged at the time its sender's gateway
        // logged it, and an offer lapses when that gateway said.
        let sent = arrival.as_ref().map(|a| a.sent);
        let at = sent.unwrap_or(now);
        let (decision, grant) = self.grant(decision, &op, at)?;
        let offer_expiry = match &arrival {
            Some(a) => a.expires.filter(|_| is_offer(&op)),
            None => self.offer_expiry(&op, now),
        };
        let stamp = Stamp {
            time: now,
            expires: offer_expiry.or(grant.map(|g| g.expires)),
            uses: grant.map(|g| g.uses),
            sent,
        };
        let report = matches!(op, Op::Asset(asset::Op::Report(_)));
        let receipt = self
            .commit(envelope, op, stamp, &policy, decision, arrival)
            .await?;
        if decision == "break-glass" {
            self.metrics.break_glass();
            tracing::warn!(agency = %envelope.iss, holder = %envelope.aud, log_index = receipt.log_index, "break-the-glass grant");
        }
        Ok(Accepted {
            kind: envelope.kind,
            reconciliation_id: report.then(|| receipt.log_index.to_string()),
            receipt,
        })
    }

    /// What the policy's decision means for this body: the decision as the
    /// entry records it, and the grant it makes, if any (a request that
    /// breaks the glass, or a holder's approval), capped by `max_grant`.
    fn grant(
        &self,
        decision: Decision,
        op: &Op,
        now: i64,
    ) -> Result<(&'static str, Option<Terms>), Reason> {
        let capped = |ttl: i64| now.saturating_add(ttl.min(self.medical.max_grant));
        match (decision, op) {
            (Decision::Deny { reason }, _) => Err(Reason::PolicyDenied(reason)),
            (Decision::BreakGlass { grant, .. }, Op::Medical(medical::Op::Request(_))) => {
                let ttl = i64::try_from(grant.ttl.as_secs()).unwrap_or(i64::MAX);
                let terms = Terms {
                    expires: capped(ttl),
                    uses: grant.uses,
                };
                Ok(("break-glass", Some(terms)))
            }
            // Only a medical request can break the glass; never let
            // another kind through as a plain allow.
            (Decision::BreakGlass { .. }, _) => Err(Reason::BreakGlassUnavailable),
            (Decision::Allow { .. }, Op::Medical(medical::Op::Approve(a))) => {
                let hours = a.ttl_hours.unwrap_or(DEFAULT_APPROVAL_HOURS);
                let terms = Terms {
                    expires: capped(i64::from(hours) * 3600),
                    uses: a.uses.unwrap_or(1),
                };
                Ok(("allow", Some(terms)))
            }
            (Decision::Allow { .. }, _) => Ok(("allow", None)),
        }
    }

    /// The kind stage: the envelope's body, parsed for its kind, who a
    /// record may be addressed to, and that a sealed part is a JWE for the
    /// recipient's registered encryption key (the gateway can check no
    /// more of it).
    fn op(&self, envelope: &Envelope) -> Result<Op, Reason> {
        if envelope.kind == Kind::RecordSend && envelope.aud == envelope.iss {
            return Err(Reason::RecordToSelf);
        }
        let malformed = |why: String| Reason::Malformed {
            kind: envelope.kind,
            why,
        };
        let op = Op::parse(envelope.kind, &envelope.body).map_err(|e| match e {
            BodyError::Invalid(why) => malformed(why),
            BodyError::Unsupported(kind) => Reason::UnsupportedKind(kind),
        })?;
        if let Some(part) = op.sealed_part(&envelope.body) {
            let recipient = self
                .registry
                .get(&envelope.aud)
                .ok_or_else(|| malformed(format!("{} is not a registered agency", envelope.aud)))?;
            sealed::check(part, recipient).map_err(|e| malformed(e.to_string()))?;
        }
        Ok(op)
    }

    /// The commit stage: appends the envelope's entry with its inbox,
    /// replay and state records, and builds the receipt against the
    /// commit's checkpoint. Whether the `jti` was used before and whether
    /// the rules allow the envelope are decided by the committer, in log
    /// order, by the step built here ([`Step`]). An inventory report's
    /// survey, which reads the state of every tag it lists, is made off the
    /// commit thread ([`Committer::append_ahead`]).
    async fn commit(
        &self,
        envelope: &Envelope,
        op: Op,
        stamp: Stamp,
        policy: &Arc<Policy>,
        decision: &str,
        mut arrival: Option<Arrival>,
    ) -> Result<Receipt, Reason> {
        let mut turn = arrival.as_mut().and_then(|a| a.turn.take());
        let policy_hash = policy.hash_hex();
        let entry = self.entry(envelope, &op, stamp, &policy_hash, decision)?;
        let step = Arc::new(Step {
            contracts: (!policy.contracts().is_empty()).then(|| self.contracted(policy)),
            stored: envelope.clone(),
            op,
            stamp,
            delivery: self.delivery(envelope),
            arrival,
            keep_until: replay_keep_until(envelope.exp, self.limits.skew, self.request_timeout),
            replay: Arc::clone(&self.replay),
            reviews: Arc::clone(&self.reviews),
            skew: self.limits.skew,
        });
        let started = std::time::Instant::now();
        let acting = Arc::clone(&step);
        let whole = Arc::clone(&step);
        let whole: Prepare<Declined> =
            Box::new(move |view, index| whole.prepare(view, index, None));
        let appended = if step.op.surveys() {
            let log = Arc::clone(&self.log);
            let ahead = move |snapshot| step.ahead(&*log, snapshot);
            self.committer
                .append_ahead(entry.clone(), ahead, whole)
                .await
        } else if let Some(turn) = turn.as_mut() {
            // Queued in its request's order, then awaited with the others.
            turn.wait().await;
            let queued = self.committer.enqueue(entry.clone(), whole).await;
            turn.take();
            match queued {
                Ok(queued) => queued.outcome().await,
                Err(e) => Err(e),
            }
        } else {
            self.committer.append(entry.clone(), whole).await
        };
        if matches!(&appended, Err(CommitError::Declined(Declined::Replayed(_)))) {
            self.metrics.replay_attempt();
        }
        if let Err(CommitError::Declined(Declined::Delivered(index))) = appended {
            return self.first_receipt(envelope, index).await;
        }
        let (index, checkpoint) = appended?;
        acting.count_acts(&self.metrics);
        // The size the commit signed: asking the log could wait on a
        // database, on an async worker.
        self.metrics
            .appended(started.elapsed(), checkpoint.checkpoint.size);
        Receipt::build_for(&*self.log, envelope.id(), index, &entry, &checkpoint)
            .map_err(Reason::Receipt)
    }

    /// Where an accepted `envelope` goes besides the log: nowhere if it is
    /// addressed to its sender, the recipient's inbox if this gateway
    /// serves the recipient, else the queue of the gateway that does.
    fn delivery(&self, envelope: &Envelope) -> Delivery {
        if envelope.aud == envelope.iss {
            return Delivery::Nowhere;
        }
        if self.serves(&envelope.aud) {
            return Delivery::Inbox;
        }
        match self.registry.gateway_of(&envelope.aud) {
            Some(gateway) => Delivery::Forward(gateway.id.clone()),
            // Unreachable: a registry whose agencies name no gateway has
            // this gateway serve them all.
            None => Delivery::Inbox,
        }
    }

    /// The receipt of a forwarded envelope's first copy, logged at `index`,
    /// once that entry is durable (its batch may still be committing). If
    /// that batch failed, `index` may have gone to another entry since:
    /// then the copy is not taken now, and comes again.
    async fn first_receipt(&self, envelope: &Envelope, index: u64) -> Result<Receipt, Reason> {
        let not_now = || Reason::Commit(CommitError::Declined(Declined::NotNow));
        let mut commits = self.committer.commits();
        let timeout =
            std::time::Duration::from_secs(u64::try_from(self.request_timeout).unwrap_or(0));
        let durable = tokio::time::timeout(timeout, commits.wait_for(|size| *size > index))
            .await
            .is_ok_and(|waited| waited.is_ok());
        if !durable {
            return Err(not_now());
        }
        // The reads may wait on a database: off the async workers.
        let (log, iss, jti) = (
            Arc::clone(&self.log),
            envelope.iss.clone(),
            envelope.jti.clone(),
        );
        let (digest, id) = (envelope.digest, envelope.id());
        let built = tokio::task::spawn_blocking(move || {
            let first = received::get(&Stored(log.store()), &iss, &jti)
                .map_err(|e| Reason::Commit(CommitError::Declined(Declined::State(e))))?;
            let logged = received::Received {
                log_index: index,
                digest,
            };
            if first != Some(logged) {
                return Err(not_now());
            }
            // Another replica may have logged it a moment ago.
            let checkpoint = log
                .checkpoint_covering(index)
                .map_err(|e| Reason::Commit(CommitError::Append(Arc::new(e))))?
                .ok_or(Reason::Commit(CommitError::NoCheckpoint))?;
            Receipt::build(&*log, id, index, &checkpoint).map_err(Reason::Receipt)
        })
        .await;
        built.unwrap_or_else(|_| Err(Reason::Commit(CommitError::Stopped)))
    }

    /// The contracts of `policy`, and what their acts may see here.
    fn contracted(&self, policy: &Arc<Policy>) -> Contracted {
        Contracted {
            policy: Arc::clone(policy),
            hash: policy.hash_hex(),
            registry: Arc::clone(&self.registry),
            local: self.local.clone(),
            failed: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Appends a `clock.tick` entry if a deadline a contract set is due
    /// (docs/contracts.md, "Deadlines"): every deadline due now fires there,
    /// and the contracts on it act after it, in the same commit. Returns
    /// the tick's index, or `None` when no deadline was due.
    ///
    /// # Errors
    /// The commit's failure; the deadlines stay, and fire at a later tick.
    pub async fn tick(&self) -> Result<Option<u64>, CommitError<Declined>> {
        let now = unix_now();
        let log = Arc::clone(&self.log);
        let earliest = tokio::task::spawn_blocking(move || deadlines::earliest(log.store()))
            .await
            .map_err(|_| CommitError::Stopped)?
            .map_err(|e| CommitError::Declined(Declined::State(e)))?;
        if earliest.is_none_or(|due| due > now) {
            return Ok(None);
        }
        let contracted = Arc::new(self.contracted(&self.policy()));
        let acting = Arc::clone(&contracted);
        let prepare: Prepare<Declined> = Box::new(move |view, index| {
            let mut writes = WriteBatch::new();
            let events = deadlines::fire(view, index, now, &mut writes).map_err(state_declined)?;
            if events.is_empty() {
                return Err(Declined::NothingDue);
            }
            let cause = Cause { index, time: now };
            let ran = acts::run(acting.setting(), cause, events, view, &mut writes);
            let after = acting.logged(ran)?;
            Ok(Records { writes, after })
        });
        let entry = Tick::at(now, &contracted.hash).encode();
        match self.committer.append(entry, prepare).await {
            Ok((index, _)) => {
                contracted.count(&self.metrics);
                Ok(Some(index))
            }
            // Another replica's tick fired them first.
            Err(CommitError::Declined(Declined::NothingDue)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The log entry of an envelope: its metadata, what it names of its
    /// body ([`Op::named`]) and the gateway's [`Stamp`] (never a body,
    /// never personal data: a person is a salted hash).
    fn entry(
        &self,
        envelope: &Envelope,
        op: &Op,
        stamp: Stamp,
        policy: &str,
        decision: &str,
    ) -> Result<Vec<u8>, EncodeEntryError> {
        let named = op.named();
        let person = named.person.map(|p| person_hash(&self.salt, p));
        Entry::of(envelope, policy, decision, stamp.time)
            .about(named.tag, person, stamp.expires)
            .medical(named.purpose, named.request, stamp.uses, named.outcome)
            .sent(stamp.sent)
            .encode()
    }

    /// When an offer made now lapses; `None` for any other body.
    fn offer_expiry(&self, op: &Op, now: i64) -> Option<i64> {
        is_offer(op).then(|| now.saturating_add(self.offer_ttl))
    }

    /// Drops the outbox records settled (delivered or refused) more than
    /// [`OUTBOX_KEEP_SECS`] ago, at most 10,000 a call: the sender has had
    /// a month to read its delivery receipts, which stay provable from the
    /// recipient gateway's log for good.
    ///
    /// # Errors
    /// A storage failure or a malformed record.
    pub fn purge_outbox(&self) -> Result<usize, OutboxError> {
        let before = unix_now().saturating_sub(OUTBOX_KEEP_SECS);
        outbox::purge(&*self.log, before, 10_000)
    }

    /// Drops replay ids past their keep-until time.
    ///
    /// # Errors
    /// A storage failure.
    pub fn purge_replay(&self) -> Result<usize, xgate_ledger::StoreError> {
        let now = u64::try_from(unix_now()).unwrap_or(0);
        self.replay.purge(&*self.log, now)
    }
}

/// Where an accepted envelope goes besides the log.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Delivery {
    /// Nowhere: addressed to its sender (a registration, a count).
    Nowhere,
    /// The recipient's inbox, here.
    Inbox,
    /// The forward queue of the gateway that serves the recipient.
    Forward(GatewayId),
}

/// A forwarded envelope's place in its forward request, and what the
/// forwarding gateway's entry for it says.
struct Arrival {
    chain: Arc<Chain>,
    position: usize,
    /// When the forwarding gateway logged it.
    sent: i64,
    /// The expiry that entry records (an offer's).
    expires: Option<i64>,
    /// An offer's asset dossier, checked.
    dossier: Option<Dossier>,
    /// The forwarding gateway's receipt, kept for the custody chain of an
    /// asset envelope.
    receipt: Receipt,
    /// Its turn to be queued for the committer, in its request's order
    /// (taken out before the step is built).
    turn: Option<Turn>,
}

/// One envelope's commit step, as the committer runs it at the envelope's
/// turn, in log order: expiry and `jti` checks, the apply stage, and the
/// records that commit with the entry.
struct Step {
    stored: Envelope,
    op: Op,
    stamp: Stamp,
    /// Where it goes besides the log.
    delivery: Delivery,
    /// Forwarded here by another gateway: its place in its request.
    arrival: Option<Arrival>,
    /// Until when its `jti` is kept.
    keep_until: u64,
    replay: Arc<Replay>,
    reviews: Arc<PendingReviews>,
    skew: i64,
    /// The contracts that run on its entry, if any are in force.
    contracts: Option<Contracted>,
}

/// The contracts in force for one step, and what its acts may see.
struct Contracted {
    /// The policy they came with.
    policy: Arc<Policy>,
    /// Its hash, lowercase hex.
    hash: String,
    registry: Arc<Registry>,
    local: Option<GatewayId>,
    /// Each act's contract and whether it failed, as last prepared: counted
    /// once the commit is durable.
    failed: std::sync::Mutex<Vec<(String, bool)>>,
}

impl Contracted {
    /// The contracts and what their acts may see, for [`acts::run`].
    fn setting(&self) -> Setting<'_> {
        Setting {
            contracts: self.policy.contracts(),
            policy: &self.hash,
            scope: Scope {
                registry: &self.registry,
                local: self.local.as_ref(),
            },
        }
    }

    /// The entries of `acts`, a run's acts, keeping what they were for
    /// [`Contracted::count`].
    fn logged(&self, acts: Result<Vec<Act>, StateError>) -> Result<Vec<Vec<u8>>, Declined> {
        let acts = acts.map_err(state_declined)?;
        let logged = acts
            .iter()
            .map(|a| (a.entry.contract.clone(), a.entry.is_failed()))
            .collect();
        match self.failed.lock() {
            Ok(mut last) => *last = logged,
            Err(poisoned) => *poisoned.into_inner() = logged,
        }
        Ok(acts.into_iter().map(|a| a.bytes).collect())
    }

    /// Counts the acts its last run logged, now that they are durable.
    fn count(&self, metrics: &Metrics) {
        let acts = match self.failed.lock() {
            Ok(mut acts) => std::mem::take(&mut *acts),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for (contract, failed) in acts {
            metrics.act(&contract, failed);
        }
    }
}

/// A state failure as the commit step declines with it.
fn state_declined(e: StateError) -> Declined {
    Declined::Apply(ApplyError::Asset(e.into()))
}

impl Step {
    /// Counts the acts its last preparation logged, now that they are
    /// durable.
    fn count_acts(&self, metrics: &Metrics) {
        if let Some(contracted) = &self.contracts {
            contracted.count(metrics);
        }
    }

    /// The records to commit with the entry at `index`, against `view`;
    /// with `survey`, the step's survey made ahead (still current: the
    /// committer checked), else the state is read at this turn.
    fn prepare(
        &self,
        view: &BatchView<'_>,
        index: u64,
        survey: Option<&Survey>,
    ) -> Result<Records, Declined> {
        let Some(arrival) = &self.arrival else {
            return self.prepare_submitted(view, index, survey);
        };
        let prepared = self.prepare_forwarded(arrival, view, index, survey);
        let stored = &self.stored;
        match &prepared {
            Ok(_) | Err(Declined::Delivered(_)) => arrival
                .chain
                .accepted(arrival.position, received::key(&stored.iss, &stored.jti)),
            Err(d) if d.is_transient() => arrival.chain.retry(arrival.position),
            Err(_) => arrival.chain.refused(arrival.position),
        }
        prepared
    }

    /// [`Step::prepare`] for an envelope its sender submitted here: it may
    /// have waited in the queue past its expiry, and its `jti` must be new.
    fn prepare_submitted(
        &self,
        view: &BatchView<'_>,
        index: u64,
        survey: Option<&Survey>,
    ) -> Result<Records, Declined> {
        let stored = &self.stored;
        // It may have waited in the queue past its expiry: then it is
        // refused as it would have been on arrival, and its id, which
        // the purge may already have dropped, is never needed.
        let late = unix_now().saturating_sub(self.skew);
        if stored.exp < late {
            return Err(Declined::Expired {
                ago: late.saturating_sub(stored.exp),
                skew: self.skew,
            });
        }
        if self.replay.seen(&stored.iss, &stored.jti) {
            return Err(Declined::Replayed(stored.iss.clone()));
        }
        let mut records = self.records(view, index, survey)?;
        // Last: only an accepted envelope's id is recorded.
        self.replay.put(
            &stored.iss,
            &stored.jti,
            self.keep_until,
            &mut records.writes,
        );
        Ok(records)
    }

    /// [`Step::prepare`] for an envelope another gateway forwarded: its
    /// expiry was judged at the time the sender's gateway logged it; it is
    /// logged here once by sender and `jti`, and after every envelope
    /// before it in its request that is logged at all.
    fn prepare_forwarded(
        &self,
        arrival: &Arrival,
        view: &BatchView<'_>,
        index: u64,
        survey: Option<&Survey>,
    ) -> Result<Records, Declined> {
        let stored = &self.stored;
        if !arrival.chain.may_follow(arrival.position, view)? {
            return Err(Declined::NotNow);
        }
        if let Some(first) = received::get(view, &stored.iss, &stored.jti)? {
            return Err(if first.digest == stored.digest {
                Declined::Delivered(first.log_index)
            } else {
                Declined::Replayed(stored.iss.clone())
            });
        }
        let mut records = self.records(view, index, survey)?;
        let arrived = received::Received {
            log_index: index,
            digest: stored.digest,
        };
        received::put(&stored.iss, &stored.jti, arrived, &mut records.writes);
        Ok(records)
    }

    /// The records every accepted envelope commits with its entry: the
    /// state change, the envelope kept for replay, its delivery (inbox or
    /// forward queue), the review queue's change, and the acts of the
    /// contracts it triggered, with their entries.
    fn records(
        &self,
        view: &BatchView<'_>,
        index: u64,
        survey: Option<&Survey>,
    ) -> Result<Records, Declined> {
        let stored = &self.stored;
        let mut batch = WriteBatch::new();
        let id = stored.id();
        let facts = Facts::new(
            &stored.iss,
            &stored.aud,
            &stored.jti,
            &id,
            self.stamp,
            index,
        );
        apply::apply_surveyed(&self.op, &facts, view, survey, &mut batch)?;
        // Kept for `xgate audit replay`, which recomputes the state.
        let kept = !matches!(self.op, Op::Record(_));
        if kept {
            inbox::keep(stored, index, &mut batch);
        }
        if let (Op::Asset(_), Some(arrival)) = (&self.op, &self.arrival) {
            // Custody chains show the envelope in both logs.
            keep_json(
                &mut batch,
                asset_state::sender_receipt_key(index),
                &arrival.receipt,
            )?;
        }
        if let Op::Asset(asset_op) = &self.op
            && let Some(dossier) = asset_op.dossier()
        {
            keep_json(&mut batch, asset_state::dossier_key(index), dossier)?;
        }
        match &self.delivery {
            // Addressed to the sender itself (a registration, a count).
            Delivery::Nowhere => {}
            Delivery::Inbox => inbox::put(stored, index, kept, &mut batch)?,
            Delivery::Forward(peer) => outbox::queue(stored, index, peer, kept, &mut batch)?,
        }
        let after = match &self.contracts {
            Some(contracted) => self.act(contracted, &facts, view, &mut batch)?,
            None => Vec::new(),
        };
        self.reviews.record(&batch, self.stamp.time);
        Ok(Records {
            writes: batch,
            after,
        })
    }

    /// Runs the contracts in force on the entry `facts` describes, over
    /// `view` with the entry's `batch` of writes, adding the acts' writes;
    /// returns their entries.
    fn act(
        &self,
        contracted: &Contracted,
        facts: &Facts<'_>,
        view: &BatchView<'_>,
        batch: &mut WriteBatch,
    ) -> Result<Vec<Vec<u8>>, Declined> {
        let setting = contracted.setting();
        let kind = self.stored.kind;
        contracted.logged(acts::on_entry(setting, &self.op, kind, facts, view, batch))
    }

    /// Off the commit thread: the step's survey, read from the store as it
    /// stands at `snapshot` and recorded, and the rest of the step to run
    /// at its turn.
    fn ahead(
        self: &Arc<Step>,
        log: &dyn Ledger,
        snapshot: Snapshot,
    ) -> Result<Ahead<Declined>, Declined> {
        let store = Stored(log.store());
        let reading = Recording::new(&store, snapshot);
        let survey = apply::survey(&self.op, &self.stored.iss, &reading)?;
        let step = Arc::clone(self);
        Ok(Ahead {
            reads: reading.finish(),
            prepare: Box::new(move |view, index| step.prepare(view, index, survey.as_ref())),
        })
    }
}

/// Adds `value`, as JSON, to `batch` as a body kept for good under `key`.
fn keep_json<T: Serialize>(
    batch: &mut WriteBatch,
    key: Vec<u8>,
    value: &T,
) -> Result<(), Declined> {
    let json = serde_json::to_vec(value).map_err(|source| {
        let what = Prefix::of(&key).map_or("kept record", Prefix::what);
        Declined::Apply(ApplyError::Asset(asset::AssetError::Encode(EncodeError {
            what,
            source,
        })))
    })?;
    batch.put_kept(key, json);
    Ok(())
}

/// Whether `op` is a transfer offer (whose entry records when it lapses).
fn is_offer(op: &Op) -> bool {
    matches!(op, Op::Asset(asset::Op::Offer(_) | asset::Op::OfferIn(_)))
}

/// How long a settled outbox record is kept: 30 days.
pub const OUTBOX_KEEP_SECS: i64 = 30 * 24 * 3600;

/// The default of `request_timeout_secs`.
const DEFAULT_REQUEST_TIMEOUT: i64 = 30;

/// Until when (seconds since the epoch) a sender's `jti` is kept: past its
/// envelope's `exp` plus the clock skew it would be refused as expired on
/// arrival, and past that plus the request timeout it can no longer be
/// waiting for its commit either (where it is checked again), so the purge
/// can never drop an id while a copy of its envelope might still commit.
pub fn replay_keep_until(exp: i64, skew: i64, request_timeout: i64) -> u64 {
    let until = exp
        .saturating_add(skew.max(0))
        .saturating_add(request_timeout.max(0));
    u64::try_from(until).unwrap_or(0)
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_ids_outlive_every_envelope_that_could_still_commit() {
        // exp + skew: still accepted on arrival; + request timeout: still
        // waiting for its commit at the latest.
        assert_eq!(replay_keep_until(1_000, 60, 30), 1_090);
        assert_eq!(
            replay_keep_until(1_000, -5, -5),
            1_000,
            "never shorter than exp"
        );
        assert_eq!(replay_keep_until(i64::MAX, 60, 30), i64::MAX as u64);
        assert_eq!(replay_keep_until(-10, 0, 0), 0);
    }
}
