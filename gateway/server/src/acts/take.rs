//! Each act a contract may take, carried out on the state as the entry
//! that triggered it left it (docs/contracts.md, "Acts"): its writes, what
//! its log entry names, and the events it causes in turn.
//!
//! An act that cannot be carried out (the offer was answered already, the
//! asset's parties are served by another gateway) is a failure with a
//! stable code, and writes nothing; only a storage failure is an error of
//! the commit.

use serde_json::Value;
use sha2::{Digest, Sha256};
use xgate_ledger::WriteBatch;

use super::deadlines::{self, Deadline};
use crate::apply::asset::{self, AssetError};
use crate::apply::facts::Facts;
use crate::apply::state::{Over, StateError, StateRead, write};
use crate::apply::triggers::{self, Event};
use crate::assets::custody::{self, Refusal};
use crate::assets::model::Answer;
use crate::assets::reconcile::{self, Discrepancy, DiscrepancyKind, Notices};
use crate::assets::state as assets;
use crate::contracts::act::{ACT_KIND, ActEntry};
use crate::contracts::action::{Action, Recipient};
use crate::entry::Stamp;
use crate::inbox;
use crate::registry::{AgencyId, GatewayId, Registry};

/// What an act may see of the gateway besides the state: the registry
/// (notices go to registered agencies; `escalate` to its auditors) and
/// which gateway this is (an offer is answered only where both its
/// parties are served).
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    /// The registry in force.
    pub registry: &'a Registry,
    /// This gateway, in a federation.
    pub local: Option<&'a GatewayId>,
}

/// Why an act was not carried out: a stable code, logged as its `error`.
#[derive(Debug)]
pub enum Failure {
    /// The act does not apply here; the code says why.
    Code(&'static str),
    /// The state could not be read or written: the commit fails.
    State(StateError),
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Failure {
        Failure::State(e)
    }
}

impl From<xgate_ledger::StoreError> for Failure {
    fn from(e: xgate_ledger::StoreError) -> Failure {
        Failure::State(e.into())
    }
}

impl From<AssetError> for Failure {
    fn from(e: AssetError) -> Failure {
        match e {
            AssetError::Refused(r) => Failure::Code(refusal_code(&r)),
            AssetError::Store(e) => Failure::State(e.into()),
            AssetError::Encode(e) => Failure::State(e.into()),
            // Only an offer reads an expiry, and an act makes none.
            AssetError::OfferWithoutExpiry => Failure::Code("bad_offer"),
        }
    }
}

/// The API's code for a custody rule broken.
fn refusal_code(r: &Refusal) -> &'static str {
    match r {
        Refusal::AssetExists(_) => "asset_exists",
        Refusal::UnknownAsset(_) => "not_found",
        Refusal::NotHolder(_) => "not_holder",
        Refusal::OfferPending(_) => "offer_pending",
        Refusal::NoOpenOffer(_) => "no_open_offer",
        Refusal::WrongAudience(_) => "wrong_audience",
        Refusal::AwaitingApproval(_) => "awaiting_approval",
        Refusal::NoHold(_) => "no_hold",
        Refusal::SamePerson(_) => "same_person",
    }
}

/// One act, to carry out at `index` on `event`.
pub struct Taking<'a> {
    /// The act.
    pub action: &'a Action,
    /// The event that fired it.
    pub event: &'a Event,
    /// The act's own index in the log.
    pub index: u64,
    /// Its entry so far (done, naming nothing): the act fills in what it
    /// names.
    pub entry: &'a mut ActEntry,
}

/// Carries the act out against `state` (the state as its trigger left
/// it), adding its writes to `batch`, filling in what its entry names;
/// returns the events it causes (the discrepancies it opened or closed).
///
/// # Errors
/// [`Failure`]: a code when the act does not apply (then `batch` holds
/// partial writes and must be dropped), or a storage failure.
pub fn take(
    scope: Scope<'_>,
    taking: Taking<'_>,
    state: &impl StateRead,
    batch: &mut WriteBatch,
) -> Result<Vec<Event>, Failure> {
    let Taking {
        action,
        event,
        index,
        entry,
    } = taking;
    let bound = |record: &str, field: &str| -> Option<String> {
        event
            .bindings
            .get(record)?
            .get(field)?
            .as_str()
            .map(str::to_owned)
    };
    entry.tag = bound("asset", "tag").or_else(|| bound("discrepancy", "tag"));
    entry.request = bound("grant", "request");
    let time = entry.time;
    match action {
        Action::AcceptOffer | Action::RejectOffer => {
            let accept = *action == Action::AcceptOffer;
            let (Some(tag), Some(jti), Some(from), Some(to)) = (
                bound("asset", "tag"),
                bound("offer", "jti"),
                bound("offer", "from"),
                bound("offer", "to"),
            ) else {
                return Err(Failure::Code("no_offer"));
            };
            let (holder, taker) = (agency(&from)?, agency(&to)?);
            // On the receiving agency's behalf, and only where the holder's
            // record is too: across gateways the answer would have to be
            // forwarded, which an act does not do.
            let local = |a: &AgencyId| scope.registry.serves(scope.local, a);
            if !local(&holder) || !local(&taker) {
                return Err(Failure::Code("not_served_here"));
            }
            let answer = Answer {
                tag,
                offer: jti,
                location: None,
            };
            let op = if accept {
                asset::Op::Accept(answer)
            } else {
                asset::Op::Reject(answer)
            };
            let (id, act_jti) = act_ids(entry, index);
            let facts = act_facts(&taker, &holder, &act_jti, &id, time, index);
            asset::apply(&op, &facts, state, batch)?;
            caused(event, &facts, state, batch)
        }
        Action::OpenDiscrepancy => {
            let tag = entry.tag.clone().ok_or(Failure::Code("no_asset"))?;
            let location = bound("asset", "location").unwrap_or_default();
            let holder = agency(&bound("asset", "holder").unwrap_or_default())?;
            let (id, act_jti) = act_ids(entry, index);
            let facts = act_facts(&holder, &holder, &act_jti, &id, time, index);
            let d = Discrepancy {
                kind: DiscrepancyKind::Flagged,
                reconciliation_id: index.to_string(),
                location,
                agencies: vec![holder.clone()],
            };
            let mut notices = Notices::new(&facts, ACT_KIND);
            if !reconcile::open(state, &tag, d, &mut notices, batch)? {
                return Err(Failure::Code("already_open"));
            }
            caused(event, &facts, state, batch)
        }
        Action::CloseDiscrepancy => {
            let (Some(tag), Some(kind)) =
                (bound("discrepancy", "tag"), bound("discrepancy", "type"))
            else {
                return Err(Failure::Code("no_discrepancy"));
            };
            let agency_id = agency(&bound("discrepancy", "agency").unwrap_or_default())?;
            let (id, act_jti) = act_ids(entry, index);
            let facts = act_facts(&agency_id, &agency_id, &act_jti, &id, time, index);
            let mut notices = Notices::new(&facts, ACT_KIND);
            let matches = |k: DiscrepancyKind| {
                serde_json::to_value(k)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    == Some(kind.clone())
            };
            if !reconcile::resolve(state, &tag, matches, &mut notices, batch)? {
                return Err(Failure::Code("not_open"));
            }
            caused(event, &facts, state, batch)
        }
        Action::SetDeadline { name, hours } => {
            let due = time.saturating_add(i64::from(*hours) * 3600);
            entry.deadline = Some(name.clone());
            entry.due = Some(due);
            let deadline = Deadline {
                name: name.clone(),
                due,
                set_by: entry.contract.clone(),
                act: index,
                tag: entry.tag.clone(),
                agency: bound("asset", "holder").or_else(|| bound("entry", "from")),
                entry: event.bindings.get("entry").cloned().unwrap_or(Value::Null),
            };
            deadlines::set(&deadline, batch)?;
            Ok(Vec::new())
        }
        Action::Notify(to) => {
            let target = match to {
                Recipient::Agency(a) => Some(a.as_str().to_owned()),
                Recipient::Sender => bound("entry", "from"),
                Recipient::Recipient => bound("entry", "to"),
                Recipient::Holder => bound("asset", "holder"),
            };
            let target = agency(&target.unwrap_or_default())?;
            if scope.registry.get(&target).is_none() {
                return Err(Failure::Code("unknown_agency"));
            }
            entry.to = Some(target.as_str().to_owned());
            Ok(Vec::new())
        }
        Action::Escalate => Ok(Vec::new()),
        Action::RequireSecondApproval => {
            let (Some(tag), Some(jti)) = (bound("asset", "tag"), bound("offer", "jti")) else {
                return Err(Failure::Code("no_offer"));
            };
            let asset = assets::asset(state, &tag)?.ok_or(Failure::Code("not_found"))?;
            let held = custody::hold(&asset, &jti, index, time)
                .map_err(|r| Failure::Code(refusal_code(&r)))?;
            write(batch, assets::asset_key(&tag), &held).map_err(StateError::from)?;
            Ok(Vec::new())
        }
    }
}

/// The agencies an act's entry is delivered to, once it is encoded: the
/// notified agency, every auditor for an escalation, and both parties of
/// an answered offer. Their inboxes get it as a notice.
pub fn deliver(
    scope: Scope<'_>,
    action: &Action,
    entry: &ActEntry,
    event: &Event,
) -> Vec<AgencyId> {
    if entry.is_failed() {
        return Vec::new();
    }
    let bound = |record: &str, field: &str| -> Option<AgencyId> {
        event
            .bindings
            .get(record)?
            .get(field)?
            .as_str()?
            .parse()
            .ok()
    };
    let mut to: Vec<AgencyId> = match action {
        Action::Notify(_) => entry.to.iter().filter_map(|a| a.parse().ok()).collect(),
        Action::Escalate => scope
            .registry
            .agencies()
            .filter(|a| scope.registry.is_auditor(&a.id))
            .map(|a| a.id.clone())
            .collect(),
        Action::AcceptOffer | Action::RejectOffer => [bound("offer", "from"), bound("offer", "to")]
            .into_iter()
            .flatten()
            .collect(),
        _ => Vec::new(),
    };
    to.retain(|a| scope.registry.serves(scope.local, a));
    to.dedup();
    to
}

/// Adds `entry`, logged at `index`, to the inbox of each of `to`, from the
/// sender of the entry `event` binds (the envelope that started it all).
///
/// # Errors
/// A record that cannot be encoded (a bug).
pub fn notify(
    to: &[AgencyId],
    event: &Event,
    index: u64,
    entry: &[u8],
    batch: &mut WriteBatch,
) -> Result<(), inbox::EncodeRecordError> {
    let from = event
        .bindings
        .get("entry")
        .and_then(|e| e.get("from"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    for agency in to {
        inbox::notify(agency, from, index, entry, batch)?;
    }
    Ok(())
}

/// The events an act at `facts.log_index` caused, over `state` with the
/// act's `writes`: the discrepancies it opened or resolved, bound with the
/// `entry` of the event that fired it (the envelope at the start of the
/// chain, whose fields a condition reads).
fn caused(
    event: &Event,
    facts: &Facts<'_>,
    state: &impl StateRead,
    writes: &WriteBatch,
) -> Result<Vec<Event>, Failure> {
    let entry = event.bindings.get("entry").cloned().unwrap_or(Value::Null);
    let over = Over {
        base: state,
        top: writes,
    };
    Ok(triggers::notice_events(
        &entry,
        facts.log_index,
        facts.sender,
        &over,
    )?)
}

/// The id an act is known by in the custody chain and the feed (the
/// SHA-256 of its entry as done, which is its entry whenever its writes
/// are kept), and its `jti` there.
fn act_ids(entry: &ActEntry, index: u64) -> (String, String) {
    let done = entry.encode().unwrap_or_default();
    (hex::encode(Sha256::digest(&done)), format!("act-{index}"))
}

/// The facts an act is applied with: on `by`'s behalf, towards `to`, at
/// its trigger's time.
fn act_facts<'a>(
    by: &'a AgencyId,
    to: &'a AgencyId,
    jti: &'a str,
    id: &'a str,
    time: i64,
    index: u64,
) -> Facts<'a> {
    let stamp = Stamp {
        time,
        ..Stamp::default()
    };
    Facts::new(by, to, jti, id, stamp, index)
}

/// A bound agency id.
fn agency(text: &str) -> Result<AgencyId, Failure> {
    text.parse().map_err(|_| Failure::Code("no_agency"))
}
