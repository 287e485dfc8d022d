//! The story: who sends what, in order, through the real client stack
//! (mutual TLS as each agency, envelopes signed with each agency's key),
//! and what each step shows. Here are the agencies' connections and what
//! every step shares; the asset steps are in [`assets`], the medical steps
//! in [`medical`], the auditor's checks in [`audit`].
//!
//! Every tag, person and `jti` is fixed and synthetic, and the envelopes
//! are sent one after another, so the log indices (and so every line
//! printed) are the same on every run.

mod assets;
mod audit;
mod medical;

use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

use super::super::error::Error;
use super::super::session::{self, expect};
use super::federation::Federation;
use super::{Out, summary::Tally};
use crate::client::{Client, EnvelopeSigner, Protocol, Reply};
use xgate_server::kind::Kind;
use xgate_server::pki::REGISTRY;
use xgate_server::receipt::Receipt;
use xgate_server::registry::{AgencyId, Registry};

pub(super) use audit::after_stop;

/// How long an envelope the demo signs is valid.
const LIFETIME_SECS: i64 = 120;

/// One envelope of the story, for the summary and the auditor.
pub(super) struct Row {
    /// The step that sent it.
    pub step: usize,
    /// Its kind.
    pub kind: Kind,
    /// Sender.
    pub from: AgencyId,
    /// Recipient.
    pub to: AgencyId,
    /// The tag or request it is about.
    pub subject: String,
    /// Its receipt, as the gateway returned it.
    pub receipt: Receipt,
    /// Whether the auditor verified the receipt.
    pub verified: bool,
}

/// Tells the story against a running federation; returns what happened.
///
/// # Errors
/// Any step that does not go as told.
pub(super) fn tell(federation: &Federation, out: &mut Out<'_>) -> Result<Tally, Error> {
    let mut story = Story::open(federation, out)?;
    story.setup()?;
    assets::tell(&mut story)?;
    medical::tell(&mut story)?;
    audit::verify(&mut story)?;
    Ok(story.tally)
}

/// The agencies' connections and what has happened so far.
pub(super) struct Story<'f, 'o, 'w> {
    federation: &'f Federation,
    out: &'o mut Out<'w>,
    runtime: tokio::runtime::Runtime,
    agencies: Vec<Agency>,
    registry: Registry,
    tally: Tally,
}

/// One agency: its mutual-TLS client and its envelope signer.
struct Agency {
    client: Client,
    signer: EnvelopeSigner,
}

impl<'f, 'o, 'w> Story<'f, 'o, 'w> {
    fn open(federation: &'f Federation, out: &'o mut Out<'w>) -> Result<Self, Error> {
        let registry = Registry::load(&federation.pki.join(REGISTRY))?;
        let mut agencies = Vec::new();
        for name in NAMES {
            let id = agency(name);
            agencies.push(Agency {
                client: Client::for_agency(&federation.pki, &id, &federation.url, Protocol::Auto)?,
                signer: EnvelopeSigner::for_agency(&federation.pki, &id)?,
            });
        }
        Ok(Story {
            federation,
            out,
            runtime: session::runtime()?,
            agencies,
            registry,
            tally: Tally::default(),
        })
    }

    fn setup(&mut self) -> Result<(), Error> {
        let origin = self.federation.origin.clone();
        self.out.step(
            "start",
            &format!(
                "a gateway on a free loopback port, mutual TLS only; log {origin}, default policy"
            ),
        )?;
        self.out.more(
            "a development PKI: a federation CA, and for each agency a TLS certificate, \
             a signing key and an encryption key",
        )
    }

    /// Signs `body` as `from`, sends it to `to` with `jti`, and records its
    /// receipt; returns the receipt and the rest of the 201 answer.
    fn submit<T: Serialize>(
        &mut self,
        from: &str,
        to: &str,
        kind: Kind,
        body: &T,
        jti: &str,
        subject: &str,
    ) -> Result<(Receipt, Map<String, Value>), Error> {
        let body = match serde_json::to_value(body) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(Error::Request(format!(
                    "the body of {kind} is not an object"
                )));
            }
        };
        let (from_id, to_id) = (agency(from), agency(to));
        let sender = self.index_of(from);
        let jws = self.agencies[sender]
            .signer
            .sign(
                &to_id,
                kind.as_str(),
                body,
                LIFETIME_SECS,
                Some(jti.to_owned()),
            )
            .map_err(Error::Request)?;
        let reply = self
            .runtime
            .block_on(self.agencies[sender].client.submit(jws))?;
        expect(&reply, StatusCode::CREATED)?;
        let mut answer: Map<String, Value> = session::parse(&reply, "receipt")?;
        let mut extra = Map::new();
        if let Some(id) = answer.remove("reconciliation_id") {
            extra.insert("reconciliation_id".into(), id);
        }
        let receipt: Receipt = serde_json::from_value(Value::Object(answer))
            .map_err(|e| Error::Request(format!("the gateway's answer is not a receipt: {e}")))?;
        self.tally.rows.push(Row {
            step: self.out.step_number(),
            kind,
            from: from_id,
            to: to_id,
            subject: subject.to_owned(),
            receipt: receipt.clone(),
            verified: false,
        });
        Ok((receipt, extra))
    }

    /// GETs `path` as `who`; it must answer 200 with JSON.
    fn get(&mut self, who: &str, path: &str) -> Result<Value, Error> {
        let reply = self.call(who, Method::GET, path)?;
        session::parse(&reply, path)
    }

    /// Sends a bodiless request as `who`; it must answer 200.
    fn call(&mut self, who: &str, method: Method, path: &str) -> Result<Reply, Error> {
        let i = self.index_of(who);
        let reply = self.runtime.block_on(self.agencies[i].client.request(
            method,
            path,
            None,
            Vec::new(),
        ))?;
        expect(&reply, StatusCode::OK)?;
        Ok(reply)
    }

    /// The envelope signer of agency `name`, one of [`NAMES`].
    fn signer(&self, name: &str) -> &EnvelopeSigner {
        &self.agencies[self.index_of(name)].signer
    }

    /// Where agency `name`, one of [`NAMES`], is in `agencies`.
    fn index_of(&self, name: &str) -> usize {
        NAMES.iter().position(|n| *n == name).unwrap_or_default()
    }
}

/// The agencies of the story, the auditor last.
const NAMES: [&str; 5] = ["state", "treasury", "gsa", "hhs", "gao"];

/// The id of one of [`NAMES`].
fn agency(name: &str) -> AgencyId {
    name.parse()
        .unwrap_or_else(|_| unreachable!("{name} is a valid agency id"))
}

/// The serialized name of a unit enum (`missing`, `discrepancy`).
fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}
