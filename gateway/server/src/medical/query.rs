//! What the API shows of the medical state, and to whom: a case to its two
//! agencies (with the signed request) and to auditors (without it); a response (still encrypted) to the same; the
//! review queue to the holding agency, and all of it to auditors. Anyone
//! else is told there is no such thing, so a request's existence does not
//! leak.

use serde::Serialize;
use serde_json::{Map, Value};
use xgate_ledger::{Ledger, StoreError, StoreRead};

use super::model::{Purpose, ReplyKey};
use super::section::Section;
use super::state::{self, Answered, Case, Grant, Reviewed};
use crate::apply::state::{Stored, corrupt};
use crate::entry::Logged;
use crate::kind::Kind;
use crate::registry::{AgencyId, Registry};

/// A case as `GET /v1/medical/requests/{jti}` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct CaseView {
    /// The request's `jti`.
    pub request: String,
    /// Who asked.
    pub requester: AgencyId,
    /// Who was asked.
    pub holder: AgencyId,
    /// The request's log index.
    pub log_index: u64,
    /// When it was accepted.
    pub time: i64,
    /// The request envelope's id.
    pub envelope: String,
    /// Why.
    pub purpose: Purpose,
    /// The responder's role.
    pub role: String,
    /// The sections asked for.
    pub sections: Vec<Section>,
    /// The public JWK answers must be encrypted to; `null` if the request
    /// named a registry key that is no longer registered.
    pub reply_key: Option<Map<String, Value>>,
    /// `granted`, `awaiting-approval`, `expired` or `used`.
    pub status: &'static str,
    /// The grant, if any.
    pub grant: Option<Grant>,
    /// Whether it broke the glass (and so is reviewed).
    pub break_glass: bool,
    /// The responses, each retrievable by its log index.
    pub responses: Vec<Answered>,
    /// The review, once made.
    pub review: Option<Reviewed>,
    /// The request envelope as its requester signed it (the one delivered
    /// to the holder), for the two agencies; `null` for an auditor. Clients
    /// take the requester, sections and reply key from it, checked against
    /// their own registry, and only compare the fields above with it.
    pub jws: Option<String>,
}

/// One grant awaiting review, as `GET /v1/reviews` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct ReviewItem {
    /// The request's `jti`: what a `review.decision` names.
    pub request: String,
    /// Who asked.
    pub requester: AgencyId,
    /// Who was asked, and reviews.
    pub holder: AgencyId,
    /// The request's log index.
    pub log_index: u64,
    /// When the glass was broken.
    pub granted: i64,
    /// When the review falls due.
    pub due: i64,
    /// Whether it is past due.
    pub overdue: bool,
    /// Why it was asked.
    pub purpose: Purpose,
    /// The responder's role.
    pub role: String,
    /// How many responses were sent under it.
    pub responses: usize,
}

/// A response, still encrypted, as `GET /v1/medical/responses/{index}`
/// returns it.
#[derive(Clone, Debug, Serialize)]
pub struct ResponseView {
    /// The request's `jti`.
    pub request: String,
    /// The holder that answered.
    pub from: String,
    /// The requester.
    pub to: String,
    /// Its log index.
    pub log_index: u64,
    /// Its envelope id.
    pub envelope: String,
    /// The signed envelope, whose body carries the JWE.
    pub jws: String,
}

/// The case `jti` as `caller` may see it: its own request, a request it
/// was sent, or (for an auditor, who names the requester) any.
///
/// # Errors
/// A storage failure.
pub fn case(
    log: &dyn Ledger,
    registry: &Registry,
    caller: &AgencyId,
    jti: &str,
    requester: Option<&AgencyId>,
    now: i64,
) -> Result<Option<CaseView>, xgate_ledger::Error> {
    let state = Stored(log.store());
    let found = match requester {
        Some(r) => state::case(&state, r, jti)?,
        None => match state::case(&state, caller, jti)? {
            Some(c) => Some(c),
            None => state::case_of_holder(&state, caller, jti)?,
        },
    };
    let party = |c: &Case| &c.requester == caller || &c.holder == caller;
    let Some(case) = found.filter(|c| party(c) || registry.is_auditor(caller)) else {
        return Ok(None);
    };
    let jws = if party(&case) {
        let key = crate::inbox::kept_key(case.log_index);
        let kept = log.body(&key)?.ok_or_else(|| corrupt(&key))?;
        Some(String::from_utf8(kept).map_err(|_| corrupt(&key))?)
    } else {
        None
    };
    Ok(Some(view(case, registry, now, jws)))
}

/// The public key `case`'s answers go to, resolved against the registry.
pub fn reply_key(case: &Case, registry: &Registry) -> Option<Map<String, Value>> {
    match &case.reply_key {
        ReplyKey::Jwk(jwk) => Some(jwk.clone()),
        ReplyKey::Kid(kid) => registry
            .get(&case.requester)
            .map(|a| &a.encryption_key)
            .filter(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
            .cloned(),
    }
}

fn view(c: Case, registry: &Registry, now: i64, jws: Option<String>) -> CaseView {
    let status = match &c.grant {
        None => "awaiting-approval",
        Some(g) if g.used >= g.uses => "used",
        Some(g) if now >= g.expires => "expired",
        Some(_) => "granted",
    };
    CaseView {
        reply_key: reply_key(&c, registry),
        status,
        request: c.request,
        requester: c.requester,
        holder: c.holder,
        log_index: c.log_index,
        time: c.time,
        envelope: c.envelope,
        purpose: c.purpose,
        role: c.role,
        sections: c.sections,
        grant: c.grant,
        break_glass: c.break_glass,
        responses: c.responses,
        review: c.review,
        jws,
    }
}

/// Up to `limit` grants awaiting review by `caller` (every holder's, for an
/// auditor), oldest first, after the request logged at `after`, and
/// whether more follow. A review falls due `due_after` seconds after the
/// grant.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn reviews(
    store: &dyn StoreRead,
    caller: &AgencyId,
    auditor: bool,
    after: Option<(AgencyId, u64)>,
    limit: usize,
    now: i64,
    due_after: i64,
) -> Result<(Vec<ReviewItem>, bool), StoreError> {
    let holder = (!auditor).then_some(caller);
    let from = match &after {
        // Just past the key of the last item shown.
        Some((h, index)) => {
            let mut k = state::queue_key(h, *index);
            k.push(0);
            k
        }
        None => state::queue_prefix(holder),
    };
    let mut page = state::queue(store, holder, &from, limit.saturating_add(1))?;
    let more = page.len() > limit;
    page.truncate(limit);
    let items = page
        .into_iter()
        .map(|(_, c)| {
            let granted = c.grant.as_ref().map_or(c.time, |g| g.time);
            let due = granted.saturating_add(due_after);
            ReviewItem {
                request: c.request,
                requester: c.requester,
                holder: c.holder,
                log_index: c.log_index,
                granted,
                due,
                overdue: now >= due,
                purpose: c.purpose,
                role: c.role,
                responses: c.responses.len(),
            }
        })
        .collect();
    Ok((items, more))
}

/// The response logged at `index`, if it is one and `caller` may see it.
///
/// # Errors
/// A storage failure or an unreadable entry.
pub fn response(
    log: &dyn Ledger,
    registry: &Registry,
    caller: &AgencyId,
    index: u64,
) -> Result<Option<ResponseView>, xgate_ledger::Error> {
    // An index another replica handed out is found here at once.
    if index >= log.size_at_least(index.saturating_add(1))? {
        return Ok(None);
    }
    let entry = Logged::parse(&log.entry(index)?)
        .map_err(|e| StoreError(format!("log entry {index}: {e}")))?;
    let party = entry.iss == caller.as_str() || entry.aud == caller.as_str();
    if entry.kind != Kind::MedicalResponse.as_str() || !(party || registry.is_auditor(caller)) {
        return Ok(None);
    }
    let Some(jws) = log.body(&crate::inbox::kept_key(index))? else {
        return Ok(None);
    };
    let jws = String::from_utf8(jws)
        .map_err(|_| xgate_ledger::Error::from(corrupt(&crate::inbox::kept_key(index))))?;
    Ok(Some(ResponseView {
        request: entry.request.unwrap_or_default(),
        from: entry.iss,
        to: entry.aud,
        log_index: index,
        envelope: entry.envelope,
        jws,
    }))
}
