//! The cast of the story: each agency's mutual-TLS client and envelope
//! signer, and the tally of what has happened so far, shared by every
//! chapter.

use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::cli::demo::federation::Federation;
use crate::cli::demo::out::Out;
use crate::cli::demo::summary::{Row, Tally};
use crate::cli::error::Error;
use crate::cli::session::{self, expect};
use crate::client::{Client, EnvelopeSigner, Protocol, Reply};
use xgate_server::kind::Kind;
use xgate_server::pki::REGISTRY;
use xgate_server::receipt::Receipt;
use xgate_server::registry::{AgencyId, Registry};

/// How long an envelope the demo signs is valid.
const LIFETIME_SECS: i64 = 120;

/// The agencies' connections and what has happened so far.
pub(super) struct Story<'f, 'o, 'w> {
    pub(super) federation: &'f Federation,
    pub(super) out: &'o mut Out<'w>,
    pub(super) runtime: tokio::runtime::Runtime,
    pub(super) agencies: Vec<Agency>,
    pub(super) registry: Registry,
    pub(super) tally: Tally,
}

/// One agency: its mutual-TLS client and its envelope signer.
pub(super) struct Agency {
    pub(super) client: Client,
    pub(super) signer: EnvelopeSigner,
}

impl<'f, 'o, 'w> Story<'f, 'o, 'w> {
    pub(super) fn open(federation: &'f Federation, out: &'o mut Out<'w>) -> Result<Self, Error> {
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

    pub(super) fn setup(&mut self) -> Result<(), Error> {
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
    pub(super) fn submit<T: Serialize>(
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
        let jws = self.agencies[sender].signer.sign(
            &to_id,
            kind.as_str(),
            body,
            LIFETIME_SECS,
            Some(jti.to_owned()),
        )?;
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
    pub(super) fn get(&mut self, who: &str, path: &str) -> Result<Value, Error> {
        let reply = self.call(who, Method::GET, path)?;
        session::parse(&reply, path)
    }

    /// Sends a bodiless request as `who`; it must answer 200.
    pub(super) fn call(&mut self, who: &str, method: Method, path: &str) -> Result<Reply, Error> {
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
    pub(super) fn signer(&self, name: &str) -> &EnvelopeSigner {
        &self.agencies[self.index_of(name)].signer
    }

    /// Where agency `name`, one of [`NAMES`], is in `agencies`.
    /// What happened, once the story is told.
    pub(super) fn into_tally(self) -> Tally {
        self.tally
    }

    pub(super) fn index_of(&self, name: &str) -> usize {
        NAMES.iter().position(|n| *n == name).unwrap_or_default()
    }
}

/// The agencies of the story, the auditor last.
const NAMES: [&str; 5] = ["state", "treasury", "gsa", "hhs", "gao"];

/// The id of one of [`NAMES`].
pub(super) fn agency(name: &str) -> AgencyId {
    name.parse()
        .unwrap_or_else(|_| unreachable!("{name} is a valid agency id"))
}

/// The serialized name of a unit enum (`missing`, `discrepancy`).
pub(super) fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}
