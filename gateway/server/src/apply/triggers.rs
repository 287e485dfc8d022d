//! What an applied envelope triggers, as contracts see it (issue 25): the
//! events of its entry, each with the records its trigger binds, read from
//! the entry's facts, its body and the state as the entry left it.
//!
//! The same function serves the live commit and a replay, over the same
//! facts and the same state, so both reach the same events with the same
//! bindings: the records hold only what the log and the state hold (never
//! the clock, never a person's identifier).
//!
//! ```text
//! every envelope          envelope:<kind> with entry
//!   asset kinds           + asset (as the entry left it)
//!   asset.transfer.offer  + offer; and offer.opened (entry, asset, offer)
//!   inventory.report      + report (its location and the tags seen)
//!   a grant made          grant.made (entry, grant): a break-the-glass
//!                         request or an approval
//!   each discrepancy the  discrepancy.opened or discrepancy.resolved
//!   entry opened or       (entry, discrepancy), in the order of its
//!   resolved              notices on the live feed
//! ```

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use xgate_ledger::StoreError;

use super::facts::Facts;
use super::state::{StateRead, read};
use super::{Named, Op, asset, medical};
use crate::assets::reconcile::{DiscrepancyKind, Notice, NoticeEvent, open_discrepancies};
use crate::assets::state as assets;
use crate::contracts::trigger::Trigger;
use crate::kind::Kind;
use crate::medical::state as cases;
use crate::registry::AgencyId;

/// One event an entry causes, and what a condition on it reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Its trigger.
    pub trigger: Trigger,
    /// Each name the trigger binds, as JSON.
    pub bindings: BTreeMap<&'static str, Value>,
}

/// The events of the envelope of `kind` with body `op` and `facts`, whose
/// entry names `named`, over `state` as its entry left it.
///
/// # Errors
/// A storage failure reading the asset.
pub fn events(
    op: &Op,
    kind: Kind,
    facts: &Facts<'_>,
    named: Named<'_>,
    state: &impl StateRead,
) -> Result<Vec<Event>, StoreError> {
    let entry = entry(kind, facts, named);
    let mut first = BTreeMap::from([("entry", entry.clone())]);
    let mut more = Vec::new();
    match op {
        Op::Asset(op) => {
            if let Some(asset) = asset_record(op.tag(), facts.time, state)? {
                first.insert("asset", asset);
            }
            let offer = |to: &AgencyId| {
                json!({
                    "jti": facts.jti,
                    "from": facts.sender.as_str(),
                    "to": to.as_str(),
                    "expires": facts.expires,
                })
            };
            match op {
                asset::Op::Offer(made) => {
                    first.insert("offer", offer(&made.to.agency));
                    more.push(Event {
                        trigger: Trigger::OfferOpened,
                        bindings: first.clone(),
                    });
                }
                // Forwarded here by the holder's gateway: its envelope binds
                // the offer as the type check says; it was opened (and
                // `offer.opened` fired) at the gateway it was made at.
                asset::Op::OfferIn(incoming) => {
                    first.insert("offer", offer(&incoming.offer.to.agency));
                }
                asset::Op::Report(report) => {
                    let observed: Vec<&str> =
                        report.observed.iter().map(|o| o.tag.as_str()).collect();
                    first.insert(
                        "report",
                        json!({ "location": report.location, "observed": observed }),
                    );
                }
                asset::Op::Register(_)
                | asset::Op::Accept(_)
                | asset::Op::Reject(_)
                | asset::Op::Approve(_)
                | asset::Op::Deny(_) => {}
            }
            more.extend(notice_events(&entry, facts.log_index, facts.sender, state)?);
        }
        Op::Medical(op) => {
            if let Some(grant) = grant_record(op, facts, state)? {
                more.push(Event {
                    trigger: Trigger::GrantMade,
                    bindings: BTreeMap::from([("entry", entry), ("grant", grant)]),
                });
            }
        }
        Op::Record(_) => {}
    }
    let mut all = vec![Event {
        trigger: Trigger::Envelope(kind),
        bindings: first,
    }];
    all.extend(more);
    Ok(all)
}

/// An event for each discrepancy the entry at `index` opened or resolved
/// (an envelope of `agency`'s, or a contract's act on its behalf): the
/// notices it wrote, in order, each bound with `entry`.
///
/// # Errors
/// A storage failure reading a notice.
pub fn notice_events(
    entry: &Value,
    index: u64,
    agency: &AgencyId,
    state: &impl StateRead,
) -> Result<Vec<Event>, StoreError> {
    let mut found = Vec::new();
    for seq in 0u32.. {
        let key = assets::notice_key(index, seq);
        let Some(notice) = read::<Notice>(state, &key)? else {
            break;
        };
        let trigger = match notice.event {
            NoticeEvent::Discrepancy => Trigger::DiscrepancyOpened,
            NoticeEvent::Resolved => Trigger::DiscrepancyResolved,
        };
        let discrepancy = json!({
            "type": notice.kind,
            "tag": notice.tag,
            "location": notice.location,
            "reconciliation": notice.reconciliation_id,
            // The agency whose entry opened or resolved it.
            "agency": agency.as_str(),
        });
        found.push(Event {
            trigger,
            bindings: BTreeMap::from([("entry", entry.clone()), ("discrepancy", discrepancy)]),
        });
    }
    Ok(found)
}

/// The `entry` record: the entry's facts, and what it names of the body
/// (no person: the log holds a salted hash of one, which no rule needs).
fn entry(kind: Kind, facts: &Facts<'_>, named: Named<'_>) -> Value {
    let mut entry = Map::new();
    entry.insert("index".into(), json!(facts.log_index));
    entry.insert("kind".into(), json!(kind.as_str()));
    entry.insert("from".into(), json!(facts.sender.as_str()));
    entry.insert("to".into(), json!(facts.recipient.as_str()));
    entry.insert("jti".into(), json!(facts.jti));
    entry.insert("time".into(), json!(facts.time));
    let optional = [
        ("tag", named.tag),
        ("purpose", named.purpose),
        ("request", named.request),
        ("outcome", named.outcome),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            entry.insert(name.into(), json!(v));
        }
    }
    if let Some(expires) = facts.expires {
        entry.insert("expires".into(), json!(expires));
    }
    Value::Object(entry)
}

/// The `asset` record of `tag` as the state holds it at `time`.
fn asset_record(
    tag: Option<&str>,
    time: i64,
    state: &impl StateRead,
) -> Result<Option<Value>, StoreError> {
    let Some(tag) = tag else {
        return Ok(None);
    };
    let Some(asset) = assets::asset(state, tag)? else {
        return Ok(None);
    };
    let missing = open_discrepancies(state, tag)?
        .iter()
        .any(|d| d.kind == DiscrepancyKind::Missing);
    let status = match asset.open_offer(time) {
        _ if missing => "missing",
        Some(offer) if offer.hold.is_some() => "awaiting_approval",
        Some(_) => "offered",
        None => "held",
    };
    Ok(Some(json!({
        "tag": asset.tag,
        "category": asset.category,
        "holder": asset.holder.agency.as_str(),
        "location": asset.location,
        "status": status,
    })))
}

/// The `grant` record, if the entry made a grant: a request that broke
/// the glass, or an approval (its request's purpose read from the case).
fn grant_record(
    op: &medical::Op,
    facts: &Facts<'_>,
    state: &impl StateRead,
) -> Result<Option<Value>, StoreError> {
    let Some(terms) = facts.grant() else {
        return Ok(None);
    };
    let (request, requester, holder, purpose, break_glass) = match op {
        medical::Op::Request(r) => (
            facts.jti,
            facts.sender,
            facts.recipient,
            r.purpose.as_str().to_owned(),
            true,
        ),
        medical::Op::Approve(a) => {
            let case = cases::case(state, facts.recipient, &a.request)?;
            let purpose = case.map(|c| c.purpose.as_str().to_owned());
            (
                a.request.as_str(),
                facts.recipient,
                facts.sender,
                purpose.unwrap_or_default(),
                false,
            )
        }
        medical::Op::Response(_) | medical::Op::Review(_) => return Ok(None),
    };
    Ok(Some(json!({
        "request": request,
        "requester": requester.as_str(),
        "holder": holder.as_str(),
        "purpose": purpose,
        "break_glass": break_glass,
        "expires": terms.expires,
        "uses": terms.uses,
    })))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use xgate_ledger::WriteBatch;

    use super::*;
    use crate::apply::state::Memory;
    use crate::contracts::{Contract, ContractSpec, Contracts, EvalError};
    use crate::entry::Stamp;
    use crate::registry::{AgencyId, for_tests};

    /// Applies `kind`/`body` from `by` to `to` at `index` over `state` and
    /// returns its events.
    fn send(
        state: &mut Memory,
        index: u64,
        parties: (&str, &str),
        kind: Kind,
        body: Value,
        stamp: Stamp,
    ) -> Vec<Event> {
        let Value::Object(map) = body else {
            panic!("an object")
        };
        let op = Op::parse(kind, &map).expect("valid body");
        send_op(state, index, parties, kind, &op, stamp)
    }

    /// [`send`] of a parsed `op`.
    fn send_op(
        state: &mut Memory,
        index: u64,
        (by, to): (&str, &str),
        kind: Kind,
        op: &Op,
        stamp: Stamp,
    ) -> Vec<Event> {
        let (sender, recipient): (AgencyId, AgencyId) =
            (by.parse().expect("id"), to.parse().expect("id"));
        let jti = format!("j{index}");
        let facts = Facts::new(&sender, &recipient, &jti, "e", stamp, index);
        let mut batch = WriteBatch::new();
        super::super::apply(op, &facts, state, &mut batch).expect("applies");
        state.apply(batch);
        events(op, kind, &facts, op.named(), state).expect("events")
    }

    fn stamp(time: i64, expires: Option<i64>) -> Stamp {
        Stamp {
            time,
            expires,
            uses: None,
            sent: None,
        }
    }

    fn contract(name: &str, on: &str, when: &str, act: &str) -> Contract {
        let spec = ContractSpec::for_tests(name, on, when, act);
        Contract::load(&spec, &for_tests(&["treasury", "gsa", "state"])).expect(name)
    }

    #[test]
    fn an_offer_triggers_its_envelope_and_offer_opened_with_the_state_it_left() {
        let mut state = Memory::default();
        send(
            &mut state,
            0,
            ("treasury", "treasury"),
            Kind::AssetRegister,
            json!({"tag": "LAP-1", "serial": "s", "category": "laptop", "description": "d",
                   "holder": {"agency": "treasury", "person": "p-1"}, "location": "HQ-3"}),
            stamp(1000, None),
        );
        let offered = send(
            &mut state,
            1,
            ("treasury", "gsa"),
            Kind::AssetTransferOffer,
            json!({"tag": "LAP-1", "to": {"agency": "gsa", "person": "p-2"}, "reason": "r"}),
            stamp(1001, Some(90_000)),
        );
        let triggers: Vec<String> = offered.iter().map(|e| e.trigger.to_string()).collect();
        assert_eq!(triggers, ["envelope:asset.transfer.offer", "offer.opened"]);
        let bindings = &offered[0].bindings;
        assert_eq!(
            bindings["entry"],
            json!({"index": 1, "kind": "asset.transfer.offer", "from": "treasury", "to": "gsa",
                   "jti": "j1", "time": 1001, "tag": "LAP-1", "expires": 90_000})
        );
        assert_eq!(
            bindings["asset"],
            json!({"tag": "LAP-1", "category": "laptop", "holder": "treasury",
                   "location": "HQ-3", "status": "offered"})
        );
        assert_eq!(
            bindings["offer"],
            json!({"jti": "j1", "from": "treasury", "to": "gsa", "expires": 90_000})
        );
        // No person anywhere in what a condition reads.
        let text = format!("{offered:?}");
        assert!(!text.contains("p-1") && !text.contains("p-2"), "{text}");

        // The contracts on those triggers decide on exactly these records.
        let set = Contracts::new(vec![
            contract(
                "laptops-to-gsa",
                "envelope:asset.transfer.offer",
                r#"offer.to == "gsa" && asset.category == "laptop" && asset.status == "offered""#,
                "accept_offer",
            ),
            contract(
                "never",
                "offer.opened",
                "offer.to == \"state\"",
                "reject_offer",
            ),
            contract(
                "breaks",
                "offer.opened",
                "entry.index / (entry.index - 1) > 0",
                "reject_offer",
            ),
        ])
        .expect("set");
        let fired: Vec<(&str, Result<(), EvalError>)> = offered
            .iter()
            .flat_map(|e| set.fire(&e.trigger, &e.bindings))
            .map(|f| (f.contract.spec.name.as_str(), f.outcome))
            .collect();
        assert_eq!(
            fired,
            [
                ("laptops-to-gsa", Ok(())),
                ("breaks", Err(EvalError::DivisionByZero))
            ]
        );
    }

    /// A count that misses a laptop opens a discrepancy; a later count
    /// that sees it resolves it: each an event of its own.
    #[test]
    fn discrepancies_opened_and_resolved_are_events_of_their_own() {
        let mut state = Memory::default();
        send(
            &mut state,
            0,
            ("gsa", "gsa"),
            Kind::AssetRegister,
            json!({"tag": "LAP-1", "serial": "s", "category": "laptop", "description": "d",
                   "holder": {"agency": "gsa", "person": "p-1"}, "location": "HQ-3"}),
            stamp(1000, None),
        );
        let count = |observed: Value| json!({"location": "HQ-3", "reported_by": "p-9", "observed": observed});
        let missed = send(
            &mut state,
            1,
            ("gsa", "gsa"),
            Kind::InventoryReport,
            count(json!([])),
            stamp(1001, None),
        );
        let triggers: Vec<String> = missed.iter().map(|e| e.trigger.to_string()).collect();
        assert_eq!(
            triggers,
            ["envelope:inventory.report", "discrepancy.opened"]
        );
        assert_eq!(
            missed[1].bindings["discrepancy"],
            json!({"type": "missing", "tag": "LAP-1", "location": "HQ-3",
                   "reconciliation": "1", "agency": "gsa"})
        );
        let found = send(
            &mut state,
            2,
            ("gsa", "gsa"),
            Kind::InventoryReport,
            count(json!([{"tag": "LAP-1"}])),
            stamp(1002, None),
        );
        assert_eq!(found[1].trigger, Trigger::DiscrepancyResolved);
        assert_eq!(found[1].bindings["discrepancy"]["tag"], "LAP-1");
    }

    #[test]
    fn a_report_binds_its_tags_and_a_record_only_its_entry() {
        let mut state = Memory::default();
        let report = send(
            &mut state,
            0,
            ("gsa", "gsa"),
            Kind::InventoryReport,
            json!({"location": "HQ-3", "reported_by": "p-9",
                   "observed": [{"tag": "LAP-1"}, {"tag": "LAP-2", "person": "p-3"}]}),
            stamp(1000, None),
        );
        // Two tags no asset has: a discrepancy each.
        let kinds: Vec<(String, &Value)> = report
            .iter()
            .map(|e| {
                let d = e.bindings.get("discrepancy").unwrap_or(&Value::Null);
                (e.trigger.to_string(), &d["type"])
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("envelope:inventory.report".to_owned(), &Value::Null),
                ("discrepancy.opened".to_owned(), &json!("unknown_tag")),
                ("discrepancy.opened".to_owned(), &json!("unknown_tag")),
            ]
        );
        assert_eq!(
            report[0].bindings["report"],
            json!({"location": "HQ-3", "observed": ["LAP-1", "LAP-2"]})
        );
        let record = send(
            &mut state,
            1,
            ("gsa", "state"),
            Kind::RecordSend,
            json!({"note": "n"}),
            stamp(1001, None),
        );
        assert_eq!(record.len(), 1);
        let names: Vec<&&str> = record[0].bindings.keys().collect();
        assert_eq!(names, [&"entry"]);
    }

    /// A break-the-glass request makes a grant at once; a treatment
    /// request makes one only when approved, whose record takes the
    /// request's purpose from its case.
    #[test]
    fn grants_are_made_by_breaking_the_glass_and_by_approvals() {
        use crate::medical::model::{Approve, Purpose};
        let request = |purpose| Op::Medical(medical::request_for_tests(purpose));
        let granted = Stamp {
            time: 1000,
            expires: Some(87_400),
            uses: Some(1),
            sent: None,
        };
        let mut state = Memory::default();
        let emergency = send_op(
            &mut state,
            0,
            ("state", "hhs"),
            Kind::MedicalRequest,
            &request(Purpose::Etreat),
            granted,
        );
        let triggers: Vec<String> = emergency.iter().map(|e| e.trigger.to_string()).collect();
        assert_eq!(triggers, ["envelope:medical.request", "grant.made"]);
        assert_eq!(
            emergency[1].bindings["grant"],
            json!({"request": "j0", "requester": "state", "holder": "hhs", "purpose": "ETREAT",
                   "break_glass": true, "expires": 87_400, "uses": 1})
        );
        assert_eq!(emergency[0].bindings["entry"]["purpose"], "ETREAT");

        let treatment = send_op(
            &mut state,
            1,
            ("state", "hhs"),
            Kind::MedicalRequest,
            &request(Purpose::Treat),
            stamp(1001, None),
        );
        assert_eq!(treatment.len(), 1, "no grant yet");
        let approved = send_op(
            &mut state,
            2,
            ("hhs", "state"),
            Kind::MedicalApprove,
            &Op::Medical(medical::Op::Approve(Approve {
                request: "j1".into(),
                ttl_hours: None,
                uses: None,
            })),
            granted,
        );
        assert_eq!(approved[1].trigger, Trigger::GrantMade);
        assert_eq!(
            approved[1].bindings["grant"],
            json!({"request": "j1", "requester": "state", "holder": "hhs", "purpose": "TREAT",
                   "break_glass": false, "expires": 87_400, "uses": 1})
        );
    }
}
