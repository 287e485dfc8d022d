//! `xgate outbox`: what became of the agency's envelopes to agencies that
//! other gateways serve.
//!
//! ```text
//! xgate outbox --pki DIR --as ID --gateway URL [--wait SECS]
//! ```
//!
//! Prints one line of JSON per envelope, oldest first, as the gateway
//! keeps it: `{"id","log_index","jti","to","gateway","kind","state"}`
//! with `state` `queued` (and, while its gateway cannot be reached or
//! does not take it now, `attempts`, `last_error`, `next_attempt`),
//! `delivered` (with `receipt`, the recipient gateway's receipt, and
//! `settled`) or `refused` (with `error`, `{"code","message"}` as the
//! recipient's gateway gave them, and `settled`). A delivered envelope's
//! receipt is checked here against the recipient gateway's `log_key` in
//! the agency's own copy of the registry, never a key from the answer:
//! one that does not verify is printed with `"refused": "<why>"` and the
//! run ends with an error. With `--wait`, the listing is taken once no
//! envelope is queued any more, or after SECS seconds, whichever is
//! first; then exit 1 if any is still queued.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use http::{Method, StatusCode};
use serde_json::Value;
use xgate_ledger::NoteVerifier;
use xgate_server::pki::REGISTRY;
use xgate_server::receipt::Receipt;
use xgate_server::registry::{AgencyId, GatewayId, Registry};

use super::error::Error;
use super::session::{emit, expect, runtime};
use crate::client::{Client, Protocol};

/// How often `--wait` looks again.
const POLL: Duration = Duration::from_millis(200);

/// Arguments of `xgate outbox`.
#[derive(Debug, Args)]
pub struct OutboxArgs {
    /// PKI directory holding the agency's keys and the registry.
    #[arg(long, value_name = "DIR")]
    pub pki: PathBuf,
    /// The agency whose outbox to read.
    #[arg(long = "as", value_name = "ID")]
    pub agency: AgencyId,
    /// The agency's gateway, as https://host:port.
    #[arg(long, value_name = "URL")]
    pub gateway: String,
    /// Wait up to this many seconds (1-3600) for nothing to be queued.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub wait: Option<u64>,
}

impl OutboxArgs {
    /// Prints the outbox.
    ///
    /// # Errors
    /// A transport failure, the gateway's refusal, a delivery receipt that
    /// does not verify, or (with `--wait`) envelopes still queued.
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let registry = Registry::load(&self.pki.join(REGISTRY))?;
        let mut client =
            Client::for_agency(&self.pki, &self.agency, &self.gateway, Protocol::Auto)?;
        let runtime = runtime()?;
        let deadline = self.wait.map(|s| Instant::now() + Duration::from_secs(s));
        let records = loop {
            let records = runtime.block_on(list(&mut client))?;
            let queued = records.iter().any(|r| r["state"] == "queued");
            match deadline {
                Some(at) if queued && Instant::now() < at => std::thread::sleep(POLL),
                _ => break records,
            }
        };
        let mut bad = 0usize;
        let mut queued = 0usize;
        for mut record in records {
            if record["state"] == "queued" {
                queued += 1;
            }
            if record["state"] == "delivered"
                && let Err(why) = check_delivery(&record, &registry)
            {
                bad += 1;
                record["refused"] = Value::String(why);
            }
            let line =
                serde_json::to_vec(&record).map_err(|e| Error::Stdout(std::io::Error::other(e)))?;
            emit(stdout, &line)?;
        }
        if bad > 0 {
            return Err(Error::Request(format!(
                "{bad} delivery receipt(s) do not verify against the registry: printed with \
                 \"refused\" and the reason"
            )));
        }
        if self.wait.is_some() && queued > 0 {
            return Err(Error::Request(format!(
                "{queued} envelope(s) still queued after {} s",
                self.wait.unwrap_or_default()
            )));
        }
        Ok(())
    }
}

/// Every page of the outbox.
///
/// # Errors
/// A transport failure, the gateway's refusal, or a page that is not JSON.
pub(crate) async fn list(client: &mut Client) -> Result<Vec<Value>, Error> {
    let mut records = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let path = match after {
            Some(a) => format!("/v1/outbox?after={a}"),
            None => "/v1/outbox".to_owned(),
        };
        let reply = client.request(Method::GET, &path, None, Vec::new()).await?;
        expect(&reply, StatusCode::OK)?;
        let page: Value = serde_json::from_slice(&reply.body)
            .map_err(|_| Error::Request("the gateway's outbox page is not JSON".into()))?;
        records.extend(page["forwards"].as_array().cloned().unwrap_or_default());
        match page["next"].as_u64() {
            Some(n) => after = Some(n),
            None => return Ok(records),
        }
    }
}

/// Checks a delivered record's receipt against the recipient gateway's
/// `log_key` in the registry, and that it is for this envelope.
///
/// # Errors
/// Why it does not check out, in words.
pub(crate) fn check_delivery(record: &Value, registry: &Registry) -> Result<(), String> {
    let gateway: GatewayId = record["gateway"]
        .as_str()
        .and_then(|g| g.parse().ok())
        .ok_or("the record names no gateway")?;
    let key = registry
        .gateway(&gateway)
        .ok_or_else(|| format!("gateway {gateway} is not in the registry"))?;
    let key = NoteVerifier::parse(&key.log_key)
        .map_err(|e| format!("the registry's log_key of {gateway}: {e}"))?;
    let receipt: Receipt = serde_json::from_value(record["receipt"].clone())
        .map_err(|_| "its receipt is not a receipt".to_owned())?;
    if Some(receipt.id.as_str()) != record["id"].as_str() {
        return Err("its receipt is for another envelope".into());
    }
    receipt
        .verify(&key)
        .map(|_| ())
        .map_err(|e| format!("its receipt does not verify with {gateway}'s log_key: {e}"))
}
