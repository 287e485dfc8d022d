//! Proof of delivery across gateways: the sender reads its outbox (`GET
//! /v1/outbox` at its own gateway, as `xgate outbox --wait` does) until
//! the envelope is settled, and checks the delivery receipt exactly as
//! `xgate outbox` checks it: with the recipient gateway's `log_key` from
//! the sender's own copy of the registry, never a key from the answer.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::error::Error;
use crate::cli::outbox::{check_delivery, list};
use crate::client::Client;
use xgate_server::receipt::Receipt;
use xgate_server::registry::Registry;

/// How long a delivery may take: at the demo's pace the forwarder sends
/// each envelope as soon as it is logged, and the answer comes back in
/// milliseconds; a peer that cannot be reached is retried after 1 s, 2 s,
/// and so on.
const PATIENCE: Duration = Duration::from_secs(20);

/// How often the outbox is read again meanwhile.
const POLL: Duration = Duration::from_millis(20);

/// The delivery receipt of the envelope `id`, once the sender's gateway
/// has it, checked against the registry.
///
/// # Errors
/// A refusal by the recipient's gateway (with its code and message), a
/// receipt that does not verify, or no answer within [`PATIENCE`].
pub(super) async fn delivery(
    client: &mut Client,
    registry: &Registry,
    id: &str,
) -> Result<Receipt, Error> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let records = list(client).await?;
        let record = records.iter().find(|r| r["id"] == id);
        match record.map(|r| (r, r["state"].as_str().unwrap_or_default())) {
            Some((record, "delivered")) => return delivered(record, registry),
            Some((record, "refused")) => {
                return Err(Error::Request(format!(
                    "the recipient's gateway refused envelope {id}: {} ({})",
                    record["error"]["code"].as_str().unwrap_or("?"),
                    record["error"]["message"].as_str().unwrap_or("?")
                )));
            }
            Some((record, _)) if Instant::now() >= deadline => {
                return Err(Error::Request(format!(
                    "envelope {id} is still queued after {} s: {}",
                    PATIENCE.as_secs(),
                    record["last_error"].as_str().unwrap_or("no error yet")
                )));
            }
            None if Instant::now() >= deadline => {
                return Err(Error::Request(format!(
                    "envelope {id} is not in its sender's outbox"
                )));
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

/// The receipt of a `delivered` outbox record, checked.
fn delivered(record: &Value, registry: &Registry) -> Result<Receipt, Error> {
    check_delivery(record, registry)
        .map_err(|why| Error::Request(format!("the delivery receipt: {why}")))?;
    serde_json::from_value(record["receipt"].clone())
        .map_err(|_| Error::Request("the delivery receipt is not a receipt".into()))
}
