//! Where the medical state lives in the store: one record per request (a
//! [`Case`]), an index by holding agency, and the review queue.
//!
//! | key | value | what |
//! |---|---|---|
//! | `Gm` requester `0` jti | [`Case`] JSON | the request, its grant, responses and review |
//! | `Gw` holder `0` jti | requester | the holder's name for it |
//! | `Gu` holder `0` index (u64 BE) | requester `0` jti | break-the-glass grants awaiting review |
//!
//! A request's `jti` is unique per requester and per holder, for good (not
//! only within its replay window): a case is written under both names when
//! it opens and is never overwritten by another request or re-keyed.
//!
//! A case holds no personal data: not the subject, not the responder's
//! name, not the incident; those stay in the signed request, under `Ge` and
//! in the holder's inbox. Everything here is recomputed by `xgate audit
//! replay` from the logged envelopes (the prefixes are in
//! [`crate::store_keys`]).

use serde::{Deserialize, Serialize};
use xgate_ledger::{StoreError, StoreRead, WriteBatch};

use super::model::{Outcome, Purpose, ReplyKey};
use super::section::Section;
use crate::apply::state::{EncodeError, StateRead, Stored, corrupt, read, write};
use crate::registry::AgencyId;
use crate::store_keys::{Prefix, joined};

/// A medical request as the gateway tracks it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// The request's `jti`: its name in responses and reviews.
    pub request: String,
    /// The agency that asked.
    pub requester: AgencyId,
    /// The agency asked.
    pub holder: AgencyId,
    /// The request's log index.
    pub log_index: u64,
    /// When it was accepted.
    pub time: i64,
    /// The request envelope's id.
    pub envelope: String,
    /// Why it was asked.
    pub purpose: Purpose,
    /// The responder's role (never their name).
    pub role: String,
    /// The sections asked for.
    pub sections: Vec<Section>,
    /// Where answers are encrypted to (a public key or a registry `kid`).
    pub reply_key: ReplyKey,
    /// The access granted, if any.
    pub grant: Option<Grant>,
    /// Whether the request broke the glass and so must be reviewed.
    pub break_glass: bool,
    /// The responses accepted, oldest first.
    pub responses: Vec<Answered>,
    /// The review, once made.
    pub review: Option<Reviewed>,
}

/// Why a grant exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// The policy granted an emergency request at once.
    BreakGlass,
    /// The holder approved it (`medical.approve`).
    Approved,
}

/// Access to answer one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Why it exists.
    pub basis: Basis,
    /// The log index of the entry that granted it.
    pub log_index: u64,
    /// When it was granted.
    pub time: i64,
    /// When it lapses, seconds since the epoch.
    pub expires: i64,
    /// How many responses it covers.
    pub uses: u32,
    /// How many it has covered.
    pub used: u32,
}

impl Grant {
    /// Whether a response at `time` would be covered.
    pub fn is_live(&self, time: i64) -> bool {
        time < self.expires && self.used < self.uses
    }
}

/// A response accepted for a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answered {
    /// Its log index: `GET /v1/medical/responses/{log_index}` returns it.
    pub log_index: u64,
    /// Its envelope id.
    pub envelope: String,
    /// When it was accepted.
    pub time: i64,
}

/// A review of a break-the-glass grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reviewed {
    /// The conclusion (the reviewer's note stays in the envelope).
    pub outcome: Outcome,
    /// The review's log index.
    pub log_index: u64,
    /// When it was accepted.
    pub time: i64,
}

/// The key of the case `requester` opened with `jti`.
pub fn case_key(requester: &AgencyId, jti: &str) -> Vec<u8> {
    Prefix::MedicalCase.key(&[requester.as_str().as_bytes(), jti.as_bytes()])
}

/// The key naming, for `holder`, the requester of its request `jti`.
pub fn holder_key(holder: &AgencyId, jti: &str) -> Vec<u8> {
    Prefix::MedicalHolderIndex.key(&[holder.as_str().as_bytes(), jti.as_bytes()])
}

/// The key of a grant awaiting `holder`'s review, made at `index`.
pub fn queue_key(holder: &AgencyId, index: u64) -> Vec<u8> {
    Prefix::ReviewQueue.key(&[holder.as_str().as_bytes(), &index.to_be_bytes()])
}

/// Every grant awaiting `holder`'s review starts with this; `None`: all.
pub fn queue_prefix(holder: Option<&AgencyId>) -> Vec<u8> {
    match holder {
        Some(h) => Prefix::ReviewQueue.key(&[h.as_str().as_bytes(), b""]),
        None => Prefix::ReviewQueue.bytes().to_vec(),
    }
}

/// The value of a queue key: where its case is.
pub fn queue_value(requester: &AgencyId, jti: &str) -> Vec<u8> {
    joined(&[requester.as_str().as_bytes(), jti.as_bytes()])
}

/// The case `requester` opened with `jti`.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn case(
    state: &impl StateRead,
    requester: &AgencyId,
    jti: &str,
) -> Result<Option<Case>, StoreError> {
    read(state, &case_key(requester, jti))
}

/// The case `holder` was asked with `jti`.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn case_of_holder(
    state: &impl StateRead,
    holder: &AgencyId,
    jti: &str,
) -> Result<Option<Case>, StoreError> {
    let key = holder_key(holder, jti);
    let Some(requester) = state.get(&key)? else {
        return Ok(None);
    };
    let requester = String::from_utf8(requester)
        .ok()
        .and_then(|r| r.parse::<AgencyId>().ok())
        .ok_or_else(|| corrupt(&key))?;
    case(state, &requester, jti)
}

/// Writes `case` (new or changed).
///
/// # Errors
/// If the case cannot be encoded; nothing is written then.
pub fn put_case(batch: &mut WriteBatch, case: &Case) -> Result<(), EncodeError> {
    write(batch, case_key(&case.requester, &case.request), case)
}

/// Up to `limit` cases awaiting review, for `holder` (or every holder),
/// oldest grant first, from queue key `from` on.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn queue(
    store: &dyn StoreRead,
    holder: Option<&AgencyId>,
    from: &[u8],
    limit: usize,
) -> Result<Vec<(Vec<u8>, Case)>, StoreError> {
    let prefix = queue_prefix(holder);
    let mut out = Vec::new();
    for kv in store.scan_prefix_from(&prefix, from).take(limit) {
        let (key, value) = kv?;
        let located = value.as_slice().splitn(2, |b| *b == 0).collect::<Vec<_>>();
        let (requester, jti) = match located.as_slice() {
            [r, j] => (std::str::from_utf8(r).ok(), std::str::from_utf8(j).ok()),
            _ => (None, None),
        };
        let requester = requester.and_then(|r| r.parse::<AgencyId>().ok());
        let (Some(requester), Some(jti)) = (requester, jti) else {
            return Err(corrupt(&key));
        };
        let case = case(&Stored(store), &requester, jti)?.ok_or_else(|| corrupt(&key))?;
        out.push((key, case));
    }
    Ok(out)
}
