//! The forwarder: one task per peer gateway that sends it the envelopes
//! queued for it ([`super::outbox`]), oldest first, and records each
//! answer for the sender.
//!
//! A request carries as many queued envelopes as fit in `max_body_bytes`,
//! each with this gateway's receipt for it. The peer answers each with its
//! receipt (checked here against its `log_key` from the registry before it
//! is kept) or a refusal; the forwarder settles the answered envelopes in
//! one durable write and moves on. An envelope the peer did not take now
//! (`storage_unavailable`, `unavailable`, ...), a peer that cannot be
//! reached, or an answer that does not check out stops the round: the
//! envelope and everything after it are sent again after 1 s, 2 s, ...
//! at most 60 s, so nothing overtakes it. A request the peer refuses as
//! too large (413: its `max_body_bytes` may be smaller than this
//! gateway's) is made again at once with half as many envelopes, down to
//! one, which the peer takes or refuses for good (`payload_too_large`).
//! Nothing is lost across a crash:
//! what was not settled is sent again, and the peer answers a copy with
//! its first receipt.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::ClientConfig;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use xgate_ledger::{Checkpoint, Ledger, NoteVerifier, verify_checkpoint};

use super::outbox::{self, OutboxError, Queued, Settled};
use super::status::PeerStatus;
use super::wire::{ForwardAnswer, ForwardError, ForwardItem, ForwardRequest, ForwardResult};
use crate::apply::state::Stored;
use crate::assets::dossier::{Card, Dossier};
use crate::assets::query;
use crate::assets::state as asset_state;
use crate::entry::Logged;
use crate::kind::Kind;
use crate::outbound::{OutboundError, Peer, Response};
use crate::pipeline::{Gateway, unix_now};
use crate::receipt::Receipt;
use crate::registry;

/// Most envelopes in one forward request: enough that a request's two
/// barriers (the peer's commit, the settling here) and its round trip are
/// shared widely under load.
pub const MAX_PER_REQUEST: usize = 256;
/// The first pause after a failed round; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest pause between rounds to a peer that keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Largest answer read from a peer (64 receipts with long proofs fit).
const MAX_ANSWER_BYTES: usize = 4 << 20;
/// How many queued envelopes the queue gauge counts at most.
const COUNT_CAP: usize = 10_000;

/// Why the forwarder could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    /// A peer's URL is unusable.
    #[error("gateway {gateway}: {source}")]
    Url {
        /// The peer.
        gateway: registry::GatewayId,
        /// What is wrong with its URL.
        source: OutboundError,
    },
    /// A peer's log key is not a verifier key.
    #[error("gateway {gateway}: log_key: {reason}")]
    Key {
        /// The peer.
        gateway: registry::GatewayId,
        /// Why it does not parse.
        reason: String,
    },
}

/// Why a round to a peer stopped short.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("{0}")]
    Outbox(#[from] OutboxError),
    #[error("{0}")]
    Log(#[from] xgate_ledger::Error),
    #[error("{0}")]
    Unreachable(#[from] OutboundError),
    /// The peer refused the request as a whole, or did not take an
    /// envelope now.
    #[error("{0}")]
    NotTaken(String),
    /// The peer's answer does not check out.
    #[error("{0}")]
    BadAnswer(String),
    /// The peer refused a request of this many envelopes as too large
    /// (413): it takes smaller requests than this gateway makes.
    #[error("the gateway takes no request of {0} envelopes this large; sending fewer")]
    TooLarge(usize),
}

/// One peer gateway and the connection to it.
struct Link {
    gateway: registry::Gateway,
    peer: Peer,
    key: NoteVerifier,
}

/// The forwarder: built from the peers the registry lists and the TLS
/// configuration for each, run beside the listeners.
pub struct Forwarder {
    links: Vec<Link>,
    max_request_bytes: usize,
    /// Changes when the gateway's CRL in force may have changed.
    crl_changes: watch::Receiver<u64>,
}

impl Forwarder {
    /// A forwarder to `peers`, each with the client configuration that
    /// presents this gateway's certificate and believes only that peer's
    /// (checking the CRL in force at each handshake); every exchange must
    /// complete within `deadline`, and a request carries at most
    /// `max_request_bytes` of JSON (at least one envelope). When
    /// `crl_changes` changes ([`crate::tls::Tls::changes`]), each peer's
    /// open connection is dropped before its next request, so a peer
    /// revoked since it opened is checked again at a new handshake.
    ///
    /// # Errors
    /// A peer whose URL or log key is unusable.
    pub fn new(
        peers: Vec<(registry::Gateway, Arc<ClientConfig>)>,
        deadline: Duration,
        max_request_bytes: usize,
        crl_changes: watch::Receiver<u64>,
    ) -> Result<Forwarder, ForwarderError> {
        let links = peers
            .into_iter()
            .map(|(gateway, tls)| {
                let peer = Peer::new(&gateway.url, Some(tls), deadline)
                    .map_err(|source| ForwarderError::Url {
                        gateway: gateway.id.clone(),
                        source,
                    })?
                    .with_max_response(MAX_ANSWER_BYTES);
                let key =
                    NoteVerifier::parse(&gateway.log_key).map_err(|e| ForwarderError::Key {
                        gateway: gateway.id.clone(),
                        reason: e.to_string(),
                    })?;
                Ok(Link { gateway, peer, key })
            })
            .collect::<Result<Vec<_>, ForwarderError>>()?;
        Ok(Forwarder {
            links,
            max_request_bytes,
            crl_changes,
        })
    }

    /// Whether there is no peer to forward to.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Forwards to every peer until the task is dropped.
    pub async fn run(self, gateway: Arc<Gateway>) {
        let max = self.max_request_bytes;
        let crl = self.crl_changes;
        let each = self
            .links
            .into_iter()
            .map(|link| serve_peer(Arc::new(link), Arc::clone(&gateway), max, crl.clone()));
        futures_util::future::join_all(each).await;
    }
}

/// Forwards to one peer, round after round, for good.
async fn serve_peer(
    link: Arc<Link>,
    gateway: Arc<Gateway>,
    max_request_bytes: usize,
    mut crl: watch::Receiver<u64>,
) {
    let id = link.gateway.id.clone();
    let mut commits = gateway.commits();
    let mut failures: u32 = 0;
    // Most envelopes per request: fewer once the peer refused a request
    // as too large (its max_body_bytes may be smaller than ours), for as
    // long as this process runs.
    let mut most = MAX_PER_REQUEST;
    loop {
        // A connection opened under an older CRL may be to a peer revoked
        // since: only a new handshake checks it against the new one.
        if crl.has_changed().unwrap_or(false) {
            crl.mark_unchanged();
            link.peer.disconnect().await;
        }
        match round(&link, &gateway, max_request_bytes, most).await {
            Ok(0) => {
                // Nothing waits: until the next commit (which may queue
                // one), or a minute, whichever is first.
                let _ = tokio::time::timeout(Duration::from_secs(60), commits.changed()).await;
            }
            Ok(_) => {
                if failures > 0 {
                    failures = 0;
                    gateway.forward_peers().set(&id, PeerStatus::default());
                }
            }
            // Halved at once, down to one envelope, which the peer takes
            // or refuses for good: no pause, each try is smaller.
            Err(RoundError::TooLarge(sent)) => {
                most = (sent / 2).max(1);
                tracing::warn!(gateway = %id, envelopes = most, "the gateway refused a request as too large; sending fewer");
            }
            Err(why) => {
                let pause = FIRST_BACKOFF
                    .saturating_mul(1 << failures.min(6))
                    .min(MAX_BACKOFF);
                failures = failures.saturating_add(1);
                gateway.metrics.forwarded(id.as_str(), "retry", 1);
                tracing::warn!(gateway = %id, attempts = failures, error = %why, "forwarding paused");
                let next = unix_now().saturating_add(i64::try_from(pause.as_secs()).unwrap_or(60));
                gateway.forward_peers().set(
                    &id,
                    PeerStatus {
                        attempts: failures,
                        last_error: Some(why.to_string()),
                        next_attempt: Some(next),
                    },
                );
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// One request to the peer, of at most `most` envelopes: returns how many
/// envelopes it settled. The reading, signature-free checking and durable
/// settling run on blocking threads; only the exchange itself is awaited
/// here.
async fn round(
    link: &Arc<Link>,
    gateway: &Arc<Gateway>,
    max_request_bytes: usize,
    most: usize,
) -> Result<usize, RoundError> {
    let prepared = {
        let (link, gateway) = (Arc::clone(link), Arc::clone(gateway));
        blocking(move || prepare(&link, &gateway, max_request_bytes, most)).await?
    };
    let Some((sent, body)) = prepared else {
        return Ok(0);
    };
    let response = link
        .peer
        .post("/v1/forward", "application/json", Bytes::from(body))
        .await?;
    let (link, gateway) = (Arc::clone(link), Arc::clone(gateway));
    blocking(move || conclude(&link, &gateway, sent, &response)).await
}

/// Runs `f` on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RoundError> + Send + 'static,
) -> Result<T, RoundError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RoundError::NotTaken(format!("a forwarding step did not finish: {e}")))?
}

/// What was sent: each queued item and its envelope id.
type Sent = Vec<(Queued, String)>;

/// The next request to the peer: the envelopes waiting for it, oldest
/// first, as many as fit in `max_request_bytes` (at least one), each with
/// this log's receipt (and an offer's dossier); `None` if none waits.
fn prepare(
    link: &Link,
    gateway: &Gateway,
    max_request_bytes: usize,
    most: usize,
) -> Result<Option<(Sent, Vec<u8>)>, RoundError> {
    let peer = &link.gateway.id;
    let log = &gateway.log;
    let queued = outbox::waiting(log.store(), peer, most)?;
    let waiting = if queued.len() < most {
        queued.len()
    } else {
        outbox::count_waiting(log.store(), peer, COUNT_CAP).map_err(OutboxError::from)?
    };
    gateway.metrics.forward_queue(peer.as_str(), waiting);
    if queued.is_empty() {
        return Ok(None);
    }
    let checkpoint = log
        .latest_checkpoint()
        .ok_or_else(|| RoundError::NotTaken("this log has signed no checkpoint yet".into()))?;
    let mut sent: Sent = Vec::new();
    let mut forwards = Vec::new();
    let mut bytes = 0;
    for item in queued {
        let jws = log
            .body(&item.jws_key(peer))?
            .ok_or(OutboxError::Corrupt("queued envelope (its JWS is missing)"))?;
        let jws = String::from_utf8(jws).map_err(|_| OutboxError::Corrupt("queued envelope"))?;
        let id = hex::encode(Sha256::digest(jws.as_bytes()));
        let receipt = Receipt::build(&**log, id.clone(), item.log_index, &checkpoint)?;
        let dossier = match item.kind {
            Kind::AssetTransferOffer => Some(dossier(&**log, &item)?),
            _ => None,
        };
        let forward = ForwardItem {
            envelope: jws,
            receipt,
            dossier,
        };
        // What it adds to the request, receipt and dossier included.
        let size = serde_json::to_vec(&forward).map_or(usize::MAX, |v| v.len());
        if !forwards.is_empty() && bytes + size > max_request_bytes {
            break;
        }
        bytes = bytes.saturating_add(size);
        forwards.push(forward);
        sent.push((item, id));
    }
    let body = serde_json::to_vec(&ForwardRequest { forwards })
        .map_err(|e| RoundError::BadAnswer(format!("cannot encode the request: {e}")))?;
    Ok(Some((sent, body)))
}

/// Reads the peer's answer to `sent`: settles, in one durable write, what
/// it took or refused for good, in order up to the first envelope it did
/// not take now (or whose receipt does not check out), and returns how
/// many were settled, or why the round stopped short.
fn conclude(
    link: &Link,
    gateway: &Gateway,
    sent: Sent,
    response: &Response,
) -> Result<usize, RoundError> {
    let peer = &link.gateway.id;
    let log = &gateway.log;
    if response.status == http::StatusCode::PAYLOAD_TOO_LARGE && sent.len() == 1 {
        // One envelope the peer will never take: refused for good.
        let refusal = error_of(&response.body).unwrap_or_else(|| ForwardError {
            code: "payload_too_large".into(),
            message: "the recipient's gateway takes no envelope this large".into(),
        });
        let settled = sent
            .into_iter()
            .map(|(item, _)| Settled {
                item,
                outcome: Err(refusal.clone()),
            })
            .collect::<Vec<_>>();
        outbox::settle(&**log, peer, &settled, unix_now())?;
        gateway.metrics.forwarded(peer.as_str(), "refused", 1);
        return Ok(1);
    }
    if response.status == http::StatusCode::PAYLOAD_TOO_LARGE {
        return Err(RoundError::TooLarge(sent.len()));
    }
    if response.status != http::StatusCode::OK {
        let why = error_of(&response.body)
            .map_or_else(String::new, |e| format!(" {}: {}", e.code, e.message));
        return Err(RoundError::NotTaken(format!(
            "the gateway answered {}{why}",
            response.status.as_u16()
        )));
    }
    let answer: ForwardAnswer = serde_json::from_slice(&response.body)
        .map_err(|e| RoundError::BadAnswer(format!("its answer is not a forward answer: {e}")))?;
    if answer.results.len() != sent.len() {
        return Err(RoundError::BadAnswer(format!(
            "it answered {} results for {} envelopes",
            answer.results.len(),
            sent.len()
        )));
    }
    let mut settled = Vec::with_capacity(sent.len());
    let mut stopped = None;
    let mut verified = HashMap::new();
    for ((item, id), result) in sent.into_iter().zip(answer.results) {
        match result {
            ForwardResult::Receipt(receipt) => {
                if let Err(why) = check_receipt(&receipt, &id, &link.key, &mut verified) {
                    stopped = Some(RoundError::BadAnswer(why));
                    break;
                }
                settled.push(Settled {
                    item,
                    outcome: Ok(receipt),
                });
            }
            ForwardResult::Error(e) if e.is_transient() => {
                stopped = Some(RoundError::NotTaken(format!("{}: {}", e.code, e.message)));
                break;
            }
            ForwardResult::Error(e) => settled.push(Settled {
                item,
                outcome: Err(e),
            }),
        }
    }
    let latencies = outbox::settle(&**log, peer, &settled, unix_now())?;
    for seconds in &latencies {
        gateway.metrics.delivery(*seconds);
    }
    let delivered = latencies.len();
    gateway
        .metrics
        .forwarded(peer.as_str(), "delivered", delivered as u64);
    gateway
        .metrics
        .forwarded(peer.as_str(), "refused", (settled.len() - delivered) as u64);
    match stopped {
        Some(why) => Err(why),
        None => Ok(settled.len()),
    }
}

/// The dossier an offer queued as `item` carries: its asset as this
/// gateway records it, and the custody chain before the offer, each event
/// with its receipt.
fn dossier(log: &dyn Ledger, item: &Queued) -> Result<Dossier, RoundError> {
    let entry = log.entry(item.log_index)?;
    let tag = Logged::parse(&entry)
        .ok()
        .and_then(|l| l.tag)
        .ok_or(OutboxError::Corrupt(
            "queued offer (its entry names no tag)",
        ))?;
    let asset = asset_state::asset(&Stored(log.store()), &tag)
        .map_err(OutboxError::from)?
        .ok_or(OutboxError::Corrupt("queued offer (its asset is unknown)"))?;
    let checkpoint = log
        .latest_checkpoint()
        .ok_or_else(|| RoundError::NotTaken("this log has signed no checkpoint yet".into()))?;
    let chain = query::chain(log, &tag, &checkpoint, Some(item.log_index))?;
    Ok(Dossier {
        asset: Card {
            tag: asset.tag,
            serial: asset.serial,
            category: asset.category,
            description: asset.description,
            holder: asset.holder,
            location: asset.location,
        },
        chain,
    })
}

/// Checks a peer's receipt for envelope `id` against its log key from the
/// registry: a delivery is proven only by what verifies.
/// The receipts of one answer mostly share a checkpoint (one commit at
/// the peer): `verified` holds those whose signature was checked.
fn check_receipt(
    receipt: &Receipt,
    id: &str,
    key: &NoteVerifier,
    verified: &mut HashMap<String, Checkpoint>,
) -> Result<(), String> {
    if receipt.id != id {
        return Err("the gateway answered with a receipt for another envelope".into());
    }
    let fail = |e: String| format!("the gateway's receipt does not verify with its log_key: {e}");
    let checkpoint = match verified.get(&receipt.checkpoint) {
        Some(checkpoint) => checkpoint.clone(),
        None => {
            let checkpoint =
                verify_checkpoint(&receipt.checkpoint, key).map_err(|e| fail(e.to_string()))?;
            verified.insert(receipt.checkpoint.clone(), checkpoint.clone());
            checkpoint
        }
    };
    receipt
        .verify_in(&checkpoint)
        .map_err(|e| fail(e.to_string()))
}

/// The API error in a response body, if it holds one.
fn error_of(body: &[u8]) -> Option<ForwardError> {
    #[derive(serde::Deserialize)]
    struct Body {
        error: ForwardError,
    }
    serde_json::from_slice::<Body>(body).ok().map(|b| b.error)
}
