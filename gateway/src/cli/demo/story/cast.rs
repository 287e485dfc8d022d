//! The cast of the story: each agency's mutual-TLS client and envelope
//! signer, and the tally of what has happened so far, shared by every
//! chapter.

use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

use super::outbox::delivery;
use crate::cli::demo::federation::{Federation, Site};
use crate::cli::demo::out::Out;
use crate::cli::demo::summary::{Row, Tally};
use crate::cli::error::Error;
use crate::cli::session::{self, expect};
use crate::client::{Client, EnvelopeSigner, Protocol, Reply};

/// How the line naming a log's auditor's page starts (its port changes
/// from run to run).
const PAGE_LINE: &str = "auditor's page:";
use xgate_ledger::NoteVerifier;
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

/// An envelope the story sent, as the gateways logged it.
pub(super) struct Sent {
    /// The sender's receipt, from its own gateway.
    pub(super) receipt: Receipt,
    /// For an envelope to an agency another gateway serves, that
    /// gateway's receipt (proof of delivery), read from the sender's
    /// outbox and verified with the registry's `log_key` of that gateway.
    pub(super) delivery: Option<Receipt>,
    /// The rest of the 201 answer (an inventory report's
    /// `reconciliation_id`).
    pub(super) extra: Map<String, Value>,
}

impl Sent {
    /// Its receipt from the recipient's gateway: the delivery receipt, or
    /// the sender's when one gateway serves both.
    pub(super) fn at_recipient(&self) -> &Receipt {
        self.delivery.as_ref().unwrap_or(&self.receipt)
    }
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
            let url = &federation.site_of(&id).url;
            agencies.push(Agency {
                client: Client::for_agency(&federation.pki, &id, url, Protocol::Auto)?,
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
        if self.federation.is_federated() {
            return self.setup_federated();
        }
        let origin = self.federation.sites[0].origin.clone();
        self.out.step(
            "start",
            &format!(
                "a gateway on a free loopback port, mutual TLS only; log {origin}, the default \
                 policy's rules and the demo's contracts"
            ),
        )?;
        self.out.more(
            "a development PKI: a federation CA, and for each agency a TLS certificate, \
             a signing key and an encryption key",
        )?;
        self.auditors_page()
    }

    /// Where each log's auditor's page is, while the demo runs.
    fn auditors_page(&mut self) -> Result<(), Error> {
        for site in &self.federation.sites {
            self.out.more(&format!(
                "{PAGE_LINE} {}/ ({})",
                site.public_url,
                site.name()
            ))?;
        }
        Ok(())
    }

    fn setup_federated(&mut self) -> Result<(), Error> {
        let federation = self.federation;
        self.out.step(
            "start",
            &format!(
                "{} gateways on free loopback ports, mutual TLS only, each with its own data \
                 directory and log, and the default policy's rules and the demo's contracts:",
                federation.sites.len()
            ),
        )?;
        for site in &federation.sites {
            // The agencies first, then the auditors.
            let (auditors, agencies): (Vec<&AgencyId>, Vec<&AgencyId>) = site
                .serves
                .iter()
                .partition(|a| self.registry.is_auditor(a));
            let serves: Vec<String> = agencies
                .iter()
                .map(|a| a.to_string())
                .chain(auditors.iter().map(|a| format!("auditor {a}")))
                .collect();
            self.out.more(&format!(
                "  {:<12}serves {:<18}log {}",
                site.name(),
                serves.join(", "),
                site.origin
            ))?;
        }
        self.out.more(
            "a federation PKI (xgate certs init --gateway ID=URL --agency ID@GATEWAY): a CA; for \
             each gateway a TLS certificate, a log key and a witness key; for each agency a TLS \
             certificate, a signing key and an encryption key; the registry lists each \
             gateway's URL and keys, and the gateway that serves each agency",
        )?;
        self.out.more(
            "an envelope to an agency another gateway serves is logged by the sender's gateway \
             (the sender's receipt), forwarded over mutual TLS and logged by the recipient's \
             (the delivery receipt, read from the sender's outbox and verified with that \
             gateway's log key from the registry)",
        )?;
        self.auditors_page()
    }

    /// Signs `body` as `from`, sends it to `to` with `jti`, and records its
    /// receipt; for a recipient another gateway serves, waits for the
    /// delivery receipt in the sender's outbox and checks it.
    pub(super) fn submit<T: Serialize>(
        &mut self,
        from: &str,
        to: &str,
        kind: Kind,
        body: &T,
        jti: &str,
        subject: &str,
    ) -> Result<Sent, Error> {
        let (from_id, to_id) = (agency(from), agency(to));
        let sender = self.index_of(from);
        let reply = self.send(from, to, kind, body, jti)?;
        expect(&reply, StatusCode::CREATED)?;
        let mut answer: Map<String, Value> = session::parse(&reply, "receipt")?;
        let mut extra = Map::new();
        if let Some(id) = answer.remove("reconciliation_id") {
            extra.insert("reconciliation_id".into(), id);
        }
        let receipt: Receipt = serde_json::from_value(Value::Object(answer))
            .map_err(|e| Error::Request(format!("the gateway's answer is not a receipt: {e}")))?;
        let delivery =
            match self.federation.site_of(&from_id).id == self.federation.site_of(&to_id).id {
                true => None,
                false => Some(self.runtime.block_on(delivery(
                    &mut self.agencies[sender].client,
                    &self.registry,
                    &receipt.id,
                ))?),
            };
        self.tally.rows.push(Row {
            step: self.out.step_number(),
            kind,
            from: from_id,
            to: to_id,
            subject: subject.to_owned(),
            receipt: receipt.clone(),
            delivery: delivery.clone(),
            verified: false,
        });
        Ok(Sent {
            receipt,
            delivery,
            extra,
        })
    }

    /// Signs `body` as `from`, sends it to `to` with `jti` and expects the
    /// gateway to refuse it; returns the status and the error code it
    /// answered. Nothing is recorded: a refused envelope is not logged.
    pub(super) fn refused<T: Serialize>(
        &mut self,
        from: &str,
        to: &str,
        kind: Kind,
        body: &T,
        jti: &str,
    ) -> Result<(u16, String), Error> {
        let reply = self.send(from, to, kind, body, jti)?;
        match expect(&reply, StatusCode::CREATED) {
            Ok(()) => Err(Error::Request(format!(
                "the gateway accepted {kind} {jti}, which it should have refused"
            ))),
            Err(Error::Refused { status, code, .. }) => Ok((status, code)),
            Err(e) => Err(e),
        }
    }

    /// Signs `body` as `from` and submits it to `to` with `jti`; the
    /// gateway's reply, whatever it is.
    fn send<T: Serialize>(
        &mut self,
        from: &str,
        to: &str,
        kind: Kind,
        body: &T,
        jti: &str,
    ) -> Result<Reply, Error> {
        let body = match serde_json::to_value(body) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(Error::Request(format!(
                    "the body of {kind} is not an object"
                )));
            }
        };
        let sender = self.index_of(from);
        let jws = self.agencies[sender].signer.sign(
            &agency(to),
            kind.as_str(),
            body,
            LIFETIME_SECS,
            Some(jti.to_owned()),
        )?;
        Ok(self
            .runtime
            .block_on(self.agencies[sender].client.submit(jws))?)
    }

    /// Where `sent` was logged: `entry N` on a single gateway; in a
    /// federation `GATEWAY entry N`, and `, delivered as GATEWAY entry M`
    /// when another gateway logged it too.
    pub(super) fn logged(&self, sent: &Sent) -> String {
        match &sent.delivery {
            Some(d) => format!(
                "{}, delivered as {}",
                self.entry(&sent.receipt),
                self.entry(d)
            ),
            None => self.entry(&sent.receipt),
        }
    }

    /// `entry N`, or in a federation `GATEWAY entry N`: the entry
    /// `receipt` is for, in the log that gave it.
    pub(super) fn entry(&self, receipt: &Receipt) -> String {
        format!(
            "{}entry {}",
            self.prefix(self.federation.site_by_origin(origin(receipt))),
            receipt.log_index
        )
    }

    /// `GATEWAY ` in a federation, nothing on a single gateway: what
    /// names `site` before an entry.
    pub(super) fn prefix(&self, site: &Site) -> String {
        match self.federation.is_federated() {
            true => format!("{} ", site.name()),
            false => String::new(),
        }
    }

    /// The gateway of agency `name`, one of [`NAMES`].
    pub(super) fn site(&self, name: &str) -> &'f Site {
        self.federation.site_of(&agency(name))
    }

    /// Verifies `receipt` with the key the registry lists for the log that
    /// gave it (the single gateway's log key, without a federation).
    pub(super) fn verify_receipt(&self, receipt: &Receipt) -> Result<(), Error> {
        let origin = origin(receipt);
        let key = match self.registry.is_federated() {
            true => self
                .registry
                .gateways()
                .filter_map(|g| NoteVerifier::parse(&g.log_key).ok())
                .find(|k| k.name() == origin)
                .ok_or_else(|| {
                    Error::Request(format!("no gateway of the registry has the log {origin}"))
                })?,
            false => self.federation.sites[0].verifier.clone(),
        };
        receipt.verify(&key).map(|_| ()).map_err(|e| {
            Error::Request(format!(
                "the receipt of {origin} entry {} does not verify: {e}",
                receipt.log_index
            ))
        })
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

    /// What happened, once the story is told.
    pub(super) fn into_tally(self) -> Tally {
        self.tally
    }

    /// Where agency `name`, one of [`NAMES`], is in `agencies`.
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

/// The origin of the log that gave `receipt`: its checkpoint's first line.
pub(super) fn origin(receipt: &Receipt) -> &str {
    receipt.checkpoint.lines().next().unwrap_or_default()
}

/// The serialized name of a unit enum (`missing`, `discrepancy`).
pub(super) fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}
