//! The story: who sends what, in order, through the real client stack
//! (mutual TLS as each agency, envelopes signed with each agency's key),
//! and what each step shows. The asset steps are here, the medical steps
//! in [`medical`], the auditor's checks in [`audit`].
//!
//! Every tag, person and `jti` is fixed and synthetic, and the envelopes
//! are sent one after another, so the log indices (and so every line
//! printed) are the same on every run.

mod audit;
mod medical;

use std::time::Duration;

use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

use super::super::error::Error;
use super::super::session::{self, delivered_body, expect};
use super::events::Feed;
use super::federation::Federation;
use super::{Out, summary::Tally};
use crate::assets::model::{Answer, Holder, Observed, Offer, Register, Report};
use crate::assets::reconcile::Report as Reconciliation;
use crate::client::{Client, EnvelopeSigner, Protocol, Reply};
use crate::kind::Kind;
use crate::pki::REGISTRY;
use crate::receipt::Receipt;
use crate::registry::{AgencyId, Registry};

pub(super) use audit::after_stop;

/// How long an envelope the demo signs is valid.
const LIFETIME_SECS: i64 = 120;
/// How long the live discrepancy may take to arrive.
const LIVE_WAIT: Duration = Duration::from_secs(10);
/// Where treasury keeps its assets, and counts them.
const HQ: &str = "TRE-HQ-1";
/// The assets treasury registers: tag, category, description, holder.
const ASSETS: [(&str, &str, &str, &str); 5] = [
    ("LAP-001", "laptop", "ThinkPad T14", "trs-emp-0101"),
    ("LAP-002", "laptop", "ThinkPad T14", "trs-emp-0102"),
    ("LAP-003", "laptop", "Latitude 7440", "trs-emp-0103"),
    ("PHN-001", "phone", "Pixel 8", "trs-emp-0104"),
    ("PHN-002", "phone", "iPhone 15", "trs-emp-0105"),
];

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
    story.assets()?;
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

    fn assets(&mut self) -> Result<(), Error> {
        let treasury = agency("treasury");
        self.out.step(
            "register",
            &format!("treasury registers 3 laptops and 2 phones at {HQ}, each held by an employee"),
        )?;
        let mut first = None;
        let mut last = 0;
        for (tag, category, description, person) in ASSETS {
            let body = Register {
                tag: tag.into(),
                serial: format!("SN-{tag}"),
                category: category.into(),
                description: description.into(),
                holder: Holder {
                    agency: treasury.clone(),
                    person: person.into(),
                },
                location: HQ.into(),
            };
            let jti = format!("demo-register-{tag}");
            let (receipt, _) = self.submit(
                "treasury",
                "treasury",
                Kind::AssetRegister,
                &body,
                &jti,
                tag,
            )?;
            first.get_or_insert(receipt.log_index);
            last = receipt.log_index;
        }
        let tags: Vec<&str> = ASSETS.iter().map(|a| a.0).collect();
        self.out.more(&format!(
            "{}: entries {}-{last}, a receipt for each",
            tags.join(", "),
            first.unwrap_or_default()
        ))?;

        self.out.step(
            "offer",
            "treasury offers LAP-002 to gsa employee gsa-emp-0042 (a loan to the field office)",
        )?;
        let offer = Offer {
            tag: "LAP-002".into(),
            to: Holder {
                agency: agency("gsa"),
                person: "gsa-emp-0042".into(),
            },
            reason: "loan to the field office".into(),
        };
        let offer_jti = "demo-offer-LAP-002";
        let (receipt, _) = self.submit(
            "treasury",
            "gsa",
            Kind::AssetTransferOffer,
            &offer,
            offer_jti,
            "LAP-002",
        )?;
        self.out.more(&format!(
            "offer {offer_jti}: entry {}; it waits in gsa's inbox",
            receipt.log_index
        ))?;

        self.accept()?;
        self.count()
    }

    fn accept(&mut self) -> Result<(), Error> {
        let inbox = self.get("gsa", "/v1/inbox")?;
        let items = inbox["envelopes"].as_array().cloned().unwrap_or_default();
        let item = items
            .iter()
            .find(|i| i["kind"] == Kind::AssetTransferOffer.as_str())
            .ok_or_else(|| Error::Request("the offer is not in gsa's inbox".into()))?;
        let body = delivered_body(
            item["jws"].as_str().unwrap_or_default(),
            &agency("treasury"),
            &agency("gsa"),
            &self.registry,
        )?;
        let tag = body["tag"].as_str().unwrap_or_default().to_owned();
        let id = item["id"].as_str().unwrap_or_default().to_owned();
        self.call("gsa", Method::POST, &format!("/v1/inbox/{id}/ack"))?;
        let view = self.get("gsa", &format!("/v1/assets/{tag}"))?;
        let offer = view["offer"]["jti"].as_str().unwrap_or_default().to_owned();
        self.out.step(
            "accept",
            &format!(
                "gsa reads the offer of {tag} from its inbox (treasury's signature checks out) and accepts"
            ),
        )?;
        let answer = Answer {
            tag: tag.clone(),
            offer,
            location: Some("GSA-FO-7".into()),
        };
        let (receipt, _) = self.submit(
            "gsa",
            "treasury",
            Kind::AssetTransferAccept,
            &answer,
            "demo-accept-LAP-002",
            &tag,
        )?;
        let view = self.get("gsa", &format!("/v1/assets/{tag}"))?;
        let chain: Vec<&str> = view["chain"]
            .as_array()
            .map(|c| c.iter().filter_map(|e| e["kind"].as_str()).collect())
            .unwrap_or_default();
        self.out.more(&format!(
            "entry {}: {tag} is now held by {} of {} at {}; custody chain: {}",
            receipt.log_index,
            view["holder"]["person"].as_str().unwrap_or("?"),
            view["holder"]["agency"].as_str().unwrap_or("?"),
            view["location"].as_str().unwrap_or("?"),
            chain.join(", ")
        ))
    }

    fn count(&mut self) -> Result<(), Error> {
        self.out.step(
            "watch",
            "treasury opens the live reconciliation feed (Server-Sent Events)",
        )?;
        let treasury = self.agency("treasury");
        let mut feed = self
            .runtime
            .block_on(Feed::open(&self.agencies[treasury].client))?;

        self.out.step(
            "count",
            &format!("treasury counts {HQ} and finds LAP-001, LAP-003 and PHN-001"),
        )?;
        let report = Report {
            location: HQ.into(),
            reported_by: "trs-emp-0900".into(),
            observed: ["LAP-001", "LAP-003", "PHN-001"]
                .into_iter()
                .map(|tag| Observed {
                    tag: tag.into(),
                    person: None,
                })
                .collect(),
        };
        let (receipt, extra) = self.submit(
            "treasury",
            "treasury",
            Kind::InventoryReport,
            &report,
            "demo-count-TRE-HQ-1",
            HQ,
        )?;
        let id = extra
            .get("reconciliation_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let found: Reconciliation =
            serde_json::from_value(self.get("treasury", &format!("/v1/reconciliations/{id}"))?)
                .map_err(|_| {
                    Error::Request("the reconciliation report is not the JSON expected".into())
                })?;
        let list = |tags: &[String]| {
            if tags.is_empty() {
                "none".to_owned()
            } else {
                tags.join(", ")
            }
        };
        self.out.more(&format!(
            "entry {}, reconciliation report {id}: {} observed; missing: {}; unexpected: {}",
            receipt.log_index,
            found.observed,
            list(&found.missing),
            list(&found.unexpected)
        ))?;

        self.out.step(
            "live",
            "the discrepancy arrives on treasury's open feed as it commits",
        )?;
        let notice = self
            .runtime
            .block_on(feed.next_within(LIVE_WAIT))?
            .ok_or_else(|| {
                Error::Request(format!(
                    "no discrepancy arrived on the feed within {} s",
                    LIVE_WAIT.as_secs()
                ))
            })?;
        drop(feed);
        self.tally.live_events += 1;
        self.out.more(&format!(
            "event {}: {} {} {} at {}, opened by {} entry {}",
            notice.id,
            name(&notice.event),
            name(&notice.kind),
            notice.tag,
            notice.location,
            notice.by_kind,
            notice.log_index
        ))?;
        let view = self.get("treasury", &format!("/v1/assets/{}", notice.tag))?;
        self.out.more(&format!(
            "{} now shows status {}",
            notice.tag,
            view["status"].as_str().unwrap_or("?")
        ))
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
        let sender = self.agency(from);
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
        let i = self.agency(who);
        let reply = self.runtime.block_on(self.agencies[i].client.request(
            method,
            path,
            None,
            Vec::new(),
        ))?;
        expect(&reply, StatusCode::OK)?;
        Ok(reply)
    }

    fn agency(&self, name: &str) -> usize {
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
