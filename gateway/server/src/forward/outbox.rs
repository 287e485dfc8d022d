//! The sending side of store-and-forward: envelopes for agencies served
//! by another gateway wait here, in log order per peer gateway, until that
//! gateway answers with its receipt or a refusal; the sender reads what
//! became of each in its outbox.
//!
//! Keys (all under `G`, beside the log's `L` keys):
//!
//! | key | value |
//! |---|---|
//! | `Gf` gateway `0x00` log index (u64 BE) | the sender, `0x00`, `k` if the JWS is kept under `Ge` (else its JWS is the body under this key), `0x00`, the kind |
//! | `Gs` sender `0x00` log index (u64 BE) | the [`Forward`] record, JSON |
//!
//! Both are written in the envelope's own commit ([`queue`]), so an
//! acknowledged envelope is logged and will be forwarded, whatever crashes
//! when. Settling one ([`settle`]) removes its queue item and rewrites its
//! record in one durable write; a crash before that only sends it again,
//! and the receiving gateway answers a second copy with the receipt of the
//! first (exactly once by sender and `jti`).

use serde::{Deserialize, Serialize};
use xgate_ledger::{Ledger, StoreError, StoreRead, WriteBatch};

use super::wire::ForwardError;
use crate::envelope::Envelope;
use crate::inbox::kept_key;
use crate::kind::Kind;
use crate::receipt::Receipt;
use crate::registry::{AgencyId, GatewayId};
use crate::store_keys::Prefix;

/// Where a forwarded envelope stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for the recipient's gateway to take it.
    Queued,
    /// Logged by the recipient's gateway: `receipt` proves it.
    Delivered,
    /// Refused by the recipient's gateway: `error` says why.
    Refused,
}

/// What became of one envelope sent to an agency of another gateway, as
/// `GET /v1/outbox` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// The envelope id (hex SHA-256 of the JWS).
    pub id: String,
    /// Its entry's index in this gateway's log (the sender's receipt).
    pub log_index: u64,
    /// The sender's `jti`.
    pub jti: String,
    /// The recipient.
    pub to: AgencyId,
    /// The gateway that serves the recipient.
    pub gateway: GatewayId,
    /// The envelope kind.
    pub kind: String,
    /// Where it stands.
    pub state: State,
    /// When this gateway logged it, milliseconds since the epoch (the
    /// delivery latency is measured from it).
    #[serde(default)]
    pub queued_ms: u64,
    /// The recipient gateway's receipt, once delivered: it verifies with
    /// that gateway's `log_key` from the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
    /// The recipient gateway's refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ForwardError>,
    /// When it was delivered or refused, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled: Option<i64>,
}

/// One envelope waiting in a peer's queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    /// Its entry's index in this log.
    pub log_index: u64,
    /// The sender, whose outbox record it settles.
    pub sender: AgencyId,
    /// Whether its JWS is kept under `Ge` rather than as the item's body.
    pub kept: bool,
    /// Its kind.
    pub kind: Kind,
}

impl Queued {
    /// The key its JWS is stored under (a body).
    pub fn jws_key(&self, peer: &GatewayId) -> Vec<u8> {
        if self.kept {
            kept_key(self.log_index)
        } else {
            queue_key(peer, self.log_index)
        }
    }
}

/// An outbox record that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record could not be encoded (a bug).
    #[error("cannot encode an outbox record: {0}")]
    Encode(#[source] serde_json::Error),
    /// A stored record does not parse: the store is corrupt.
    #[error("a stored {0} is malformed")]
    Corrupt(&'static str),
    /// The durable write failed.
    #[error(transparent)]
    Log(#[from] xgate_ledger::Error),
}

/// Adds the writes that queue `envelope`, logged at `index`, for `peer`
/// and open its sender's outbox record; `kept` says its JWS is kept under
/// `Ge` already.
///
/// # Errors
/// If the record cannot be encoded (a bug); nothing is added then.
pub fn queue(
    envelope: &Envelope,
    index: u64,
    peer: &GatewayId,
    kept: bool,
    batch: &mut WriteBatch,
) -> Result<(), OutboxError> {
    let record = Forward {
        id: envelope.id(),
        log_index: index,
        jti: envelope.jti.clone(),
        to: envelope.aud.clone(),
        gateway: peer.clone(),
        kind: envelope.kind.to_string(),
        state: State::Queued,
        queued_ms: now_ms(),
        receipt: None,
        error: None,
        settled: None,
    };
    let value = serde_json::to_vec(&record).map_err(OutboxError::Encode)?;
    let key = queue_key(peer, index);
    if !kept {
        batch.put_body(key.clone(), envelope.compact.as_bytes().to_vec());
    }
    batch.put(key, queue_value(&envelope.iss, kept, envelope.kind));
    batch.put(record_key(&envelope.iss, index), value);
    Ok(())
}

/// Up to `limit` envelopes waiting for `peer`, oldest first.
///
/// # Errors
/// A storage failure or a malformed item.
pub fn waiting(
    store: &dyn StoreRead,
    peer: &GatewayId,
    limit: usize,
) -> Result<Vec<Queued>, OutboxError> {
    let prefix = Prefix::ForwardQueue.key(&[peer.as_str().as_bytes(), b""]);
    let mut items = Vec::new();
    for kv in store.scan_prefix_from(&prefix, &prefix) {
        if items.len() == limit {
            break;
        }
        let (key, value) = kv?;
        let log_index = key_index(&key).ok_or(OutboxError::Corrupt("forward queue key"))?;
        let (sender, kept, kind) =
            parse_queue_value(value.as_ref()).ok_or(OutboxError::Corrupt("forward queue item"))?;
        items.push(Queued {
            log_index,
            sender,
            kept,
            kind,
        });
    }
    Ok(items)
}

/// How many envelopes wait for `peer`, counting at most `cap`.
///
/// # Errors
/// A storage failure.
pub fn count_waiting(
    store: &dyn StoreRead,
    peer: &GatewayId,
    cap: usize,
) -> Result<usize, StoreError> {
    let prefix = Prefix::ForwardQueue.key(&[peer.as_str().as_bytes(), b""]);
    let mut n = 0;
    for kv in store.scan_prefix_from(&prefix, &prefix) {
        kv?;
        n += 1;
        if n == cap {
            break;
        }
    }
    Ok(n)
}

/// The sender's outbox record of the envelope at `index`.
///
/// # Errors
/// A storage failure or a malformed record.
pub fn record(
    store: &dyn StoreRead,
    sender: &AgencyId,
    index: u64,
) -> Result<Option<Forward>, OutboxError> {
    store
        .get(&record_key(sender, index))?
        .map(|v| {
            serde_json::from_slice(v.as_ref()).map_err(|_| OutboxError::Corrupt("outbox record"))
        })
        .transpose()
}

/// How one queued envelope was settled by its peer.
#[derive(Clone, Debug)]
pub struct Settled {
    /// The item.
    pub item: Queued,
    /// Delivered with this receipt, or refused with this error.
    pub outcome: Result<Receipt, ForwardError>,
}

/// Records what `peer` answered for `settled`, all in one durable write:
/// each leaves the queue, and its sender's record says delivered (with
/// the receipt) or refused (with the error), at time `now`. Returns how
/// long each delivered one took from its commit here, in seconds.
///
/// # Errors
/// A storage failure (then each may or may not be settled: it is sent
/// again, and answered again the same way) or a malformed record.
pub fn settle(
    log: &dyn Ledger,
    peer: &GatewayId,
    settled: &[Settled],
    now: i64,
) -> Result<Vec<f64>, OutboxError> {
    let mut batch = WriteBatch::new();
    let mut latencies = Vec::with_capacity(settled.len());
    let settled_ms = now_ms();
    for done in settled {
        let item = &done.item;
        let Some(mut record) = record(log.store(), &item.sender, item.log_index)? else {
            return Err(OutboxError::Corrupt("outbox record (missing)"));
        };
        match &done.outcome {
            Ok(receipt) => {
                record.state = State::Delivered;
                record.receipt = Some(receipt.clone());
                let ms = settled_ms.saturating_sub(record.queued_ms);
                latencies.push(ms as f64 / 1000.0);
            }
            Err(error) => {
                record.state = State::Refused;
                record.error = Some(error.clone());
            }
        }
        record.settled = Some(now);
        let value = serde_json::to_vec(&record).map_err(OutboxError::Encode)?;
        batch.put(record_key(&item.sender, item.log_index), value);
        let key = queue_key(peer, item.log_index);
        if !item.kept {
            batch.drop_body(key.clone());
        }
        batch.delete(key);
    }
    if !settled.is_empty() {
        log.commit_writes(batch)?;
    }
    Ok(latencies)
}

/// Milliseconds since the epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Up to `limit` of `sender`'s outbox records after log index `after`,
/// oldest first, and whether more follow.
///
/// # Errors
/// A storage failure or a malformed record.
pub fn list(
    store: &dyn StoreRead,
    sender: &AgencyId,
    after: Option<u64>,
    limit: usize,
) -> Result<(Vec<Forward>, bool), OutboxError> {
    let prefix = Prefix::Outbox.key(&[sender.as_str().as_bytes(), b""]);
    let from = match after {
        None => prefix.clone(),
        Some(a) => match a.checked_add(1) {
            Some(next) => record_key(sender, next),
            None => return Ok((Vec::new(), false)),
        },
    };
    let mut records = Vec::new();
    for kv in store.scan_prefix_from(&prefix, &from) {
        let (_, value) = kv?;
        if records.len() == limit {
            return Ok((records, true));
        }
        let record: Forward = serde_json::from_slice(value.as_ref())
            .map_err(|_| OutboxError::Corrupt("outbox record"))?;
        records.push(record);
    }
    Ok((records, false))
}

/// Drops the records (of every sender) settled before `before` (seconds
/// since the epoch), at most `limit` per call, in one durable write;
/// returns how many. Queued ones are never dropped.
///
/// # Errors
/// A storage failure or a malformed record.
pub fn purge(log: &dyn Ledger, before: i64, limit: usize) -> Result<usize, OutboxError> {
    let prefix = Prefix::Outbox.bytes();
    let mut batch = WriteBatch::new();
    let mut dropped = 0;
    for kv in log.store().scan_prefix_from(prefix, prefix) {
        let (key, value) = kv?;
        let record: Forward = serde_json::from_slice(value.as_ref())
            .map_err(|_| OutboxError::Corrupt("outbox record"))?;
        if record.settled.is_some_and(|t| t < before) {
            batch.delete(AsRef::<[u8]>::as_ref(&key).to_vec());
            dropped += 1;
            if dropped == limit {
                break;
            }
        }
    }
    if dropped > 0 {
        log.commit_writes(batch)?;
    }
    Ok(dropped)
}

fn queue_key(peer: &GatewayId, index: u64) -> Vec<u8> {
    Prefix::ForwardQueue.key(&[peer.as_str().as_bytes(), &index.to_be_bytes()])
}

fn record_key(sender: &AgencyId, index: u64) -> Vec<u8> {
    Prefix::Outbox.key(&[sender.as_str().as_bytes(), &index.to_be_bytes()])
}

fn queue_value(sender: &AgencyId, kept: bool, kind: Kind) -> Vec<u8> {
    let mut v = sender.as_str().as_bytes().to_vec();
    v.push(0);
    if kept {
        v.push(b'k');
    }
    v.push(0);
    v.extend_from_slice(kind.as_str().as_bytes());
    v
}

fn parse_queue_value(value: &[u8]) -> Option<(AgencyId, bool, Kind)> {
    let mut parts = value.split(|b| *b == 0);
    let sender = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let kept = match parts.next()? {
        b"" => false,
        b"k" => true,
        _ => return None,
    };
    let kind = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    parts.next().is_none().then_some((sender, kept, kind))
}

fn key_index(key: &[u8]) -> Option<u64> {
    let tail = key.get(key.len().checked_sub(8)?..)?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use xgate_ledger::Log;
    use xgate_ledger::OpenOptions;

    use super::*;

    fn record(index: u64, state: State, settled: Option<i64>) -> Forward {
        Forward {
            id: "ab".repeat(32),
            log_index: index,
            jti: format!("j-{index}"),
            to: "hhs".parse().expect("id"),
            gateway: "g-hhs".parse().expect("id"),
            kind: "record.send".into(),
            state,
            queued_ms: 0,
            receipt: None,
            error: None,
            settled,
        }
    }

    #[test]
    fn the_purge_drops_settled_records_past_their_time_and_never_a_queued_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
        let sender: AgencyId = "state".parse().expect("id");
        let mut batch = WriteBatch::new();
        for r in [
            record(1, State::Delivered, Some(100)),
            record(2, State::Refused, Some(300)),
            record(3, State::Queued, None),
        ] {
            let value = serde_json::to_vec(&r).expect("json");
            batch.put(record_key(&sender, r.log_index), value);
        }
        log.commit_writes(batch).expect("write");
        assert_eq!(purge(&log, 200, 10).expect("purge"), 1);
        let (left, more) = list(log.store(), &sender, None, 10).expect("list");
        assert!(!more);
        let indices: Vec<u64> = left.iter().map(|r| r.log_index).collect();
        assert_eq!(indices, [2, 3], "the old delivered one only");
        assert_eq!(purge(&log, i64::MAX, 10).expect("purge"), 1);
        let (left, _) = list(log.store(), &sender, None, 10).expect("list");
        assert_eq!(left.len(), 1, "the queued one stays: {left:?}");
    }
}
