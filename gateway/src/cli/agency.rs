//! The agency-side commands: `xgate send` signs a JSON body into an
//! envelope and submits it, printing the receipt; `xgate inbox` lists (and
//! with `--ack` acknowledges) the agency's undelivered envelopes.
//!
//! ```text
//! xgate send --pki DIR --as ID --to ID --gateway URL [--kind KIND] FILE
//! xgate inbox --pki DIR --as ID --gateway URL [--ack]
//! ```
//!
//! `send` prints the receipt as one line of JSON, exactly as the gateway
//! returned it. `inbox` prints one line of JSON per envelope, oldest first:
//! `{"id","from","kind","body","jws","receipt"}`, where `body` is the
//! envelope's body after its signature was checked against the sender's key
//! in the registry. A refusal by the gateway is an error naming its code.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use http::{Method, StatusCode};
use serde_json::{Map, Value};

use super::error::Error;
use super::session::{LIFETIME_SECS, delivered_body, emit, expect, runtime};
use crate::client::{Client, EnvelopeSigner, Protocol};
use crate::pki::REGISTRY;
use crate::registry::{AgencyId, Registry};

/// Arguments of `xgate send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// PKI directory holding the sender's keys (`xgate certs init`).
    #[arg(long, value_name = "DIR")]
    pub pki: PathBuf,
    /// The sending agency.
    #[arg(long = "as", value_name = "ID")]
    pub sender: AgencyId,
    /// The recipient agency.
    #[arg(long, value_name = "ID")]
    pub to: AgencyId,
    /// The gateway, as https://host:port.
    #[arg(long, value_name = "URL")]
    pub gateway: String,
    /// The envelope kind.
    #[arg(long, value_name = "KIND", default_value = "record.send")]
    pub kind: String,
    /// A file holding the body: one JSON object.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Arguments of `xgate inbox`.
#[derive(Debug, Args)]
pub struct InboxArgs {
    /// PKI directory holding the agency's keys and the registry.
    #[arg(long, value_name = "DIR")]
    pub pki: PathBuf,
    /// The agency whose inbox to read.
    #[arg(long = "as", value_name = "ID")]
    pub agency: AgencyId,
    /// The gateway, as https://host:port.
    #[arg(long, value_name = "URL")]
    pub gateway: String,
    /// Acknowledge each envelope once printed, removing it from the inbox.
    #[arg(long)]
    pub ack: bool,
}

impl SendArgs {
    /// Signs and submits the envelope; prints the receipt.
    ///
    /// # Errors
    /// A bad body file or key, a transport failure, or the gateway's refusal.
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let text = std::fs::read(&self.file)
            .map_err(|e| Error::Request(format!("cannot read {}: {e}", self.file.display())))?;
        let body: Map<String, Value> = serde_json::from_slice(&text).map_err(|_| {
            Error::Request(format!(
                "{} does not hold one JSON object",
                self.file.display()
            ))
        })?;
        let signer = EnvelopeSigner::for_agency(&self.pki, &self.sender)?;
        let jws = signer
            .sign(&self.to, &self.kind, body, LIFETIME_SECS, None)
            .map_err(Error::Request)?;
        let mut client =
            Client::for_agency(&self.pki, &self.sender, &self.gateway, Protocol::Auto)?;
        let reply = runtime()?.block_on(client.submit(jws))?;
        expect(&reply, StatusCode::CREATED)?;
        emit(stdout, &reply.body)
    }
}

impl InboxArgs {
    /// Prints (and optionally acknowledges) every envelope in the inbox.
    ///
    /// # Errors
    /// A transport failure, the gateway's refusal, or an envelope whose
    /// signature does not check out against the registry.
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let registry = Registry::load(&self.pki.join(REGISTRY))?;
        let mut client =
            Client::for_agency(&self.pki, &self.agency, &self.gateway, Protocol::Auto)?;
        let runtime = runtime()?;
        let mut after: Option<u64> = None;
        loop {
            let path = match after {
                Some(a) => format!("/v1/inbox?after={a}"),
                None => "/v1/inbox".to_owned(),
            };
            let reply = runtime.block_on(client.request(Method::GET, &path, None, Vec::new()))?;
            expect(&reply, StatusCode::OK)?;
            let page: Value = serde_json::from_slice(&reply.body)
                .map_err(|_| Error::Request("the gateway's inbox page is not JSON".into()))?;
            let items = page["envelopes"].as_array().cloned().unwrap_or_default();
            let mut ids = Vec::with_capacity(items.len());
            for mut item in items {
                let body = self.checked_body(&item, &registry)?;
                item["body"] = Value::Object(body);
                let line = serde_json::to_vec(&item)
                    .map_err(|e| Error::Stdout(std::io::Error::other(e)))?;
                emit(stdout, &line)?;
                ids.push(item["id"].clone());
            }
            if self.ack && !ids.is_empty() {
                // The page, printed, is acknowledged in one durable write.
                let body = serde_json::json!({ "ids": ids }).to_string().into_bytes();
                let ack = client.request(
                    Method::POST,
                    "/v1/inbox/ack",
                    Some("application/json"),
                    body,
                );
                let reply = runtime.block_on(ack)?;
                expect(&reply, StatusCode::OK)?;
            }
            match page["next"].as_u64() {
                Some(n) => after = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// The envelope's body, after checking its signature with the sender's
    /// registered key.
    fn checked_body(&self, item: &Value, registry: &Registry) -> Result<Map<String, Value>, Error> {
        let from: AgencyId = item["from"]
            .as_str()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| Error::Request("an inbox item names no valid sender".into()))?;
        let jws = item["jws"].as_str().unwrap_or_default();
        delivered_body(jws, &from, &self.agency, registry)
    }
}
