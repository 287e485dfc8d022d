//! Reconciliation: an inventory report (a physical count at one location)
//! compared with what the register expects there, and the discrepancies it
//! opens and closes.
//!
//! For a report by agency A at location L, each tag is in at most one list:
//! - `unknown_tag`: observed, but no asset has that tag;
//! - `unexpected`: observed, but registered elsewhere (another location or
//!   another agency's custody);
//! - `holder_mismatch`: observed where expected, noted with a person other
//!   than its holder;
//! - `missing`: A keeps it at L, and it was not observed.
//!
//! A tag observed where expected (and with its holder, if a person is
//! noted) is confirmed, which resolves its open discrepancies; so does an
//! accepted transfer (both parties confirm custody), and registering a tag
//! resolves its `unknown_tag`. A discrepancy already open is not opened
//! again, so the feed carries each new discrepancy and each resolution
//! once. Each is a [`Notice`] for the agencies concerned: the reporter and
//! the asset's holder.
//!
//! Like the custody rules, everything here is a function of the state at
//! the report's place in the log, so a replay reaches the same reports.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use xgate_ledger::{Store, StoreError, WriteBatch};

use super::model::Report as InventoryReport;
use super::state;
use crate::apply::facts::Facts;
use crate::apply::state::{StateError, StateRead, Stored, corrupt, read, write};
use crate::registry::AgencyId;
use crate::store_keys::last_part;

/// Kinds of discrepancy, as named (`type`) in reports and notices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscrepancyKind {
    /// Expected at the location, not observed.
    Missing,
    /// Observed, registered elsewhere.
    Unexpected,
    /// Observed where expected, with another person than its holder.
    HolderMismatch,
    /// Observed, never registered.
    UnknownTag,
}

/// An open discrepancy of one tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discrepancy {
    /// What is wrong.
    #[serde(rename = "type")]
    pub kind: DiscrepancyKind,
    /// The report that found it.
    pub reconciliation_id: String,
    /// Where the count was made.
    pub location: String,
    /// The agencies concerned: the reporter and the asset's holder.
    pub agencies: Vec<AgencyId>,
}

/// A reconciliation report, as `GET /v1/reconciliations/{id}` returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Its id: the log index of the inventory report, in decimal.
    pub reconciliation_id: String,
    /// The inventory report's log index.
    pub log_index: u64,
    /// The reporting agency.
    pub agency: String,
    /// Where the count was made.
    pub location: String,
    /// When the gateway accepted it.
    pub time: i64,
    /// How many distinct tags were observed.
    pub observed: usize,
    /// How many tags are in each list.
    pub counts: Counts,
    /// Expected there, not observed.
    pub missing: Vec<String>,
    /// Observed, registered elsewhere.
    pub unexpected: Vec<String>,
    /// Observed with another person than the holder.
    pub holder_mismatch: Vec<String>,
    /// Observed, never registered.
    pub unknown_tag: Vec<String>,
    /// Observed where expected, which resolved open discrepancies.
    pub resolved: Vec<String>,
}

/// The size of each list of a [`Report`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// `missing`.
    pub missing: usize,
    /// `unexpected`.
    pub unexpected: usize,
    /// `holder_mismatch`.
    pub holder_mismatch: usize,
    /// `unknown_tag`.
    pub unknown_tag: usize,
}

/// What a notice announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeEvent {
    /// A discrepancy opened.
    Discrepancy,
    /// An open discrepancy was cleared.
    Resolved,
}

/// One item of the real-time feed (`GET /v1/reconciliations/stream`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// `<log index>.<sequence>`: the SSE event id, to resume after.
    pub id: String,
    /// Opened or resolved.
    pub event: NoticeEvent,
    /// The discrepancy.
    #[serde(rename = "type")]
    pub kind: DiscrepancyKind,
    /// The asset's tag.
    pub tag: String,
    /// The report that found the discrepancy.
    pub reconciliation_id: String,
    /// Where that count was made.
    pub location: String,
    /// The entry that opened or resolved it.
    pub log_index: u64,
    /// Its envelope kind.
    pub by_kind: String,
    /// When.
    pub time: i64,
    /// Who may see it.
    pub agencies: Vec<AgencyId>,
}

impl Notice {
    /// The log index and sequence number in its id.
    pub fn position(&self) -> Option<(u64, u32)> {
        let (index, seq) = self.id.split_once('.')?;
        Some((index.parse().ok()?, seq.parse().ok()?))
    }
}

/// Parses an SSE event id, `<log index>.<sequence>`.
pub fn parse_position(id: &str) -> Option<(u64, u32)> {
    let (index, seq) = id.split_once('.')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(index) || !all_digits(seq) {
        return None;
    }
    Some((index.parse().ok()?, seq.parse().ok()?))
}

/// Writes the notices of one envelope, numbered in order.
pub struct Notices<'a> {
    facts: &'a Facts<'a>,
    kind: &'a str,
    seq: u32,
}

impl<'a> Notices<'a> {
    /// The notices of the envelope `facts` describes, of kind `kind`.
    pub fn new(facts: &'a Facts<'a>, kind: &'a str) -> Notices<'a> {
        Notices {
            facts,
            kind,
            seq: 0,
        }
    }

    fn push(
        &mut self,
        batch: &mut WriteBatch,
        event: NoticeEvent,
        tag: &str,
        d: &Discrepancy,
    ) -> Result<(), StateError> {
        let notice = Notice {
            id: format!("{}.{}", self.facts.log_index, self.seq),
            event,
            kind: d.kind,
            tag: tag.to_owned(),
            reconciliation_id: d.reconciliation_id.clone(),
            location: d.location.clone(),
            log_index: self.facts.log_index,
            by_kind: self.kind.to_owned(),
            time: self.facts.time,
            agencies: d.agencies.clone(),
        };
        let key = state::notice_key(self.facts.log_index, self.seq);
        write(batch, key, &notice)?;
        self.seq += 1;
        Ok(())
    }
}

/// The open discrepancies of `tag`.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn open_discrepancies(
    state: &impl StateRead,
    tag: &str,
) -> Result<Vec<Discrepancy>, StoreError> {
    Ok(read(state, &state::open_key(tag))?.unwrap_or_default())
}

/// A reconciliation report.
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn report<S: Store>(store: &S, index: u64) -> Result<Option<Report>, StoreError> {
    read(&Stored(store), &state::report_key(index))
}

/// Up to `limit` notices after the one at `after` (from the start of the
/// entry at `from_index` if `after` is `None`).
///
/// # Errors
/// A storage failure or a corrupt record.
pub fn notices_after<S: Store>(
    store: &S,
    after: Option<(u64, u32)>,
    from_index: u64,
    limit: usize,
) -> Result<Vec<Notice>, StoreError> {
    let from = match after {
        Some((index, seq)) => match seq.checked_add(1) {
            Some(next) => state::notice_key(index, next),
            None => state::notice_key(index.saturating_add(1), 0),
        },
        None => state::notice_key(from_index, 0),
    };
    store
        .scan_prefix_from(state::NOTICE_PREFIX, &from)
        .take(limit)
        .map(|kv| {
            let (k, v) = kv?;
            serde_json::from_slice(v.as_ref()).map_err(|_| corrupt(&k))
        })
        .collect()
}

/// Clears the open discrepancies of `tag` that `clears` selects, with a
/// notice for each. Returns whether any was open.
///
/// # Errors
/// A storage failure, a corrupt record, or a record that cannot be
/// encoded.
pub fn resolve(
    state: &impl StateRead,
    tag: &str,
    clears: impl Fn(DiscrepancyKind) -> bool,
    notices: &mut Notices<'_>,
    batch: &mut WriteBatch,
) -> Result<bool, StateError> {
    let key = state::open_key(tag);
    let Some(open) = read::<Vec<Discrepancy>>(state, &key)? else {
        return Ok(false);
    };
    let (cleared, kept): (Vec<_>, Vec<_>) = open.into_iter().partition(|d| clears(d.kind));
    for d in &cleared {
        notices.push(batch, NoticeEvent::Resolved, tag, d)?;
    }
    if kept.is_empty() {
        batch.delete(key);
    } else if !cleared.is_empty() {
        write(batch, key, &kept)?;
    }
    Ok(!cleared.is_empty())
}

/// Reconciles an inventory report logged as `facts` describe against the
/// state, and adds the report, the discrepancies it opens and closes, and
/// their notices to `batch`.
///
/// # Errors
/// A storage failure, a corrupt record, or a record that cannot be
/// encoded.
pub fn reconcile(
    body: &InventoryReport,
    facts: &Facts<'_>,
    state: &impl StateRead,
    batch: &mut WriteBatch,
) -> Result<Report, StateError> {
    let reporter = facts.sender;
    let id = facts.log_index.to_string();
    let mut notices = Notices::new(facts, "inventory.report");
    // One verdict per tag: the first time it is listed counts.
    let mut observed: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    for o in &body.observed {
        observed.entry(&o.tag).or_insert(o.person.as_deref());
    }
    let mut found: Vec<(String, DiscrepancyKind, Vec<AgencyId>)> = Vec::new();
    let mut report = Report {
        reconciliation_id: id.clone(),
        log_index: facts.log_index,
        agency: reporter.to_string(),
        location: body.location.clone(),
        time: facts.time,
        observed: observed.len(),
        ..Report::default()
    };
    for (&tag, &person) in &observed {
        let verdict = match state::asset(state, tag)? {
            None => Some((DiscrepancyKind::UnknownTag, vec![reporter.clone()])),
            Some(a) if a.holder.agency != *reporter || a.location != body.location => Some((
                DiscrepancyKind::Unexpected,
                concerned(reporter, &a.holder.agency),
            )),
            Some(a) if person.is_some_and(|p| p != a.holder.person) => {
                Some((DiscrepancyKind::HolderMismatch, vec![reporter.clone()]))
            }
            Some(_) => None,
        };
        match verdict {
            Some((kind, agencies)) => found.push((tag.to_owned(), kind, agencies)),
            None => {
                if resolve(state, tag, |_| true, &mut notices, batch)? {
                    report.resolved.push(tag.to_owned());
                }
            }
        }
    }
    for key in state.keys(&state::located_prefix(reporter, &body.location))? {
        let tag = last_part(&key).unwrap_or_default();
        if !observed.contains_key(tag.as_str()) {
            found.push((tag, DiscrepancyKind::Missing, vec![reporter.clone()]));
        }
    }
    for (tag, kind, agencies) in found {
        match kind {
            DiscrepancyKind::Missing => report.missing.push(tag.clone()),
            DiscrepancyKind::Unexpected => report.unexpected.push(tag.clone()),
            DiscrepancyKind::HolderMismatch => report.holder_mismatch.push(tag.clone()),
            DiscrepancyKind::UnknownTag => report.unknown_tag.push(tag.clone()),
        }
        open(
            state,
            &tag,
            Discrepancy {
                kind,
                reconciliation_id: id.clone(),
                location: body.location.clone(),
                agencies,
            },
            &mut notices,
            batch,
        )?;
    }
    report.counts = Counts {
        missing: report.missing.len(),
        unexpected: report.unexpected.len(),
        holder_mismatch: report.holder_mismatch.len(),
        unknown_tag: report.unknown_tag.len(),
    };
    write(batch, state::report_key(facts.log_index), &report)?;
    Ok(report)
}

/// Opens `d` for `tag` unless one of its kind is open already.
fn open(
    state: &impl StateRead,
    tag: &str,
    d: Discrepancy,
    notices: &mut Notices<'_>,
    batch: &mut WriteBatch,
) -> Result<(), StateError> {
    let key = state::open_key(tag);
    let mut open: Vec<Discrepancy> = read(state, &key)?.unwrap_or_default();
    if open.iter().any(|o| o.kind == d.kind) {
        return Ok(());
    }
    notices.push(batch, NoticeEvent::Discrepancy, tag, &d)?;
    open.push(d);
    write(batch, key, &open)?;
    Ok(())
}

fn concerned(a: &AgencyId, b: &AgencyId) -> Vec<AgencyId> {
    let set: BTreeSet<&AgencyId> = [a, b].into_iter().collect();
    set.into_iter().cloned().collect()
}
