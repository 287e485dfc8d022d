//! Which contracts fired for an entry, and why (`GET
//! /v1/contracts/explain/{index}`, `xgate contracts explain`;
//! docs/contracts.md, "Commands and the API"): read from what the log and
//! the state hold, never by evaluating a condition again.
//!
//! ```text
//! {"entry":I,"kind":K,"policy":"<hash the entry logs>","in_force":bool,
//!  "triggers":["envelope:asset.transfer.offer","offer.opened"],
//!  "contracts":[{"name","on","when","do","hash","fired","act":J|null,
//!                "outcome":"done"|"failed"|null,"error":CODE|null}],
//!  "acts":[{"index":J,...the act entry's fields...}]}
//! ```
//!
//! - **triggers**: the events the entry caused, from its logged fields
//!   and the notices it wrote: `envelope:<kind>`; an offer made here (not
//!   forwarded in) also `offer.opened`; a grant made (a break-the-glass
//!   request or an approval, whose entry logs `expires` and `uses`)
//!   `grant.made`; and a `discrepancy.opened` or `discrepancy.resolved`
//!   per feed notice written at the entry's index. An act entry's
//!   triggers are the notices written at its own index (the
//!   discrepancies it opened or closed). A `clock.tick`'s are the
//!   `deadline:<name>` of each deadline it fired, as it recorded them.
//! - **acts**: the `contract.act` entries right after it in the log whose
//!   `trigger` is the entry or, transitively, one of those acts: the
//!   chain the entry started.
//! - **contracts**: when the policy in force is the one the entry logs,
//!   each of its contracts on one of the triggers, in file order, fired
//!   if an act on the entry itself names it. Every firing is logged as
//!   an act, an evaluation error included (`acts::run`), so one with no
//!   act had a false condition, which `when` shows. Under another policy
//!   the gateway does not know the entry's contracts: none are listed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use xgate_ledger::{Ledger, StoreError};

use super::deadlines::{TICK_KIND, Tick, fired_at};
use super::run::MAX_ACTS;
use crate::apply::state::{StateRead, Stored, read};
use crate::assets::reconcile::{Notice, NoticeEvent};
use crate::assets::state::notice_key;
use crate::contracts::act::{ACT_KIND, ActEntry};
use crate::contracts::trigger::Trigger;
use crate::entry::Logged;
use crate::kind::Kind;
use crate::policy::Policy;

/// The explanation of one entry. Field order is the answer's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explained {
    /// The entry's index.
    pub entry: u64,
    /// Its kind: the envelope's, `contract.act` or `clock.tick`.
    pub kind: String,
    /// The hash of the policy it logs, lowercase hex.
    pub policy: String,
    /// Whether the policy in force has that hash.
    pub in_force: bool,
    /// The events it caused, as contracts' `on` spells them.
    pub triggers: Vec<String>,
    /// The contracts on those events, in file order (none when the
    /// entry's policy is not in force).
    pub contracts: Vec<Verdict>,
    /// The acts of the chain it started, in log order.
    pub acts: Vec<LoggedAct>,
}

/// One contract on the entry's events, and whether it fired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Its name.
    pub name: String,
    /// Its trigger.
    pub on: String,
    /// Its condition.
    pub when: String,
    /// Its act.
    #[serde(rename = "do")]
    pub action: String,
    /// Its hash, lowercase hex.
    pub hash: String,
    /// Whether an act on the entry names it.
    pub fired: bool,
    /// That act's index.
    pub act: Option<u64>,
    /// That act's outcome, `done` or `failed`.
    pub outcome: Option<String>,
    /// That act's error code, if it failed.
    pub error: Option<String>,
}

/// An act entry, with its index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedAct {
    /// Its index in the log.
    pub index: u64,
    /// The entry.
    #[serde(flatten)]
    pub act: ActEntry,
}

/// Why an entry cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// Past the end of the log (the same words as `GET
    /// /v1/log/entries/{index}`).
    #[error("index {index} is out of range: the log has {size} entries")]
    OutOfRange {
        /// The index asked for.
        index: u64,
        /// The log's size.
        size: u64,
    },
    /// An entry that is not an envelope's, an act's or a tick.
    #[error(
        "entry {0} is not an envelope's entry, a contract's act or a clock.tick: \
         there is nothing to explain"
    )]
    Unexplained(u64),
    /// The log failed.
    #[error(transparent)]
    Ledger(#[from] xgate_ledger::Error),
    /// The state could not be read.
    #[error(transparent)]
    State(#[from] StoreError),
}

/// Explains the entry at `index` of `log`, against `policy`, the policy in
/// force.
///
/// # Errors
/// [`ExplainError`]: an index past the end, an entry of no kind
/// explained, or a storage failure.
pub fn explain(log: &dyn Ledger, policy: &Policy, index: u64) -> Result<Explained, ExplainError> {
    let size = log.size_at_least(index.saturating_add(1))?;
    if index >= size {
        return Err(ExplainError::OutOfRange { index, size });
    }
    let bytes = log.entry(index)?;
    let state = Stored(log.store());
    let acts = chain(log, index, size)?;
    let (kind, logged_policy, triggers) = if let Ok(act) = ActEntry::parse(&bytes) {
        (ACT_KIND.to_owned(), act.policy, notices(&state, index)?)
    } else if let Ok(entry) = Logged::parse(&bytes) {
        let triggers = envelope_triggers(&entry, index, &state)?;
        (entry.kind, entry.policy, triggers)
    } else if let Ok(tick) = Tick::parse(&bytes) {
        (
            TICK_KIND.to_owned(),
            tick.policy,
            deadline_triggers(&state, index)?,
        )
    } else {
        return Err(ExplainError::Unexplained(index));
    };
    let in_force = policy.hash_hex() == logged_policy;
    let contracts = if in_force {
        verdicts(policy, &triggers, index, &acts)
    } else {
        Vec::new()
    };
    Ok(Explained {
        entry: index,
        kind,
        policy: logged_policy,
        in_force,
        triggers: triggers.iter().map(Trigger::to_string).collect(),
        contracts,
        acts,
    })
}

/// The events the envelope's `entry`, at `index`, caused, as its logged
/// fields and the notices it wrote say (`apply::triggers::events` gives
/// the same triggers at the commit).
fn envelope_triggers(
    entry: &Logged,
    index: u64,
    state: &impl StateRead,
) -> Result<Vec<Trigger>, ExplainError> {
    let kind: Kind = entry
        .kind
        .parse()
        .map_err(|_| ExplainError::Unexplained(index))?;
    let mut triggers = vec![Trigger::Envelope(kind)];
    // An offer forwarded in (`sent`) opened its offer at the gateway it
    // was made at.
    if kind == Kind::AssetTransferOffer && entry.sent.is_none() {
        triggers.push(Trigger::OfferOpened);
    }
    let granted = entry.expires.is_some() && entry.uses.is_some();
    let grants = match kind {
        Kind::MedicalRequest => entry.decision == "break-glass",
        Kind::MedicalApprove => true,
        _ => false,
    };
    if granted && grants {
        triggers.push(Trigger::GrantMade);
    }
    triggers.extend(notices(state, index)?);
    Ok(triggers)
}

/// A `discrepancy.opened` or `discrepancy.resolved` for each feed notice
/// the entry at `index` wrote, in order.
fn notices(state: &impl StateRead, index: u64) -> Result<Vec<Trigger>, StoreError> {
    let mut found = Vec::new();
    for seq in 0..=u32::MAX {
        let Some(notice) = read::<Notice>(state, &notice_key(index, seq))? else {
            break;
        };
        found.push(match notice.event {
            NoticeEvent::Discrepancy => Trigger::DiscrepancyOpened,
            NoticeEvent::Resolved => Trigger::DiscrepancyResolved,
        });
    }
    Ok(found)
}

/// The `deadline:<name>` events the tick at `index` fired, in order, as
/// the tick recorded them ([`super::deadlines::fired_at`]), each once.
fn deadline_triggers(state: &impl StateRead, index: u64) -> Result<Vec<Trigger>, StoreError> {
    let mut triggers: Vec<Trigger> = Vec::new();
    for fired in fired_at(state, index)? {
        let on = Trigger::Deadline(fired.name);
        if !triggers.contains(&on) {
            triggers.push(on);
        }
    }
    Ok(triggers)
}

/// The acts of the chain the entry at `index` started: those right after
/// it (at most [`MAX_ACTS`] follow one entry) whose trigger is it or an
/// act of the chain.
fn chain(log: &dyn Ledger, index: u64, size: u64) -> Result<Vec<LoggedAct>, ExplainError> {
    let mut causes = BTreeSet::from([index]);
    let mut acts = Vec::new();
    let end = size.min(index.saturating_add(1).saturating_add(MAX_ACTS as u64));
    for at in index.saturating_add(1)..end {
        let Ok(act) = ActEntry::parse(&log.entry(at)?) else {
            break;
        };
        if causes.contains(&act.trigger) {
            causes.insert(at);
            acts.push(LoggedAct { index: at, act });
        }
    }
    Ok(acts)
}

/// Each contract of `policy` on one of `triggers`, in file order, with
/// the act on the entry at `index` that names it, if one does.
fn verdicts(policy: &Policy, triggers: &[Trigger], index: u64, acts: &[LoggedAct]) -> Vec<Verdict> {
    // A count may open thousands of discrepancies: each trigger once.
    let triggers: BTreeSet<&Trigger> = triggers.iter().collect();
    policy
        .contracts()
        .all()
        .iter()
        .filter(|c| triggers.contains(&c.trigger))
        .map(|c| {
            let act = acts
                .iter()
                .find(|a| a.act.trigger == index && a.act.contract == c.spec.name);
            Verdict {
                name: c.spec.name.clone(),
                on: c.spec.on.clone(),
                when: c.spec.when.clone(),
                action: c.spec.act.clone(),
                hash: c.hash_hex(),
                fired: act.is_some(),
                act: act.map(|a| a.index),
                outcome: act.map(|a| a.act.outcome.clone()),
                error: act.and_then(|a| a.act.error.clone()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use xgate_ledger::{Log, OpenOptions, WriteBatch};

    use super::*;
    use crate::apply::state::write;
    use crate::assets::reconcile::DiscrepancyKind;
    use crate::registry::for_tests;

    const POLICY: &str = r#"version = 1

[[rule]]
name = "all"
kinds = ["asset.transfer.offer", "asset.transfer.reject", "medical.request", "medical.approve"]
from = ["*"]
to = ["*"]
effect = "allow"

[[contract]]
name = "auto-accept"
on = "envelope:asset.transfer.offer"
when = 'offer.to == "gsa"'
do = "accept_offer"

[[contract]]
name = "flag-rejections"
on = "envelope:asset.transfer.reject"
when = 'asset.holder == "treasury"'
do = "open_discrepancy"

[[contract]]
name = "escalate-flags"
on = "discrepancy.opened"
when = 'discrepancy.type == "flagged"'
do = "escalate"

[[contract]]
name = "clear-at-hq"
on = "discrepancy.opened"
when = 'discrepancy.location == "HQ"'
do = "close_discrepancy"

[[contract]]
name = "grants"
on = "grant.made"
when = 'grant.break_glass'
do = "escalate"

[[contract]]
name = "recount-due"
on = "deadline:recount"
when = 'deadline.set_by == "counts"'
do = "escalate"

[[contract]]
name = "recount-quiet"
on = "deadline:recount"
when = 'deadline.due < 0'
do = "escalate"
"#;

    fn policy(text: &str) -> Policy {
        Policy::parse(
            text,
            "policy.toml",
            &for_tests(&["treasury", "gsa", "state"]),
        )
        .expect("policy")
    }

    /// An envelope's entry of `kind` under `policy`, with `extra` fields.
    fn envelope(kind: &str, policy: &str, extra: Value) -> Vec<u8> {
        let mut e = json!({"aud": "gsa", "decision": "allow", "envelope": "e".repeat(64),
            "iss": "treasury", "jti": "j", "kind": kind, "policy": policy, "time": 1000, "v": 1});
        if let (Some(e), Value::Object(extra)) = (e.as_object_mut(), extra) {
            e.extend(extra);
        }
        serde_json::to_vec(&e).expect("json")
    }

    /// The act `act` of `contract` on `trigger`, failed with `error` if given.
    fn act(contract: &str, act: &str, policy: &str, trigger: u64, error: Option<&str>) -> Vec<u8> {
        let entry = ActEntry::new(act, contract, "c".repeat(64), policy, trigger, 1000);
        let entry = match error {
            Some(code) => entry.failed(code),
            None => entry,
        };
        entry.encode().expect("encodes")
    }

    /// A feed notice of `event` written by the entry at `index`.
    fn notice(log: &Log, index: u64, seq: u32, event: NoticeEvent) {
        let notice = Notice {
            id: format!("{index}.{seq}"),
            event,
            kind: DiscrepancyKind::Flagged,
            tag: "LAP-1".into(),
            reconciliation_id: index.to_string(),
            location: "DESK".into(),
            log_index: index,
            by_kind: ACT_KIND.into(),
            time: 1000,
            agencies: vec!["treasury".parse().expect("id")],
        };
        let mut batch = WriteBatch::new();
        write(&mut batch, notice_key(index, seq), &notice).expect("encodes");
        log.commit_writes(batch).expect("commit");
    }

    fn fired(explained: &Explained) -> Vec<(&str, bool, Option<u64>, Option<&str>)> {
        explained
            .contracts
            .iter()
            .map(|v| (v.name.as_str(), v.fired, v.act, v.error.as_deref()))
            .collect()
    }

    fn indices(explained: &Explained) -> Vec<u64> {
        explained.acts.iter().map(|a| a.index).collect()
    }

    /// A rejection whose act opens a discrepancy, which two contracts act
    /// on: the rejection's chain is all three acts; the first act's is its
    /// own two, its trigger the discrepancy it opened; a later entry ends
    /// the chain.
    #[test]
    fn a_chain_is_explained_from_its_start_and_from_each_act() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
        let policy = policy(POLICY);
        let hash = policy.hash_hex();
        log.append(&envelope(
            "asset.transfer.reject",
            &hash,
            json!({"tag": "LAP-1"}),
        ))
        .expect("0");
        log.append(&act("flag-rejections", "open_discrepancy", &hash, 0, None))
            .expect("1");
        notice(&log, 1, 0, NoticeEvent::Discrepancy);
        log.append(&act("escalate-flags", "escalate", &hash, 1, None))
            .expect("2");
        log.append(&act(
            "clear-at-hq",
            "close_discrepancy",
            &hash,
            1,
            Some("not_open"),
        ))
        .expect("3");
        log.append(&envelope(
            "asset.transfer.offer",
            &hash,
            json!({"expires": 2000}),
        ))
        .expect("4");
        log.append(&act("auto-accept", "accept_offer", &hash, 4, None))
            .expect("5");

        let rejected = explain(&log, &policy, 0).expect("explains");
        assert_eq!(rejected.kind, "asset.transfer.reject");
        assert!(rejected.in_force);
        assert_eq!(rejected.policy, hash);
        assert_eq!(rejected.triggers, ["envelope:asset.transfer.reject"]);
        assert_eq!(fired(&rejected), [("flag-rejections", true, Some(1), None)]);
        assert_eq!(indices(&rejected), [1, 2, 3]);

        let opened = explain(&log, &policy, 1).expect("explains");
        assert_eq!(opened.kind, "contract.act");
        assert_eq!(opened.triggers, ["discrepancy.opened"]);
        assert_eq!(
            fired(&opened),
            [
                ("escalate-flags", true, Some(2), None),
                ("clear-at-hq", true, Some(3), Some("not_open")),
            ]
        );
        assert_eq!(opened.contracts[1].outcome.as_deref(), Some("failed"));
        assert_eq!(indices(&opened), [2, 3]);

        // An act that caused nothing: no trigger, its sibling not its own.
        let escalated = explain(&log, &policy, 2).expect("explains");
        assert!(escalated.triggers.is_empty() && escalated.contracts.is_empty());
        assert!(escalated.acts.is_empty());

        let offered = explain(&log, &policy, 4).expect("explains");
        assert_eq!(
            offered.triggers,
            ["envelope:asset.transfer.offer", "offer.opened"]
        );
        assert_eq!(fired(&offered), [("auto-accept", true, Some(5), None)]);
        assert_eq!(indices(&offered), [5]);
    }

    #[test]
    fn what_an_entry_triggered_comes_from_its_logged_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
        let policy = policy(POLICY);
        let hash = policy.hash_hex();
        let grant = json!({"expires": 5000, "uses": 1});
        let entries = [
            // A forwarded offer opened its offer where it was made.
            envelope(
                "asset.transfer.offer",
                &hash,
                json!({"expires": 2000, "sent": 999}),
            ),
            serde_json::to_vec(&{
                let mut e: Value =
                    serde_json::from_slice(&envelope("medical.request", &hash, grant.clone()))
                        .expect("json");
                e["decision"] = json!("break-glass");
                e
            })
            .expect("json"),
            envelope("medical.request", &hash, json!({})),
            envelope("medical.approve", &hash, grant),
            envelope("medical.approve", &hash, json!({})),
        ];
        for e in &entries {
            log.append(e).expect("append");
        }
        let triggers = |i| explain(&log, &policy, i).expect("explains").triggers;
        assert_eq!(triggers(0), ["envelope:asset.transfer.offer"]);
        assert_eq!(triggers(1), ["envelope:medical.request", "grant.made"]);
        assert_eq!(triggers(2), ["envelope:medical.request"]);
        assert_eq!(triggers(3), ["envelope:medical.approve", "grant.made"]);
        assert_eq!(triggers(4), ["envelope:medical.approve"]);
        // The grant contract did not fire on either grant: no act.
        let granted = explain(&log, &policy, 1).expect("explains");
        assert_eq!(fired(&granted), [("grants", false, None, None)]);
        assert_eq!(granted.contracts[0].when, "grant.break_glass");
    }

    #[test]
    fn under_another_policy_only_the_acts_are_told() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
        let before = policy(POLICY);
        let hash = before.hash_hex();
        log.append(&envelope(
            "asset.transfer.offer",
            &hash,
            json!({"expires": 2000}),
        ))
        .expect("0");
        log.append(&act("auto-accept", "accept_offer", &hash, 0, None))
            .expect("1");
        let after = policy_after();
        let explained = explain(&log, &after, 0).expect("explains");
        assert!(!explained.in_force);
        assert_eq!(explained.policy, hash);
        assert!(explained.contracts.is_empty());
        assert_eq!(indices(&explained), [1]);
    }

    /// A tick is explained by the deadlines it recorded as fired.
    #[test]
    fn a_tick_is_explained_by_the_deadlines_it_fired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
        let policy = policy(POLICY);
        let hash = policy.hash_hex();
        log.append(&Tick::at(5000, &hash).encode()).expect("0");
        log.append(&act("recount-due", "escalate", &hash, 0, None))
            .expect("1");
        let recorded = vec![crate::acts::deadlines::Deadline {
            name: "recount".into(),
            due: 4000,
            set_by: "c".into(),
            act: 9,
            tag: None,
            agency: None,
            entry: serde_json::json!({}),
        }];
        log.commit_writes_with(&mut || {
            let mut batch = xgate_ledger::WriteBatch::new();
            crate::apply::state::write(
                &mut batch,
                crate::store_keys::Prefix::FiredDeadlines.at(0),
                &recorded,
            )
            .map_err(|e| StoreError(e.to_string()))?;
            Ok(batch)
        })
        .expect("the fired deadlines");
        let explained = explain(&log, &policy, 0).expect("explains");
        assert_eq!(explained.kind, "clock.tick");
        assert_eq!(explained.triggers, ["deadline:recount"]);
        assert_eq!(
            fired(&explained),
            [
                ("recount-due", true, Some(1), None),
                ("recount-quiet", false, None, None)
            ]
        );
        let other = policy_after();
        let explained = explain(&log, &other, 0).expect("explains");
        assert!(!explained.in_force && explained.contracts.is_empty());
        assert_eq!(explained.triggers, ["deadline:recount"]);
        assert_eq!(indices(&explained), [1]);
    }

    fn policy_after() -> Policy {
        policy(&format!("{POLICY}\n# changed\n"))
    }

    #[test]
    fn past_the_end_or_not_an_entry_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::create_or_open(dir.path(), &OpenOptions::default()).expect("log");
        let policy = policy(POLICY);
        // A tick without its policy is no tick.
        log.append(br#"{"kind":"clock.tick","time":1,"v":1}"#)
            .expect("0");
        let e = explain(&log, &policy, 1).expect_err("past the end");
        assert_eq!(
            e.to_string(),
            "index 1 is out of range: the log has 1 entries"
        );
        let e = explain(&log, &policy, u64::MAX).expect_err("past the end");
        assert!(
            matches!(e, ExplainError::OutOfRange { size: 1, .. }),
            "{e:?}"
        );
        let e = explain(&log, &policy, 0).expect_err("not explained");
        assert!(matches!(e, ExplainError::Unexplained(0)), "{e:?}");
    }

    /// The answer's fields, in order, and an act's own fields beside its
    /// index; what the command line reads back is what was sent.
    #[test]
    fn the_answer_is_the_documented_json() {
        let act = ActEntry::new(
            "escalate",
            "escalate-flags",
            "c".repeat(64),
            &"b".repeat(64),
            7,
            1000,
        )
        .failed("division_by_zero");
        let explained = Explained {
            entry: 7,
            kind: "asset.register".into(),
            policy: "b".repeat(64),
            in_force: true,
            triggers: vec!["envelope:asset.register".into()],
            contracts: vec![Verdict {
                name: "escalate-flags".into(),
                on: "envelope:asset.register".into(),
                when: "true".into(),
                action: "escalate".into(),
                hash: "c".repeat(64),
                fired: true,
                act: Some(8),
                outcome: Some("failed".into()),
                error: Some("division_by_zero".into()),
            }],
            acts: vec![LoggedAct { index: 8, act }],
        };
        let text = serde_json::to_string(&explained).expect("encodes");
        let keys =
            |v: &Value| -> Vec<String> { v.as_object().expect("object").keys().cloned().collect() };
        let value: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            keys(&value),
            [
                "entry",
                "kind",
                "policy",
                "in_force",
                "triggers",
                "contracts",
                "acts"
            ]
        );
        assert!(
            text.starts_with(r#"{"entry":7,"kind":"asset.register","policy":""#),
            "{text}"
        );
        assert!(
            text.contains(r#""fired":true,"act":8,"outcome":"failed","error":"division_by_zero"}"#),
            "{text}"
        );
        assert_eq!(
            value["acts"][0],
            json!({"index": 8, "act": "escalate", "contract": "escalate-flags",
                   "contract_hash": "c".repeat(64), "error": "division_by_zero",
                   "kind": "contract.act", "outcome": "failed", "policy": "b".repeat(64),
                   "time": 1000, "trigger": 7, "v": 1})
        );
        let back: Explained = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, explained);
    }
}
