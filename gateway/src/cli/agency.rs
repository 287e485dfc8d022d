//! The agency-side commands: `xgate send` signs a JSON body into an
//! envelope and submits it, printing the receipt; `xgate inbox` lists (and
//! with `--ack` acknowledges) the agency's undelivered envelopes.
//!
//! ```text
//! xgate send --pki DIR --as ID --to ID --gateway URL [--kind KIND] [--plain] FILE
//! xgate inbox --pki DIR --as ID --gateway URL [--ack]
//! ```
//!
//! A record is end to end by default: `send` seals it ([`xgate_server::sealed`]),
//! signed with the sender's key and encrypted to the recipient's
//! encryption key from the sender's own copy of the registry, so the
//! gateway carries `{"sealed":"<JWE>"}` and cannot read it. `--plain`
//! sends it in clear (signed only), for a recipient whose client cannot
//! open sealed records. `send` prints the receipt as one line of JSON,
//! exactly as the gateway returned it.
//!
//! `inbox` prints one line of JSON per envelope, oldest first:
//! `{"id","from","kind","body","sealed","jws","receipt"}`. `body` is the
//! envelope's body after its signature was checked against the sender's key
//! in the agency's own copy of the registry; for a sealed record or medical
//! request, it is what the sealed part holds, opened with the agency's
//! private encryption key (`DIR/<agency>/encryption.jwk`), its inner
//! signature checked the same way, and its sender, recipient, `jti` and
//! kind checked against the envelope's (`sealed` is then `true`). An
//! envelope that does not check out is printed with `"body": null` and
//! `"refused": "<why>"` beside its JWS (the evidence), is acknowledged
//! with the others under `--ack`, and does not stop the listing: one bad
//! envelope from a sender must not block an inbox. The run then ends with
//! an error counting the refusals (exit code 1). A refusal by the gateway
//! is an error naming its code.
//!
//! A contract's act sent to the agency (docs/contracts.md: `notify`,
//! `escalate`, an offer answered on its behalf) is a notice, not an
//! envelope: its `kind` is `contract.act`, its `jws` empty, and its `body`
//! the act entry its receipt proves (the receipt's entry, whose SHA-256 is
//! the id), checked against the log key the registry names for the agency's
//! gateway when it names one.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use http::{Method, StatusCode};
use serde_json::{Map, Value};

use josekit::jwk::Jwk;

use super::error::Error;
use super::session::{LIFETIME_SECS, delivered, emit, encryption_key, expect, runtime};
use crate::client::{Client, EnvelopeSigner, Protocol, random_jti};
use crate::seal::{self, Binding};
use base64::Engine as _;
use xgate_ledger::NoteVerifier;
use xgate_server::contracts::act::{ACT_KIND, ActEntry};
use xgate_server::envelope::Verifiers;
use xgate_server::kind::Kind;
use xgate_server::pki::{ENCRYPTION_JWK, REGISTRY};
use xgate_server::receipt::Receipt;
use xgate_server::registry::{AgencyId, Registry};

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
    /// Send a record in clear (signed, not encrypted): the gateway's
    /// operator can read it. By default a record is sealed to the
    /// recipient's registered encryption key.
    #[arg(long)]
    pub plain: bool,
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
        let jti = random_jti()?;
        let body = if self.kind == Kind::RecordSend.as_str() && !self.plain {
            self.sealed(&signer, &jti, body)?
        } else {
            body
        };
        let jws = signer.sign(&self.to, &self.kind, body, LIFETIME_SECS, Some(jti))?;
        let mut client =
            Client::for_agency(&self.pki, &self.sender, &self.gateway, Protocol::Auto)?;
        let reply = runtime()?.block_on(client.submit(jws))?;
        expect(&reply, StatusCode::CREATED)?;
        emit(stdout, &reply.body)
    }
}

impl SendArgs {
    /// `body` sealed for the envelope `jti` to the recipient: the body
    /// `{"sealed":"<JWE>"}`.
    fn sealed(
        &self,
        signer: &EnvelopeSigner,
        jti: &str,
        body: Map<String, Value>,
    ) -> Result<Map<String, Value>, Error> {
        // The sender's own copy of the registry: never a key the gateway
        // names.
        let registry = Registry::load(&self.pki.join(REGISTRY))?;
        let key = &registry
            .get(&self.to)
            .ok_or_else(|| Error::Request(format!("{} is not in your registry", self.to)))?
            .encryption_key;
        let binding = Binding {
            iss: self.sender.clone(),
            aud: self.to.clone(),
            jti: jti.to_owned(),
            kind: Kind::RecordSend,
        };
        let part = seal::seal(signer, key, &binding, body).map_err(|e| {
            Error::Request(format!(
                "cannot seal the record to {}'s encryption key: {e} (--plain sends it in clear)",
                self.to
            ))
        })?;
        Ok(Map::from_iter([(
            seal::MEMBER.to_owned(),
            Value::String(part),
        )]))
    }
}

/// An envelope's body as checked, and whether it came sealed.
type Checked = (Map<String, Value>, bool);

impl InboxArgs {
    /// Prints (and optionally acknowledges) every envelope in the inbox.
    ///
    /// # Errors
    /// A transport failure, the gateway's refusal, or (after every page is
    /// printed) the count of envelopes that did not check out against the
    /// registry.
    pub fn run(self, stdout: &mut dyn Write) -> Result<(), Error> {
        let registry = Registry::load(&self.pki.join(REGISTRY))?;
        let verifiers =
            Verifiers::from_registry(&registry).map_err(|e| Error::Request(e.to_string()))?;
        let mut key = None;
        let mut client =
            Client::for_agency(&self.pki, &self.agency, &self.gateway, Protocol::Auto)?;
        let runtime = runtime()?;
        let mut after: Option<u64> = None;
        let mut refused = 0usize;
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
                match self.checked_body(&item, &registry, &verifiers, &mut key)? {
                    Ok((body, sealed)) => {
                        item["body"] = Value::Object(body);
                        item["sealed"] = Value::Bool(sealed);
                    }
                    // Printed with the reason and its JWS (the evidence),
                    // never its body; the envelopes after it go on, so
                    // one bad envelope cannot block an inbox.
                    Err(reason) => {
                        refused += 1;
                        item["body"] = Value::Null;
                        item["refused"] = Value::String(reason);
                    }
                }
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
                None if refused == 0 => return Ok(()),
                None => {
                    return Err(Error::Request(format!(
                        "{refused} envelope(s) refused: printed with \"refused\" and the reason{}",
                        if self.ack { ", and acknowledged" } else { "" }
                    )));
                }
            }
        }
    }

    /// The envelope's body, after checking its signature with the sender's
    /// registered key, and whether it was sealed: a sealed part is opened
    /// with the agency's encryption key (`key`, read on first use) and
    /// checked as [`seal::unseal`] says.
    ///
    /// The outer error is this client's own failure (its key cannot be
    /// read) and stops the run; the inner one is the envelope's refusal.
    fn checked_body(
        &self,
        item: &Value,
        registry: &Registry,
        verifiers: &Verifiers,
        key: &mut Option<Jwk>,
    ) -> Result<Result<Checked, String>, Error> {
        if item["kind"] == ACT_KIND {
            return Ok(act_notice(item, registry, &self.agency).map(|act| (act, false)));
        }
        let Some(from) = item["from"]
            .as_str()
            .and_then(|f| f.parse::<AgencyId>().ok())
        else {
            return Ok(Err("the inbox item names no valid sender".into()));
        };
        let jws = item["jws"].as_str().unwrap_or_default();
        let envelope = match delivered(jws, &from, &self.agency, registry, verifiers) {
            Ok(envelope) => envelope,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if !seal::is_sealed(&envelope) {
            return Ok(Ok((envelope.body, false)));
        }
        let key = match key {
            Some(key) => key,
            None => key.insert(encryption_key(
                &self.pki.join(self.agency.as_str()).join(ENCRYPTION_JWK),
            )?),
        };
        Ok(match seal::unseal(&envelope, key, verifiers) {
            Ok(Some(body)) => Ok((body, true)),
            Ok(None) => Ok((envelope.body, false)),
            Err(e) => Err(format!("the sealed part is refused: {e}")),
        })
    }
}

/// A contract's act in the inbox (a notice, not an envelope: no agency
/// signed it): the act its receipt proves, whose SHA-256 is the item's id.
/// The receipt is checked against the log key the registry names for `me`'s
/// gateway, when it names one (a federation's registry does).
fn act_notice(
    item: &Value,
    registry: &Registry,
    me: &AgencyId,
) -> Result<Map<String, Value>, String> {
    let receipt: Receipt = serde_json::from_value(item["receipt"].clone())
        .map_err(|_| "the notice's receipt is malformed".to_owned())?;
    if item["id"].as_str() != Some(receipt.id.as_str()) {
        return Err("the notice's receipt is for another id".into());
    }
    let entry = base64::engine::general_purpose::STANDARD
        .decode(&receipt.entry)
        .map_err(|_| "the notice's receipt holds no entry".to_owned())?;
    ActEntry::parse(&entry).map_err(|e| format!("the notice is not an act: {e}"))?;
    let key = registry
        .gateway_of(me)
        .map(|g| NoteVerifier::parse(&g.log_key))
        .transpose()
        .map_err(|e| format!("the registry's log key is unusable: {e}"))?;
    match key {
        Some(key) => receipt.verify(&key).map(drop),
        // Without a key, the receipt is checked as far as it goes alone.
        None => receipt.verify_unsigned().map(drop),
    }
    .map_err(|e| format!("the notice's receipt does not verify: {e}"))?;
    match serde_json::from_slice(&entry) {
        Ok(Value::Object(act)) => Ok(act),
        _ => Err("the notice is not an act".into()),
    }
}
