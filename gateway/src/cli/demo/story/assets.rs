//! The asset steps (docs/assets.md): treasury registers laptops and
//! phones, hands one to a GSA employee (offer, then accept from GSA's
//! inbox), and counts its headquarters while its live reconciliation feed
//! is open, so the missing phone's discrepancy arrives as it commits.

use std::time::Duration;

use http::Method;
use serde_json::Value;

use super::cast::{Story, agency, name};
use crate::cli::demo::events::Feed;
use crate::cli::error::Error;
use crate::cli::session::delivered_body;
use xgate_server::assets::model::{Answer, Holder, Observed, Offer, Register, Report};
use xgate_server::assets::reconcile::{NoticeEvent, Report as Reconciliation};
use xgate_server::kind::Kind;
use xgate_server::receipt::Receipt;

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

/// Tells the asset steps.
///
/// # Errors
/// Any step that does not go as told.
pub(super) fn tell(story: &mut Story<'_, '_, '_>) -> Result<(), Error> {
    story.assets()
}

impl Story<'_, '_, '_> {
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
            let sent = self.submit(
                "treasury",
                "treasury",
                Kind::AssetRegister,
                &body,
                &jti,
                tag,
            )?;
            first.get_or_insert(sent.receipt.log_index);
            last = sent.receipt.log_index;
        }
        let tags: Vec<&str> = ASSETS.iter().map(|a| a.0).collect();
        self.out.more(&format!(
            "{}: {}entries {}-{last}, a receipt for each",
            tags.join(", "),
            self.prefix(self.site("treasury")),
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
        let sent = self.submit(
            "treasury",
            "gsa",
            Kind::AssetTransferOffer,
            &offer,
            offer_jti,
            "LAP-002",
        )?;
        self.out.more(&format!(
            "offer {offer_jti}: {}; it waits in gsa's inbox",
            self.logged(&sent)
        ))?;
        if sent.delivery.is_some() {
            let (from, to) = (self.site("treasury").name(), self.site("gsa").name());
            self.out.more(&format!(
                "{from} forwarded it with the asset's dossier (its card, and its custody events \
                 each with its receipt), so {to} holds LAP-002's state too"
            ))?;
            self.out.more(&format!(
                "treasury's outbox at {from} (GET /v1/outbox) holds {to}'s receipt, the proof of \
                 delivery: it verifies with {to}'s log_key from the registry"
            ))?;
        }

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
        let sent = self.submit(
            "gsa",
            "treasury",
            Kind::AssetTransferAccept,
            &answer,
            "demo-accept-LAP-002",
            &tag,
        )?;
        let view = self.get("gsa", &format!("/v1/assets/{tag}"))?;
        let held = |view: &Value| {
            format!(
                "{tag} is now held by {} of {} at {}",
                view["holder"]["person"].as_str().unwrap_or("?"),
                view["holder"]["agency"].as_str().unwrap_or("?"),
                view["location"].as_str().unwrap_or("?"),
            )
        };
        self.out.more(&format!(
            "{}: {}; custody chain{}: {}",
            self.logged(&sent),
            held(&view),
            match self.federation.is_federated() {
                true => format!(" at {}", self.site("gsa").name()),
                false => String::new(),
            },
            self.chain(&view)?
        ))?;
        if sent.delivery.is_some() {
            self.out.more(
                "each event with its receipt from the log that logged it, \
                 verified with that log's key from the registry",
            )?;
            let view = self.get("treasury", &format!("/v1/assets/{tag}"))?;
            self.out.more(&format!(
                "at {}, for treasury: {}",
                self.site("treasury").name(),
                held(&view)
            ))?;
        }
        Ok(())
    }

    /// The custody chain of `view`: its events' kinds; in a federation
    /// each with where its receipts say it was logged (the sender's
    /// gateway's, if the view carries it, then the log's that holds the
    /// event), every receipt verified with the registry's key of its log.
    pub(super) fn chain(&self, view: &Value) -> Result<String, Error> {
        let mut events = Vec::new();
        for event in view["chain"].as_array().into_iter().flatten() {
            let kind = event["kind"].as_str().unwrap_or("?");
            if !self.federation.is_federated() {
                events.push(kind.to_owned());
                continue;
            }
            let mut logged = Vec::new();
            for field in ["sender_receipt", "receipt"] {
                if event[field].is_null() {
                    continue;
                }
                let receipt: Receipt =
                    serde_json::from_value(event[field].clone()).map_err(|_| {
                        Error::Request(format!("the {kind} event's {field} is not a receipt"))
                    })?;
                self.verify_receipt(&receipt)?;
                logged.push(self.entry(&receipt));
            }
            if logged.is_empty() {
                return Err(Error::Request(format!("the {kind} event has no receipt")));
            }
            events.push(format!("{kind} ({})", logged.join(", ")));
        }
        Ok(events.join(", "))
    }

    fn count(&mut self) -> Result<(), Error> {
        self.out.step(
            "watch",
            "treasury opens the live reconciliation feed (Server-Sent Events)",
        )?;
        let treasury = self.index_of("treasury");
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
        let sent = self.submit(
            "treasury",
            "treasury",
            Kind::InventoryReport,
            &report,
            "demo-count-TRE-HQ-1",
            HQ,
        )?;
        let id = sent
            .extra
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
            "{}, reconciliation report {id}: {} observed; missing: {}; unexpected: {}",
            self.logged(&sent),
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
        if notice.event != NoticeEvent::Discrepancy || notice.tag != "PHN-002" {
            return Err(Error::Request(format!(
                "the feed sent {} {} for {}, not the discrepancy of PHN-002",
                name(&notice.event),
                name(&notice.kind),
                notice.tag
            )));
        }
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
}
